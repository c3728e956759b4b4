//! One view (axial, coronal or sagittal): a canvas with its slider and interactions.
//!
//! Drawing: the slice is rendered at its native size into an offscreen canvas
//! (`putImageData`), then scaled onto the visible canvas with `drawImage`, so the
//! physical aspect ratio (`pixel_mm`) and zoom/pan cost nothing per voxel. The slice is
//! re-extracted only when the slice index changes and re-rendered only when the window
//! changes; zoom, pan and resizes only redraw.

use std::cell::RefCell;
use std::rc::Rc;

use gloo::events::{EventListener, EventListenerOptions};
use nodulens_app::display::{self, Placement, WheelSteps};
use nodulens_core::Format;
use nodulens_core::view::{self, Plane, Slice, Window};
use wasm_bindgen::JsCast;
use web_sys::{HtmlCanvasElement, HtmlInputElement, PointerEvent, WheelEvent};
use yew::prelude::*;

use crate::components::canvas::{self, context, fit_backing_store, paint};
use crate::decoder::{mark_first_slice, now_ms};
use crate::state::{Action, AppState, Readout, ViewState, ViewerAction, VolumeRef};

/// A finding drawn on the views.
#[derive(Debug, Clone, PartialEq)]
pub struct Marker {
    pub center_mm: [f64; 3],
    pub diameter_mm: f64,
    pub selected: bool,
}

#[derive(Properties, PartialEq, Clone)]
pub struct SliceViewProps {
    /// The findings shown (compared by value: a re-render with the same findings does not
    /// redraw).
    pub markers: Rc<Vec<Marker>>,
    pub loaded: VolumeRef,
    pub plane: Plane,
    pub view: ViewState,
    pub window: Window,
    pub active: bool,
    pub dispatch: UseReducerDispatcher<AppState>,
}

/// Width, height and pixel size of a plane's slices, without extracting one.
fn slice_shape(loaded: &VolumeRef, plane: Plane) -> ((usize, usize), [f64; 2]) {
    let v = &loaded.volume;
    let [nx, ny, nz] = v.dims();
    let s = v.spacing();
    match plane {
        Plane::Axial => ((nx, ny), [s[0], s[1]]),
        Plane::Coronal => ((nx, nz), [s[0], s[2]]),
        Plane::Sagittal => ((ny, nz), [s[1], s[2]]),
    }
}

/// Per-view render cache (lives across renders in a `use_mut_ref`).
#[derive(Default)]
struct Cache {
    /// (generation, index) of `slice`.
    slice_key: Option<(u64, usize)>,
    /// The extracted slice, already flipped for display.
    slice: Option<Slice>,
    /// (generation, index, window) of what is in `offscreen`.
    image_key: Option<(u64, usize, [u64; 2])>,
    offscreen: Option<HtmlCanvasElement>,
    rgba: Vec<u8>,
    /// Generation whose first draw has been reported.
    reported: u64,
}

#[derive(Clone, Copy)]
enum DragMode {
    Window,
    Pan,
}

#[derive(Clone, Copy)]
struct Drag {
    mode: DragMode,
    x: f64,
    y: f64,
    window: Window,
    pan: [f64; 2],
}

/// Updates the offscreen image if the slice or window changed. Returns the slice.
fn prepare<'a>(cache: &'a mut Cache, props: &SliceViewProps) -> Option<&'a Slice> {
    let loaded = &props.loaded;
    let generation = loaded.generation;
    let index = props.view.index;
    if cache.slice_key != Some((generation, index)) {
        let mut slice = view::extract(&loaded.volume, props.plane, index);
        loaded
            .flips(props.plane)
            .apply(&mut slice.values, slice.width, slice.height);
        cache.slice = Some(slice);
        cache.slice_key = Some((generation, index));
        cache.image_key = None;
    }
    let window_bits = [props.window.width.to_bits(), props.window.level.to_bits()];
    let image_key = Some((generation, index, window_bits));
    let slice = cache.slice.as_ref()?;
    if cache.image_key != image_key {
        if cache.offscreen.is_none() {
            cache.offscreen = canvas::offscreen();
        }
        paint(
            cache.offscreen.as_ref()?,
            slice,
            props.window,
            &mut cache.rgba,
        )?;
        cache.image_key = image_key;
    }
    Some(slice)
}

