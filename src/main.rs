//! Nodulens in the browser: open a chest CT (DICOM, NIfTI, MetaImage, PNG/JPEG stack) and
//! view it in three planes. Decoding runs in a Web Worker (`decode-worker`); this binary
//! is the UI.

#[cfg(target_arch = "wasm32")]
mod analyser;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod decoder;
#[cfg(target_arch = "wasm32")]
mod files;
#[cfg(target_arch = "wasm32")]
mod worker_sources;
// The reducers are the library's (tested natively); `crate::state` names them here.
#[cfg(target_arch = "wasm32")]
use nodulens_app::state;

#[cfg(target_arch = "wasm32")]
mod app {
    use nodulens_app::analysis::AnalysisAction;
    use nodulens_app::protocol::{InputFile, Request};
    use yew::prelude::*;

    use crate::analyser::{self, Analyser};
    use crate::components::findings::FindingsPanel;
    use crate::components::metadata::{MetadataPanel, WarningsPanel};
    use crate::components::open_panel::OpenPanel;
    use crate::components::preview::PreviewView;
    use crate::components::progress::ProgressBar;
    use crate::components::reports::{PrintReport, ReportsPanel};
    use crate::components::viewer::Viewer;
    use crate::decoder::{self, Decoder};
    use crate::files;
    use crate::state::{Action, AppState, SessionAction};

    /// The bundled sample (copied to `dist/sample/` by Trunk), fetched by the worker.
    const SAMPLE_PATH: &str = "sample/LIDC-IDRI-0006.nii.gz";
    const SAMPLE_NAME: &str = "LIDC-IDRI-0006.nii.gz";

