//! The analysis panel: status and progress (with Cancel), the backend, the threshold
//! control, the scan's Lung-RADS category with its follow-up, and the findings table
//! (sortable; a click or Enter on a row brings the three views to the finding).

use nodulens_app::analysis::{AnalysisAction, Column, Status};
use web_sys::{HtmlInputElement, KeyboardEvent};
use yew::prelude::*;

use crate::state::{Action, AppState};

#[derive(Properties, PartialEq)]
pub struct FindingsProps {
    pub state: UseReducerHandle<AppState>,
    pub on_cancel: Callback<()>,
    pub on_rerun: Callback<()>,
}

fn status_text(status: &Status) -> String {
    match status {
        Status::Idle => "No scan analysed yet".into(),
        Status::Decoding => "Waiting for the scan to be decoded".into(),
        Status::Analysing { stage, done, total } if *total > 1 => {
            format!("{}: {done} of {total}", stage.label())
        }
        Status::Analysing { stage, .. } => format!("{}…", stage.label()),
        Status::Done => "Analysed".into(),
        Status::Skipped(reason) => reason.clone(),
        Status::Cancelled => "Analysis cancelled".into(),
        Status::Failed(message) => message.clone(),
    }
}

#[component(FindingsPanel)]
pub fn findings_panel(props: &FindingsProps) -> Html {
    let state = &props.state;
    let analysis = &state.analysis;
    let dispatch = state.dispatcher();
    let status = &analysis.status;
    let progress = match status {
        Status::Analysing { done, total, .. } if *total > 1 => html! {
            <progress max={total.to_string()} value={done.to_string()} />
        },
        Status::Analysing { .. } | Status::Decoding => html! { <progress /> },
        _ => html! {},
    };
    let busy = matches!(status, Status::Analysing { .. } | Status::Decoding);
    let can_rerun =
        matches!(status, Status::Cancelled | Status::Failed(_)) && state.session.loaded.is_some();
    let on_cancel = {
        let cb = props.on_cancel.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    let on_rerun = {
        let cb = props.on_rerun.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    let backend = analysis.backend.map_or("…", |b| b.label());
    // How much of the scoring the analysis worker's helpers did (for the tests).
    let helper_patches = analysis
        .result
        .as_ref()
        .map(|r| r.helper_patches.to_string());

    let body = analysis.result.as_ref().map(|result| {
        let shown = analysis.shown();
        let scan = analysis.scan_assessment();
        let on_threshold = {
            let dispatch = dispatch.clone();
            Callback::from(move |e: InputEvent| {
                if let Some(input) = e.target_dyn_into::<HtmlInputElement>()
                    && let Ok(t) = input.value().parse::<f32>()
                {
                    dispatch.dispatch(Action::Analysis(AnalysisAction::SetThreshold(t)));
                }
            })
        };
        let on_default = {
            let dispatch = dispatch.clone();
            let t = result.operating_point;
            Callback::from(move |_: MouseEvent| {
                dispatch.dispatch(Action::Analysis(AnalysisAction::SetThreshold(t)))
            })
        };
        let headers = Column::ALL.iter().map(|&column| {
            let dispatch = dispatch.clone();
            let (sorted, descending) = analysis.sort;
            let sort = if sorted == column {
                if descending { "descending" } else { "ascending" }
            } else {
                "none"
            };
            html! {
                <th aria-sort={sort}>
                    <button class="sort" onclick={Callback::from(move |_: MouseEvent| {
                        dispatch.dispatch(Action::Analysis(AnalysisAction::Sort(column)))
                    })}>
                        { column.label() }
                        { match sort { "descending" => " ▾", "ascending" => " ▴", _ => "" } }
                    </button>
                </th>
            }
        });
        let rows = shown.iter().map(|&i| {
            let f = &result.findings[i];
            let select = {
                let dispatch = dispatch.clone();
                Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::SelectFinding(i)))
            };
            let onkeydown = {
                let dispatch = dispatch.clone();
                Callback::from(move |e: KeyboardEvent| {
                    if e.key() == "Enter" || e.key() == " " {
                        e.prevent_default();
                        dispatch.dispatch(Action::SelectFinding(i));
                    }
                })
            };
            let selected = analysis.selected == Some(i);
            let center = f.center_mm.map(|c| format!("{c:.2}")).join(",");
            let name = f.nodule_type.name().replace('_', "-");
            let kind = if f.calcified {
                format!("{name}, calcified")
            } else {
                name
            };
            html! {
                <tr
                    tabindex="0"
                    class={classes!("finding", selected.then_some("selected"))}
                    aria-selected={selected.to_string()}
                    data-testid="finding"
                    data-index={i.to_string()}
                    data-center-mm={center}
                    data-center-voxel={f.center_voxel.map(|c| c.to_string()).join(",")}
                    data-diameter-mm={format!("{:.1}", f.diameter_mm)}
                    data-p-nodule={format!("{:.6}", f.p_nodule)}
                    data-p-malignant={format!("{:.6}", f.p_malignant)}
                    data-lung-rads={f.lung_rads.code()}
                    onclick={select}
                    {onkeydown}
                >
                    <td>{ format!("{:.1} mm", f.diameter_mm) }</td>
                    <td>{ format!("{:.0} mm³", f.volume_mm3) }</td>
                    <td>{ kind }</td>
                    <td title={f.lung_rads_rule.clone()}>{ f.lung_rads.code() }</td>
                    <td>{ format!("{:.3}", f.p_nodule) }</td>
                    <td>{ format!("{:.2}", f.p_malignant) }</td>
                </tr>
            }
        });
        let warnings = result
            .warnings
            .iter()
            .map(|w| html! { <li>{ w.message.clone() }</li> });
        html! {
            <>
                if let Some(scan) = scan {
                    <div class="scan-category" data-testid="scan-lung-rads"
                        data-category={scan.category.code()}>
                        <strong>{ format!("Lung-RADS {}", scan.category.code()) }</strong>
                        <span>{ format!(" — {}", scan.category.management()) }</span>
                        <div class="rule">{ scan.rule.clone() }</div>
                    </div>
                }
                <div class="threshold">
                    <label for="threshold">{ "Show p(nodule) ≥ " }
                        <output data-testid="threshold-value">{ format!("{:.3}", analysis.threshold) }</output>
                    </label>
                    <input id="threshold" type="range" min="0" max="1" step="0.001"
                        data-testid="threshold"
                        value={analysis.threshold.to_string()}
                        oninput={on_threshold} />
                    <button class="button" data-testid="threshold-default" onclick={on_default}
                        title="The pipeline's operating point (about one false positive per development scan)">
                        { format!("Default ({:.3})", result.operating_point) }
                    </button>
                </div>
                <p class="summary">
                    { format!("{} shown of {} scored candidates ({} proposed); lungs {:.0} ml",
                        shown.len(), result.scored, result.candidates, result.lung_volume_ml) }
                </p>
                if shown.is_empty() {
                    <p class="empty" data-testid="no-findings">{ "No findings at this threshold." }</p>
                } else {
                    <table class="findings" data-testid="findings-table">
                        <thead><tr>{ for headers }</tr></thead>
                        <tbody>{ for rows }</tbody>
                    </table>
                }
                <p class="hint">
                    { "N / P: next / previous finding. p(malignant) is the chance that LIDC radiologists \
                       would rate the nodule 4–5 rather than 1–2 — not a cancer risk." }
                </p>
                if !result.warnings.is_empty() {
                    <ul class="analysis-warnings" data-testid="analysis-warnings">{ for warnings }</ul>
                }
            </>
        }
    });

    html! {
        <section class="panel analysis" aria-label="Findings">
            <h2>{ "Findings" }</h2>
            <div class="analysis-status" role="status" data-testid="analysis-status"
                data-state={status.data_state()}>
                <span>{ status_text(status) }</span>
                { progress }
                if busy {
                    <button class="button" data-testid="analysis-cancel" onclick={on_cancel}>{ "Cancel" }</button>
                }
                if can_rerun {
                    <button class="button" data-testid="analyse" onclick={on_rerun}>{ "Analyse again" }</button>
                }
            </div>
            <div class="backend">{ "Models on " }<span data-testid="backend"
                data-helper-patches={helper_patches}>{ backend }</span></div>
            if let Some(notice) = analysis.notice.clone() {
                <div class="notice" data-testid="analysis-notice">{ notice }</div>
            }
            { body.unwrap_or_default() }
        </section>
    }
}
