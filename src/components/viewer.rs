//! The three views, the window/level toolbar and the cursor readout.

use gloo::events::{EventListener, EventListenerOptions};
use nodulens_app::display::{signed, window_label};
use nodulens_core::IntensityUnits;
use nodulens_core::view::{Plane, Window};
use wasm_bindgen::JsCast;
use web_sys::{Element, KeyboardEvent};
use yew::prelude::*;

use std::rc::Rc;

use crate::components::slice_view::{Marker, SliceView};
use crate::state::{Action, AppState, Readout, ViewerAction, VolumeRef, plane_index};

#[derive(Properties, PartialEq)]
pub struct ViewerProps {
    pub loaded: VolumeRef,
    pub state: UseReducerHandle<AppState>,
}

const PRESETS: [(&str, &str, Window); 3] = [
    ("lung", "Lung", Window::LUNG),
    ("mediastinum", "Mediastinum", Window::MEDIASTINUM),
    ("bone", "Bone", Window::BONE),
];

fn readout_text(readout: &Readout, units: IntensityUnits) -> String {
    let [i, j, k] = readout.voxel;
    let value = match units {
        IntensityUnits::Hounsfield => format!("{} HU", signed(f64::from(readout.value))),
        IntensityUnits::GreyLevels => format!("{} grey level (not HU)", readout.value),
    };
    let lps = readout
        .lps
        .map(|c| signed((c * 10.0).round() / 10.0))
        .join(", ");
    format!(
        "{}: voxel ({i}, {j}, {k}) · {value} · LPS ({lps}) mm",
        readout.plane.label()
    )
}

#[component(Viewer)]
pub fn viewer(props: &ViewerProps) -> Html {
    let state = &props.state;
    let dispatch = state.dispatcher();

    // Arrow keys and PageUp/PageDown scroll the hovered or focused view, wherever the
    // keyboard focus is, except in form fields (a focused slider moves itself).
    let hu = props.loaded.volume.units() == IntensityUnits::Hounsfield;
    {
        let dispatch = dispatch.clone();
        use_effect_with(hu, move |&hu| {
            let listener = web_sys::window()
                .and_then(|w| w.document())
                .map(|document| {
                    EventListener::new_with_options(
                        &document,
                        "keydown",
                        EventListenerOptions::enable_prevent_default(),
                        move |event| {
                            let Some(e) = event.dyn_ref::<KeyboardEvent>() else {
                                return;
                            };
                            if e.ctrl_key() || e.alt_key() || e.meta_key() {
                                return;
                            }
                            let in_field = e
                                .target()
                                .and_then(|t| t.dyn_into::<Element>().ok())
                                .is_some_and(|el| {
                                    matches!(
                                        el.tag_name().as_str(),
                                        "INPUT" | "TEXTAREA" | "SELECT"
                                    )
                                });
                            if in_field {
                                return;
                            }
                            // Like a stack of images (and the wheel): down = next slice.
                            let action = match e.key().as_str() {
                                "ArrowDown" => Action::Viewer(ViewerAction::StepSlice(None, 1)),
                                "ArrowUp" => Action::Viewer(ViewerAction::StepSlice(None, -1)),
                                "PageDown" => Action::Viewer(ViewerAction::StepSlice(None, 10)),
                                "PageUp" => Action::Viewer(ViewerAction::StepSlice(None, -10)),
                                "n" | "N" => Action::StepFinding(1),
                                "p" | "P" => Action::StepFinding(-1),
                                "1" if hu => Action::Viewer(ViewerAction::SetWindow(Window::LUNG)),
                                "2" if hu => {
                                    Action::Viewer(ViewerAction::SetWindow(Window::MEDIASTINUM))
                                }
                                "3" if hu => Action::Viewer(ViewerAction::SetWindow(Window::BONE)),
                                _ => return,
                            };
                            e.prevent_default();
                            dispatch.dispatch(action);
                        },
                    )
                });
            move || drop(listener)
        });
    }

    let units = props.loaded.volume.units();
    let markers = Rc::new(
        state
            .analysis
            .result
            .as_ref()
            .map(|result| {
                state
                    .analysis
                    .shown()
                    .into_iter()
                    .map(|i| Marker {
                        center_mm: result.findings[i].center_mm,
                        diameter_mm: result.findings[i].diameter_mm,
                        selected: state.analysis.selected == Some(i),
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let presets = PRESETS.iter().map(|&(id, label, window)| {
        let dispatch = dispatch.clone();
        let pressed = state.viewer.window == window;
        html! {
            <button
                class={classes!("button", "preset", pressed.then_some("pressed"))}
                aria-pressed={pressed.to_string()}
                data-testid={format!("preset-{id}")}
                title={window_label(window)}
                disabled={!hu}
                onclick={Callback::from(move |_: MouseEvent| dispatch.dispatch(Action::Viewer(ViewerAction::SetWindow(window))))}
            >
                { label }
                <span class="preset-values">{ window_label(window) }</span>
            </button>
        }
    });
    let on_reset = {
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Viewer(ViewerAction::ResetView))
        })
    };
    let readout = state
        .viewer
        .readout
        .as_ref()
        .map(|r| readout_text(r, units))
        .unwrap_or_else(|| "Point at an image for voxel, value and position".into());

    html! {
        <section class="viewer">
            <div class="toolbar" role="toolbar" aria-label="Display">
                <span class="toolbar-label">{ "Window" }</span>
                { for presets }
                <span class="wl" data-testid="window-level">{ window_label(state.viewer.window) }</span>
                <button class="button" data-testid="reset-view" onclick={on_reset}>{ "Reset" }</button>
                <span class="help">
                    { "Wheel/↑↓: slice · drag: window (1/2/3: presets) · right/shift-drag: pan · ctrl+wheel: zoom" }
                </span>
            </div>
            <div class="views">
                { for Plane::ALL.iter().map(|&plane| html! {
                    <SliceView
                        key={plane.label()}
                        loaded={props.loaded.clone()}
                        {plane}
                        markers={markers.clone()}
                        view={state.viewer.views[plane_index(plane)]}
                        window={state.viewer.window}
                        active={state.viewer.active == plane}
                        dispatch={dispatch.clone()}
                    />
                }) }
            </div>
            <output class="readout" data-testid="cursor-readout">{ readout }</output>
        </section>
    }
}