fn draw(canvas: &HtmlCanvasElement, cache: &mut Cache, props: &SliceViewProps) -> Option<()> {
    let (cw, ch, ratio) = fit_backing_store(canvas)?;
    let slice = prepare(cache, props)?;
    let shape = (slice.width, slice.height);
    let pixel_mm = slice.pixel_mm;
    let ctx = context(canvas)?;
    ctx.set_fill_style_str("#000");
    ctx.fill_rect(0.0, 0.0, cw, ch);
    let pan = [props.view.pan[0] * ratio, props.view.pan[1] * ratio];
    let p = Placement::fit((cw, ch), shape, pixel_mm, props.view.zoom, pan);
    ctx.set_image_smoothing_enabled(true);
    ctx.draw_image_with_html_canvas_element_and_dw_and_dh(
        cache.offscreen.as_ref()?,
        p.x,
        p.y,
        p.width,
        p.height,
    )
    .ok()?;
    draw_markers(&ctx, &p, shape, pixel_mm, props, ratio);
    if props.plane == Plane::Axial && cache.reported != props.loaded.generation {
        // Read by the end-to-end tests and the browser benchmark.
        cache.reported = props.loaded.generation;
        let _ = canvas.set_attribute("data-drawn", "true");
        mark_first_slice();
        if let Some(body) = web_sys::window()?.document()?.body() {
            let _ = body
                .dataset()
                .set("viewerDrawn", &format!("{:.1}", now_ms()));
        }
    }
    Some(())
}

/// A circle around each finding whose extent this slice crosses (thicker for the selected
/// one), a little larger than the nodule so its edge stays visible.
fn draw_markers(
    ctx: &web_sys::CanvasRenderingContext2d,
    placement: &Placement,
    shape: (usize, usize),
    pixel_mm: [f64; 2],
    props: &SliceViewProps,
    ratio: f64,
) {
    let volume = &props.loaded.volume;
    let flips = props.loaded.flips(props.plane);
    let canvas_per_mm = placement.width / (shape.0.max(1) as f64 * pixel_mm[0].max(1e-6));
    for marker in props.markers.iter() {
        let voxel = volume.world_to_voxel(marker.center_mm);
        let at = display::on_view(volume.dims(), volume.spacing(), flips, props.plane, voxel);
        let radius_mm = marker.diameter_mm / 2.0;
        let off_centre_mm = (at.slice - props.view.index as f64).abs() * at.normal_mm;
        if off_centre_mm > radius_mm.max(at.normal_mm / 2.0) {
            continue;
        }
        let (x, y) = placement.canvas_point(at.x, at.y, shape);
        let radius = (radius_mm + 2.5) * canvas_per_mm;
        ctx.begin_path();
        let _ = ctx.arc(x, y, radius.max(4.0 * ratio), 0.0, std::f64::consts::TAU);
        ctx.set_line_width(if marker.selected { 2.5 } else { 1.5 } * ratio);
        ctx.set_stroke_style_str(if marker.selected {
            "#ffd400"
        } else {
            "#ff7a1a"
        });
        ctx.stroke();
    }
}

/// What is under CSS point `(x, y)` of the canvas.
fn readout_at(
    canvas: &HtmlCanvasElement,
    props: &SliceViewProps,
    x: f64,
    y: f64,
) -> Option<Readout> {
    let (shape, pixel_mm) = slice_shape(&props.loaded, props.plane);
    let size = (
        f64::from(canvas.client_width()),
        f64::from(canvas.client_height()),
    );
    let p = Placement::fit(size, shape, pixel_mm, props.view.zoom, props.view.pan);
    let (px, py) = p.pixel_at(x, y, shape)?;
    let (u, v) = props
        .loaded
        .flips(props.plane)
        .map(px, py, shape.0, shape.1);
    let volume = &props.loaded.volume;
    let voxel = view::pixel_to_voxel(volume, props.plane, props.view.index, u, v);
    let value = volume.get(voxel[0], voxel[1], voxel[2])?;
    Some(Readout {
        plane: props.plane,
        voxel,
        value,
        lps: volume.voxel_to_world(voxel.map(|c| c as f64)),
    })
}

/// Wheel delta in pixels whatever the event's unit.
fn wheel_pixels(e: &WheelEvent) -> f64 {
    match e.delta_mode() {
        WheelEvent::DOM_DELTA_LINE => e.delta_y() * 16.0,
        WheelEvent::DOM_DELTA_PAGE => e.delta_y() * 400.0,
        _ => e.delta_y(),
    }
}

