//! Canvas drawing shared by the viewer's slice views and the loading preview.

use nodulens_core::view::{self, Slice, Window};
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

pub fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok().flatten()?.dyn_into().ok()
}

/// Sizes the canvas backing store to its CSS size in device pixels (for sharpness).
/// Returns (width, height, device pixel ratio).
pub fn fit_backing_store(canvas: &HtmlCanvasElement) -> Option<(f64, f64, f64)> {
    let ratio = web_sys::window()?.device_pixel_ratio();
    let cw = (f64::from(canvas.client_width()) * ratio).round().max(1.0);
    let ch = (f64::from(canvas.client_height()) * ratio).round().max(1.0);
    if canvas.width() != cw as u32 || canvas.height() != ch as u32 {
        canvas.set_width(cw as u32);
        canvas.set_height(ch as u32);
    }
    Some((cw, ch, ratio))
}

/// Renders `slice` through `window` into `offscreen` at its native size (`rgba` is scratch).
pub fn paint(
    offscreen: &HtmlCanvasElement,
    slice: &Slice,
    window: Window,
    rgba: &mut Vec<u8>,
) -> Option<()> {
    let (w, h) = (
        u32::try_from(slice.width).ok()?,
        u32::try_from(slice.height).ok()?,
    );
    if offscreen.width() != w || offscreen.height() != h {
        offscreen.set_width(w);
        offscreen.set_height(h);
    }
    view::render_rgba(slice, window, rgba);
    let image = ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), w, h).ok()?;
    context(offscreen)?.put_image_data(&image, 0.0, 0.0).ok()
}

/// A canvas that is never attached to the page.
pub fn offscreen() -> Option<HtmlCanvasElement> {
    web_sys::window()?
        .document()?
        .create_element("canvas")
        .ok()?
        .dyn_into()
        .ok()
}