    /// The sample's absolute URL: the worker resolves relative URLs against its own
    /// script, so the page's base is applied here.
    fn sample_url() -> String {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.base_uri().ok().flatten())
            .and_then(|base| web_sys::Url::new_with_base(SAMPLE_PATH, &base).ok())
            .map(|u| u.href())
            .unwrap_or_else(|| SAMPLE_PATH.to_owned())
    }

    #[component(App)]
    pub fn app() -> Html {
        let state = use_reducer(AppState::default);
        let dispatch = state.dispatcher();
        // The analysis worker starts with the page, so its models are loaded by the time a
        // scan arrives.
        let analyser = {
            let dispatch = dispatch.clone();
            use_memo((), move |_| Analyser::new(dispatch))
        };
        let decoder = {
            let dispatch = dispatch.clone();
            let analyser = (*analyser).clone();
            use_memo((), move |_| Decoder::new(dispatch, analyser))
        };
        let dragging = use_state(|| false);
        // Bumped by the Print button; the printable report prepares its key images, then prints.
        let print_request = use_state(|| 0u32);
        let on_print = {
            let print_request = print_request.clone();
            Callback::from(move |()| print_request.set(*print_request + 1))
        };

        let on_files = {
            let decoder = decoder.clone();
            let dispatch = dispatch.clone();
            let spacing = state.session.stack_spacing;
            Callback::from(move |picked: Vec<InputFile>| {
                if picked.is_empty() {
                    dispatch.dispatch(Action::Session(SessionAction::Failed(
                        "nothing to open: no (non-hidden) files were given".into(),
                    )));
                    return;
                }
                let what = files::describe(&picked);
                decoder::open(
                    &decoder,
                    Request::Open {
                        files: picked,
                        spacing,
                    },
                    what,
                );
            })
        };
        let on_sample = {
            let decoder = decoder.clone();
            let spacing = state.session.stack_spacing;
            Callback::from(move |()| {
                decoder::open(
                    &decoder,
                    Request::OpenSample {
                        url: sample_url(),
                        name: SAMPLE_NAME.into(),
                        spacing,
                    },
                    "the sample scan (LIDC-IDRI-0006)".into(),
                );
            })
        };
        let on_reopen = {
            let decoder = decoder.clone();
            let spacing = state.session.stack_spacing;
            let what = state
                .session
                .loaded
                .as_ref()
                .map(|l| l.source.clone())
                .unwrap_or_default();
            Callback::from(move |()| {
                let last = decoder.borrow().last_request();
                let request = match last {
                    Some(Request::Open { files, .. }) => Request::Open { files, spacing },
                    Some(Request::OpenSample { url, name, .. }) => {
                        Request::OpenSample { url, name, spacing }
                    }
                    Some(Request::Recycle { .. }) | None => return,
                };
                decoder::open(&decoder, request, what.clone());
            })
        };
        let on_cancel = {
            let decoder = decoder.clone();
            Callback::from(move |()| decoder::cancel(&decoder))
        };
        let on_cancel_analysis = {
            let analyser = analyser.clone();
            let dispatch = dispatch.clone();
            Callback::from(move |()| {
                let job = analyser::cancel(&analyser);
                dispatch.dispatch(Action::Analysis(AnalysisAction::Cancelled { job }));
            })
        };
        let on_rerun = {
            let analyser = analyser.clone();
            let loaded = state.session.loaded.clone();
            Callback::from(move |()| {
                if let Some(loaded) = loaded.clone() {
                    analyser::rerun(&analyser, loaded);
                }
            })
        };
        let on_spacing = {
            let dispatch = dispatch.clone();
            Callback::from(move |s| {
                dispatch.dispatch(Action::Session(SessionAction::SetStackSpacing(s)))
            })
        };
        let on_dismiss = {
            let dispatch = dispatch.clone();
            Callback::from(move |_: MouseEvent| {
                dispatch.dispatch(Action::Session(SessionAction::DismissError))
            })
        };

        // The whole page is the drop zone.
        let ondragover = {
            let dragging = dragging.clone();
            Callback::from(move |e: DragEvent| {
                // Without this the browser would open the dropped file itself.
                e.prevent_default();
                if !*dragging {
                    dragging.set(true);
                }
            })
        };
        let ondragleave = {
            let dragging = dragging.clone();
            Callback::from(move |e: DragEvent| {
                // Only when leaving the window, not when moving between children.
                if e.related_target().is_none() {
                    dragging.set(false);
                }
            })
        };
        let ondrop = {
            let dragging = dragging.clone();
            let on_files = on_files.clone();
            let dispatch = dispatch.clone();
            Callback::from(move |e: DragEvent| {
                e.prevent_default();
                dragging.set(false);
                let Some(transfer) = e.data_transfer() else {
                    return;
                };
                // Entries must be taken now; the folder walk itself is asynchronous.
                let (entries, loose) = files::drop_entries(&transfer);
                let on_files = on_files.clone();
                let dispatch = dispatch.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    match files::walk(entries, loose).await {
                        Ok(found) => on_files.emit(found),
                        Err(message) => {
                            dispatch.dispatch(Action::Session(SessionAction::Failed(message)))
                        }
                    }
                });
            })
        };

        let loaded = state.session.loaded.clone();
        let open_panel = html! {
            <OpenPanel
                compact={loaded.is_some()}
                spacing={state.session.stack_spacing}
                on_files={on_files.clone()}
                on_sample={on_sample.clone()}
                on_spacing={on_spacing.clone()}
            />
        };
        let title = loaded.as_ref().map(|l| l.source.clone());
        html! {
            <div class="app" data-testid="drop-zone" {ondragover} {ondragleave} {ondrop}>
                <header class="topbar">
                    <div class="brand">
                        <span class="logo" aria-hidden="true">{ "◉" }</span>
                        <h1>{ "Nodulens" }</h1>
                        if let Some(title) = title {
                            <span class="source" title={title.clone()}>{ title }</span>
                        }
                    </div>
                    if loaded.is_some() {
                        { open_panel.clone() }
                    }
                    <span class="disclaimer" data-testid="disclaimer">
                        { "Research use only — not a medical device" }
                    </span>
                </header>
                if let Some(loading) = state.session.loading.clone() {
                    <ProgressBar {loading} on_cancel={on_cancel.clone()} />
                }
                if let Some(error) = state.session.error.clone() {
                    <div class="message error" role="alert" data-testid="error">
                        <span><strong>{ "Could not open the scan: " }</strong>{ error }</span>
                        <button class="icon-button" aria-label="Dismiss" onclick={on_dismiss.clone()}>
                            { "×" }
                        </button>
                    </div>
                }
                if let Some(notice) = state.session.notice.clone() {
                    <div class="message notice" role="status" data-testid="notice">
                        <span>{ notice }</span>
                        <button class="icon-button" aria-label="Dismiss" onclick={on_dismiss}>
                            { "×" }
                        </button>
                    </div>
                }
                if let Some(loaded) = loaded {
                    <main class="workspace" key={loaded.generation.to_string()}>
                        <Viewer loaded={loaded.clone()} state={state.clone()} />
                        <aside class="sidebar">
                            <FindingsPanel state={state.clone()} on_cancel={on_cancel_analysis}
                                {on_rerun} />
                            <ReportsPanel state={state.clone()} {on_print} />
                            <WarningsPanel warnings={loaded.volume.warnings().to_vec()} />
                            <MetadataPanel loaded={loaded.clone()} {on_reopen} />
                        </aside>
                    </main>
                } else if let Some(preview) = state.session.loading.as_ref().and_then(|l| l.preview.clone()) {
                    <main class="welcome">
                        <PreviewView {preview} />
                    </main>
                } else {
                    <main class="welcome">
                        <div class="welcome-card">
                            <h2>{ "Open a chest CT" }</h2>
                            { open_panel }
                        </div>
                    </main>
                }
                <PrintReport state={state.clone()} request={*print_request} />
                if *dragging {
                    <div class="drop-overlay" aria-hidden="true">
                        <div>{ "Drop files, a folder or a .zip to open" }</div>
                    </div>
                }
            </div>
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {
    nodulens_app::web::run_static_constructors();
    yew::Renderer::<app::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("nodulens-app is the browser viewer: build it with `trunk build` and serve dist/");
}