#[component(SliceView)]
pub fn slice_view(props: &SliceViewProps) -> Html {
    let canvas_ref = use_node_ref();
    let cache = use_mut_ref(Cache::default);
    let drag = use_mut_ref(|| None::<Drag>);
    let resized = use_state(|| 0u32);
    let plane = props.plane;
    let name = plane.label().to_ascii_lowercase();
    let count = view::slice_count(&props.loaded.volume, plane);

    // Redraw whenever anything drawn changes (and on resize).
    {
        let canvas_ref = canvas_ref.clone();
        let cache = cache.clone();
        let deps = (
            props.loaded.clone(),
            props.view,
            props.window,
            *resized,
            props.markers.clone(),
        );
        let props_now = props.clone();
        use_effect_with(deps, move |_| {
            if let Some(canvas) = canvas_ref.cast::<HtmlCanvasElement>() {
                draw(&canvas, &mut cache.borrow_mut(), &props_now);
            }
        });
    }

    // Native listeners: wheel must not be passive (it scrolls slices instead of the page,
    // and ctrl+wheel zooms the view instead of the browser), and resizes redraw.
    {
        let canvas_ref = canvas_ref.clone();
        let dispatch = props.dispatch.clone();
        let resized = resized.clone();
        use_effect_with(plane, move |&plane| {
            let mut listeners = Vec::new();
            if let Some(canvas) = canvas_ref.cast::<HtmlCanvasElement>() {
                let steps = Rc::new(RefCell::new(WheelSteps::default()));
                let target = canvas.clone();
                listeners.push(EventListener::new_with_options(
                    &canvas,
                    "wheel",
                    EventListenerOptions::enable_prevent_default(),
                    move |event| {
                        let Some(e) = event.dyn_ref::<WheelEvent>() else {
                            return;
                        };
                        e.prevent_default();
                        let dy = wheel_pixels(e);
                        if e.ctrl_key() || e.meta_key() {
                            let anchor = [
                                f64::from(e.offset_x()) - f64::from(target.client_width()) / 2.0,
                                f64::from(e.offset_y()) - f64::from(target.client_height()) / 2.0,
                            ];
                            let factor = (-dy * 0.0015).exp().clamp(0.5, 2.0);
                            dispatch.dispatch(Action::Viewer(ViewerAction::Zoom(
                                plane, factor, anchor,
                            )));
                        } else {
                            let step = steps.borrow_mut().feed(dy);
                            if step != 0 {
                                dispatch.dispatch(Action::Viewer(ViewerAction::StepSlice(
                                    Some(plane),
                                    i64::from(step),
                                )));
                            }
                        }
                    },
                ));
                if let Some(window) = web_sys::window() {
                    listeners.push(EventListener::new(&window, "resize", move |_| {
                        resized.set(*resized + 1);
                    }));
                }
            }
            move || drop(listeners)
        });
    }

    let onpointerdown = {
        let drag = drag.clone();
        let view = props.view;
        let window = props.window;
        let dispatch = props.dispatch.clone();
        Callback::from(move |e: PointerEvent| {
            let mode = match (e.button(), e.shift_key()) {
                (0, true) | (1, _) | (2, _) => DragMode::Pan,
                (0, false) => DragMode::Window,
                _ => return,
            };
            e.prevent_default();
            if let Some(canvas) = e.target_dyn_into::<HtmlCanvasElement>() {
                // Keep receiving moves when the pointer leaves the canvas mid-drag.
                let _ = canvas.set_pointer_capture(e.pointer_id());
                let _ = canvas.focus();
            }
            dispatch.dispatch(Action::Viewer(ViewerAction::SetActive(plane)));
            *drag.borrow_mut() = Some(Drag {
                mode,
                x: f64::from(e.client_x()),
                y: f64::from(e.client_y()),
                window,
                pan: view.pan,
            });
        })
    };
    let onpointermove = {
        let drag = drag.clone();
        let dispatch = props.dispatch.clone();
        let range = props.loaded.value_range();
        let props_now = props.clone();
        Callback::from(move |e: PointerEvent| {
            if let Some(d) = *drag.borrow() {
                let dx = f64::from(e.client_x()) - d.x;
                let dy = f64::from(e.client_y()) - d.y;
                match d.mode {
                    DragMode::Window => dispatch.dispatch(Action::Viewer(ViewerAction::SetWindow(
                        display::dragged_window(d.window, dx, dy, range),
                    ))),
                    DragMode::Pan => dispatch.dispatch(Action::Viewer(ViewerAction::SetPan(
                        plane,
                        [d.pan[0] + dx, d.pan[1] + dy],
                    ))),
                }
            }
            if let Some(canvas) = e.target_dyn_into::<HtmlCanvasElement>() {
                let readout = readout_at(
                    &canvas,
                    &props_now,
                    f64::from(e.offset_x()),
                    f64::from(e.offset_y()),
                );
                dispatch.dispatch(Action::Viewer(ViewerAction::Hover(readout)));
            }
        })
    };
    let end_drag = {
        let drag = drag.clone();
        Callback::from(move |_: PointerEvent| {
            *drag.borrow_mut() = None;
        })
    };
    let onpointerenter = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |_: PointerEvent| {
            dispatch.dispatch(Action::Viewer(ViewerAction::SetActive(plane)))
        })
    };
    let onpointerleave = {
        let dispatch = props.dispatch.clone();
        let drag = drag.clone();
        Callback::from(move |_: PointerEvent| {
            if drag.borrow().is_none() {
                dispatch.dispatch(Action::Viewer(ViewerAction::Hover(None)));
            }
        })
    };
    let onfocus = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |_: FocusEvent| {
            dispatch.dispatch(Action::Viewer(ViewerAction::SetActive(plane)))
        })
    };
    let oncontextmenu = Callback::from(|e: MouseEvent| e.prevent_default());
    let oninput = {
        let dispatch = props.dispatch.clone();
        Callback::from(move |e: InputEvent| {
            let Some(input) = e.target_dyn_into::<HtmlInputElement>() else {
                return;
            };
            if let Ok(index) = input.value().parse::<usize>() {
                dispatch.dispatch(Action::Viewer(ViewerAction::SetSlice(plane, index)));
            }
        })
    };
    let zoom = |factor: f64| {
        let dispatch = props.dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.dispatch(Action::Viewer(ViewerAction::Zoom(plane, factor, [0.0; 2])))
        })
    };

    let [left, right, top, bottom] = display::edge_letters(&props.loaded.volume.direction(), plane);
    let oriented = if props.loaded.volume.format() == Format::ImageStack {
        ""
    } else {
        "oriented"
    };
    let class = classes!("view", props.active.then_some("active"));
    html! {
        <figure {class} data-testid={format!("panel-{name}")}>
            <figcaption class="view-header">
                <span class="view-name">{ plane.label() }</span>
                <span class="slice-number" data-testid={format!("slice-{name}")}>
                    { format!("{} / {}", props.view.index + 1, count) }
                </span>
                <span class="view-tools">
                    <button class="icon-button" title="Zoom out" aria-label={format!("Zoom out {name}")}
                        data-testid={format!("zoom-out-{name}")} onclick={zoom(1.0 / 1.25)}>{ "−" }</button>
                    <span class="zoom-label">{ format!("{:.0}%", props.view.zoom * 100.0) }</span>
                    <button class="icon-button" title="Zoom in" aria-label={format!("Zoom in {name}")}
                        data-testid={format!("zoom-in-{name}")} onclick={zoom(1.25)}>{ "+" }</button>
                </span>
            </figcaption>
            <div class="canvas-box">
                <canvas
                    ref={canvas_ref}
                    tabindex="0"
                    data-testid={format!("view-{name}")}
                    aria-label={format!("{} slice {} of {}", plane.label(), props.view.index + 1, count)}
                    {onpointerdown}
                    {onpointermove}
                    onpointerup={end_drag.clone()}
                    onpointercancel={end_drag}
                    {onpointerenter}
                    {onpointerleave}
                    {onfocus}
                    {oncontextmenu}
                />
                // Plain images have no patient orientation to letter.
                if !oriented.is_empty() {
                    <span class="edge left">{ left }</span>
                    <span class="edge right">{ right }</span>
                    <span class="edge top">{ top }</span>
                    <span class="edge bottom">{ bottom }</span>
                }
            </div>
            <input
                type="range"
                class="slider"
                min="0"
                max={count.saturating_sub(1).to_string()}
                value={props.view.index.to_string()}
                aria-label={format!("{} slice", plane.label())}
                data-testid={format!("slider-{name}")}
                {oninput}
            />
        </figure>
    }
}
