//! The slice shown while a scan is still arriving: the page shows the scan within moments
//! of opening it, not only once every file is read. It is only a picture (lung window, no
//! interaction); the viewer replaces it when the volume is whole.

use nodulens_app::display::Placement;
use nodulens_core::view::{self, Window};
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};
use yew::prelude::*;

use crate::decoder::mark_first_slice;
use crate::state::Preview;

#[derive(Properties, PartialEq)]
pub struct PreviewProps {
    pub preview: Preview,
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

fn draw(canvas: &HtmlCanvasElement, preview: &Preview) -> Option<()> {
    let slice = &preview.0;
    let (w, h) = (
        u32::try_from(slice.width).ok()?,
        u32::try_from(slice.height).ok()?,
    );
    let mut rgba = Vec::new();
    view::render_rgba(slice, Window::LUNG, &mut rgba);
    let image = ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), w, h).ok()?;
    let document = web_sys::window()?.document()?;
    let offscreen: HtmlCanvasElement = document.create_element("canvas").ok()?.dyn_into().ok()?;
    offscreen.set_width(w);
    offscreen.set_height(h);
    context(&offscreen)?.put_image_data(&image, 0.0, 0.0).ok()?;
    let ratio = web_sys::window()?.device_pixel_ratio();
    let cw = (f64::from(canvas.client_width()) * ratio).round().max(1.0);
    let ch = (f64::from(canvas.client_height()) * ratio).round().max(1.0);
    canvas.set_width(cw as u32);
    canvas.set_height(ch as u32);
    let ctx = context(canvas)?;
    ctx.set_fill_style_str("#000");
    ctx.fill_rect(0.0, 0.0, cw, ch);
    let p = Placement::fit(
        (cw, ch),
        (slice.width, slice.height),
        slice.pixel_mm,
        1.0,
        [0.0, 0.0],
    );
    ctx.draw_image_with_html_canvas_element_and_dw_and_dh(&offscreen, p.x, p.y, p.width, p.height)
        .ok()?;
    let _ = canvas.set_attribute("data-drawn", "true");
    mark_first_slice();
    Some(())
}

#[component(PreviewView)]
pub fn preview_view(props: &PreviewProps) -> Html {
    let canvas_ref = use_node_ref();
    {
        let canvas_ref = canvas_ref.clone();
        use_effect_with(props.preview.clone(), move |preview| {
            if let Some(canvas) = canvas_ref.cast::<HtmlCanvasElement>() {
                draw(&canvas, preview);
            }
        });
    }
    html! {
        <figure class="preview">
            <canvas ref={canvas_ref} data-testid="preview" aria-label="A slice of the scan being opened" />
            <figcaption>{ "A slice as it arrives (lung window); the viewer opens when every slice is in." }</figcaption>
        </figure>
    }
}
