//! The slice shown while a scan is still arriving: the page shows the scan within moments
//! of opening it, not only once every file is read. It is only a picture (lung window, no
//! interaction); the viewer replaces it when the volume is whole.

use nodulens_app::display::Placement;
use nodulens_core::view::Window;
use web_sys::HtmlCanvasElement;
use yew::prelude::*;

use crate::components::canvas::{self, context, fit_backing_store, paint};
use crate::decoder::mark_first_slice;
use crate::state::Preview;

#[derive(Properties, PartialEq)]
pub struct PreviewProps {
    pub preview: Preview,
}

fn draw(canvas: &HtmlCanvasElement, preview: &Preview) -> Option<()> {
    let slice = &preview.0;
    let offscreen = canvas::offscreen()?;
    paint(&offscreen, slice, Window::LUNG, &mut Vec::new())?;
    let (cw, ch, _) = fit_backing_store(canvas)?;
    let ctx = context(canvas)?;
    ctx.set_fill_style_str("#000");
    ctx.fill_rect(0.0, 0.0, cw, ch);
    let shape = (slice.width, slice.height);
    let p = Placement::fit((cw, ch), shape, slice.pixel_mm, 1.0, [0.0, 0.0]);
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
