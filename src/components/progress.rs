//! Progress of a decode, with its Cancel button.

use yew::prelude::*;

use crate::state::Loading;

#[derive(Properties, PartialEq)]
pub struct ProgressProps {
    pub loading: Loading,
    pub on_cancel: Callback<()>,
}

#[component(ProgressBar)]
pub fn progress_bar(props: &ProgressProps) -> Html {
    let p = props.loading.progress;
    let stage = p.map_or("Starting the decoder", |p| p.stage.label());
    // Unknown totals (the sample download) show an indeterminate bar.
    let fraction = p
        .filter(|p| p.total > 0)
        .map(|p| (p.done as f64 / p.total as f64).clamp(0.0, 1.0));
    let counts = p
        .filter(|p| p.total > 0)
        .map(|p| format!(" {} / {}", p.done, p.total))
        .unwrap_or_default();
    let percent = fraction.map(|f| format!("{:.0}", f * 100.0));
    let on_cancel = props.on_cancel.reform(|_: MouseEvent| ());
    html! {
        <section class="progress-panel" data-testid="progress" aria-live="polite">
            <div class="progress-text">
                <span class="progress-what">{ format!("Opening {}", props.loading.what) }</span>
                <span class="progress-stage" data-testid="progress-stage">
                    { format!("{stage}…{counts}") }
                </span>
            </div>
            <div class="progress-row">
                <progress
                    max="100"
                    value={percent}
                    aria-valuenow={percent.clone()}
                    aria-label="Decoding progress"
                />
                <button class="button" data-testid="cancel" onclick={on_cancel}>{ "Cancel" }</button>
            </div>
        </section>
    }
}
