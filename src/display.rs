//! Display geometry for the viewer, kept free of browser types so it is unit-tested
//! natively: which way to flip a slice so it shows in radiological convention, where a
//! slice lands on a canvas, and the inverse mapping for the cursor readout.

use nodulens_core::view::{Plane, Window};

/// In-plane flips applied to an extracted slice before display.
///
/// `nodulens_core::view::extract` cuts along grid axes. A grid whose axes run the
/// "wrong" way (a NIfTI stored RAS, slices ordered head to feet) would show mirrored,
/// so each view is flipped to radiological convention: axial with anterior at the top
/// and the patient's right on the image's left; coronal and sagittal with the head at
/// the top; sagittal with anterior on the left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flips {
    pub horizontal: bool,
    pub vertical: bool,
}

/// Column `c` of a row-major direction matrix: grid axis `c` in LPS.
fn axis(direction: &[f64; 9], c: usize) -> [f64; 3] {
    [direction[c], direction[3 + c], direction[6 + c]]
}

fn neg(v: [f64; 3]) -> [f64; 3] {
    [-v[0], -v[1], -v[2]]
}

/// Index of the largest-magnitude component.
fn dominant(v: [f64; 3]) -> usize {
    let mut best = 0;
    for c in 1..3 {
        if v[c].abs() > v[best].abs() {
            best = c;
        }
    }
    best
}

/// LPS directions, before flipping, of the slice's +u (screen right) and +v (screen
/// down) as `extract` lays them out.
fn raw_screen_axes(direction: &[f64; 9], plane: Plane) -> ([f64; 3], [f64; 3]) {
    match plane {
        Plane::Axial => (axis(direction, 0), axis(direction, 1)),
        // Coronal and sagittal rows run against k (head at the top for ascending k).
        Plane::Coronal => (axis(direction, 0), neg(axis(direction, 2))),
        Plane::Sagittal => (axis(direction, 1), neg(axis(direction, 2))),
    }
}

/// Whether a screen axis along `v` points the preferred way. Screen right prefers the
/// patient's left (+x) or posterior (+y); screen down prefers posterior (+y) or feet (−z).
fn preferred(v: [f64; 3], down: bool) -> bool {
    let c = dominant(v);
    match (c, down) {
        (2, true) => v[2] < 0.0,
        _ => v[c] >= 0.0,
    }
}

impl Flips {
    pub fn for_plane(direction: &[f64; 9], plane: Plane) -> Flips {
        let (right, down) = raw_screen_axes(direction, plane);
        Flips {
            horizontal: !preferred(right, false),
            vertical: !preferred(down, true),
        }
    }

    /// Slice pixel `(u, v)` shown at display pixel `(x, y)` (and back: it is an involution).
    pub fn map(self, x: usize, y: usize, width: usize, height: usize) -> (usize, usize) {
        let u = if self.horizontal { width - 1 - x } else { x };
        let v = if self.vertical { height - 1 - y } else { y };
        (u, v)
    }

    /// Flips `values` (`width × height`, row-major) in place.
    pub fn apply<T>(self, values: &mut [T], width: usize, height: usize) {
        if self.horizontal {
            for row in values.chunks_exact_mut(width.max(1)) {
                row.reverse();
            }
        }
        if self.vertical {
            for y in 0..height / 2 {
                let (top, bottom) = values.split_at_mut((height - 1 - y) * width);
                top[y * width..(y + 1) * width].swap_with_slice(&mut bottom[..width]);
            }
        }
    }
}

/// Anatomical letter of an LPS direction: where it points, in patient terms.
fn letter(v: [f64; 3]) -> char {
    let c = dominant(v);
    match (c, v[c] >= 0.0) {
        (0, true) => 'L',
        (0, false) => 'R',
        (1, true) => 'P',
        (1, false) => 'A',
        (2, true) => 'S',
        _ => 'I',
    }
}

/// Orientation letters at the `[left, right, top, bottom]` edges of a displayed view.
pub fn edge_letters(direction: &[f64; 9], plane: Plane) -> [char; 4] {
    let flips = Flips::for_plane(direction, plane);
    let (mut right, mut down) = raw_screen_axes(direction, plane);
    if flips.horizontal {
        right = neg(right);
    }
    if flips.vertical {
        down = neg(down);
    }
    [
        letter(neg(right)),
        letter(right),
        letter(neg(down)),
        letter(down),
    ]
}

/// Where a slice is drawn on a canvas: top-left corner and size, in canvas pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Placement {
    /// Fits a `width × height` slice of `pixel_mm` pixels into a canvas with the right
    /// physical aspect ratio, then applies zoom (about the centre) and pan (canvas px).
    pub fn fit(
        canvas: (f64, f64),
        slice: (usize, usize),
        pixel_mm: [f64; 2],
        zoom: f64,
        pan: [f64; 2],
    ) -> Placement {
        let mm_w = slice.0 as f64 * pixel_mm[0].max(1e-6);
        let mm_h = slice.1 as f64 * pixel_mm[1].max(1e-6);
        let scale = (canvas.0 / mm_w).min(canvas.1 / mm_h).max(0.0) * zoom;
        let (width, height) = (mm_w * scale, mm_h * scale);
        Placement {
            x: (canvas.0 - width) / 2.0 + pan[0],
            y: (canvas.1 - height) / 2.0 + pan[1],
            width,
            height,
        }
    }

    /// The display pixel under canvas point `(px, py)`, `None` outside the image.
    pub fn pixel_at(&self, px: f64, py: f64, slice: (usize, usize)) -> Option<(usize, usize)> {
        if self.width <= 0.0 || self.height <= 0.0 {
            return None;
        }
        let fx = (px - self.x) / self.width * slice.0 as f64;
        let fy = (py - self.y) / self.height * slice.1 as f64;
        (fx >= 0.0 && fy >= 0.0 && fx < slice.0 as f64 && fy < slice.1 as f64)
            .then_some((fx as usize, fy as usize))
    }
}

impl Placement {
    /// The canvas point of continuous display-pixel coordinates `(x, y)` of the slice (the
    /// inverse of [`Placement::pixel_at`]; pixel centres are at `+0.5`).
    pub fn canvas_point(&self, x: f64, y: f64, slice: (usize, usize)) -> (f64, f64) {
        (
            self.x + x / slice.0.max(1) as f64 * self.width,
            self.y + y / slice.1.max(1) as f64 * self.height,
        )
    }
}

/// Where a point of the volume (continuous voxel coordinates) lies on one view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnView {
    /// Continuous slice index along the view's normal.
    pub slice: f64,
    /// Display-pixel coordinates on the shown (flipped) slice, pixel centres at `+0.5`.
    pub x: f64,
    pub y: f64,
    /// Millimetres per slice along the normal.
    pub normal_mm: f64,
}

/// The one volume → view mapping of the markers: `voxel` as `view::extract` lays the
/// plane's slices out, then the display flips.
pub fn on_view(
    dims: [usize; 3],
    spacing: [f64; 3],
    flips: Flips,
    plane: Plane,
    voxel: [f64; 3],
) -> OnView {
    let top = dims[2].saturating_sub(1) as f64;
    let (slice, u, v, width, height, normal_mm) = match plane {
        Plane::Axial => (voxel[2], voxel[0], voxel[1], dims[0], dims[1], spacing[2]),
        Plane::Coronal => (
            voxel[1],
            voxel[0],
            top - voxel[2],
            dims[0],
            dims[2],
            spacing[1],
        ),
        Plane::Sagittal => (
            voxel[0],
            voxel[1],
            top - voxel[2],
            dims[1],
            dims[2],
            spacing[0],
        ),
    };
    let x = if flips.horizontal {
        width.saturating_sub(1) as f64 - u
    } else {
        u
    };
    let y = if flips.vertical {
        height.saturating_sub(1) as f64 - v
    } else {
        v
    };
    OnView {
        slice,
        x: x + 0.5,
        y: y + 0.5,
        normal_mm,
    }
}

pub const MIN_ZOOM: f64 = 0.25;
pub const MAX_ZOOM: f64 = 32.0;

/// Zooms by `factor` keeping the point `anchor` (relative to the canvas centre, in the
/// same units as `pan`) still on screen. Returns the new `(zoom, pan)`.
pub fn zoom_about(zoom: f64, pan: [f64; 2], factor: f64, anchor: [f64; 2]) -> (f64, [f64; 2]) {
    let new_zoom = (zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
    let f = new_zoom / zoom;
    let pan = [
        (pan[0] - anchor[0]) * f + anchor[0],
        (pan[1] - anchor[1]) * f + anchor[1],
    ];
    (new_zoom, pan)
}

/// Window after a left-drag of `(dx, dy)` CSS px from `start`: horizontal changes the
/// width, vertical the level. `value_range` (max − min of the volume) sets the speed so
/// a grey-level stack (0–255) is as controllable as a CT (−1024–3000).
pub fn dragged_window(start: Window, dx: f64, dy: f64, value_range: f64) -> Window {
    let speed = (value_range / 1000.0).clamp(0.05, 8.0);
    Window {
        width: (start.width + dx * speed).max(1.0),
        level: start.level + dy * speed,
    }
}

/// Turns wheel deltas into whole slice steps. Mouse wheels step one slice a notch;
/// trackpads send many small deltas, which are summed until they make a step.
#[derive(Debug, Clone, Copy, Default)]
pub struct WheelSteps {
    pending: f64,
}

/// Pixels of trackpad scrolling per slice.
const PIXELS_PER_STEP: f64 = 40.0;

impl WheelSteps {
    /// `delta_y` in pixels (the caller converts line/page modes). Positive = down.
    pub fn feed(&mut self, delta_y: f64) -> i32 {
        if delta_y.abs() >= 50.0 {
            // A wheel notch: one slice, whatever the notch's size.
            self.pending = 0.0;
            return delta_y.signum() as i32;
        }
        self.pending += delta_y;
        if self.pending.abs() >= PIXELS_PER_STEP {
            let step = self.pending.signum() as i32;
            self.pending = 0.0;
            step
        } else {
            0
        }
    }
}

/// Human text for a window: `W 1500 / L −600`.
pub fn window_label(window: Window) -> String {
    format!(
        "W {} / L {}",
        window.width.round(),
        signed(window.level.round())
    )
}

/// A number with a real minus sign, for display.
pub fn signed(value: f64) -> String {
    let text = format!("{value}");
    match text.strip_prefix('-') {
        Some(rest) if rest != "0" => format!("−{rest}"),
        Some(rest) => rest.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_land_on_the_voxel_the_readout_names() {
        let dims = [7, 5, 4];
        let shape = |plane| match plane {
            Plane::Axial => (7, 5),
            Plane::Coronal => (7, 4),
            Plane::Sagittal => (5, 4),
        };
        for direction in [IDENTITY, RAS] {
            for plane in Plane::ALL {
                let flips = Flips::for_plane(&direction, plane);
                let slice = shape(plane);
                let placement = Placement::fit((300.0, 200.0), slice, [0.7, 2.5], 1.5, [9.0, -4.0]);
                for voxel in [[0usize, 0, 0], [6, 4, 3], [2, 3, 1]] {
                    let at = on_view(dims, [0.7, 0.7, 2.5], flips, plane, voxel.map(|c| c as f64));
                    let (cx, cy) = placement.canvas_point(at.x, at.y, slice);
                    // Back through the readout's path: canvas → display pixel → slice pixel → voxel.
                    let (px, py) = placement.pixel_at(cx, cy, slice).expect("on the image");
                    let (u, v) = flips.map(px, py, slice.0, slice.1);
                    let top = dims[2] - 1;
                    let back = match plane {
                        Plane::Axial => [u, v, at.slice as usize],
                        Plane::Coronal => [u, at.slice as usize, top - v],
                        Plane::Sagittal => [at.slice as usize, u, top - v],
                    };
                    assert_eq!(back, voxel, "{plane:?} {direction:?}");
                }
            }
        }
    }

    const IDENTITY: [f64; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
    /// A NIfTI stored RAS with an identity affine: x to the right, y anterior, in LPS.
    const RAS: [f64; 9] = [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0];

    #[test]
    fn lps_grid_needs_no_flip() {
        for plane in Plane::ALL {
            assert_eq!(
                Flips::for_plane(&IDENTITY, plane),
                Flips::default(),
                "{plane:?}"
            );
        }
        assert_eq!(edge_letters(&IDENTITY, Plane::Axial), ['R', 'L', 'A', 'P']);
        assert_eq!(
            edge_letters(&IDENTITY, Plane::Coronal),
            ['R', 'L', 'S', 'I']
        );
        assert_eq!(
            edge_letters(&IDENTITY, Plane::Sagittal),
            ['A', 'P', 'S', 'I']
        );
    }

    #[test]
    fn ras_grid_is_flipped_back_to_radiological() {
        let axial = Flips::for_plane(&RAS, Plane::Axial);
        assert!(axial.horizontal && axial.vertical);
        assert_eq!(edge_letters(&RAS, Plane::Axial), ['R', 'L', 'A', 'P']);
        assert_eq!(edge_letters(&RAS, Plane::Sagittal), ['A', 'P', 'S', 'I']);
        // Slices stored head first: coronal/sagittal must flip vertically.
        let head_first = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
        assert!(Flips::for_plane(&head_first, Plane::Coronal).vertical);
        assert_eq!(
            edge_letters(&head_first, Plane::Coronal),
            ['R', 'L', 'S', 'I']
        );
    }

    #[test]
    fn flipping_values_matches_map() {
        let (w, h) = (3, 4);
        let original: Vec<usize> = (0..w * h).collect();
        for flips in [
            Flips::default(),
            Flips {
                horizontal: true,
                vertical: false,
            },
            Flips {
                horizontal: false,
                vertical: true,
            },
            Flips {
                horizontal: true,
                vertical: true,
            },
        ] {
            let mut shown = original.clone();
            flips.apply(&mut shown, w, h);
            for y in 0..h {
                for x in 0..w {
                    let (u, v) = flips.map(x, y, w, h);
                    assert_eq!(shown[x + w * y], original[u + w * v], "{flips:?}");
                }
            }
        }
    }

    #[test]
    fn placement_keeps_physical_aspect() {
        // 100×50 pixels of 1×4 mm: 100 mm wide, 200 mm tall, into a 400×400 canvas.
        let p = Placement::fit((400.0, 400.0), (100, 50), [1.0, 4.0], 1.0, [0.0, 0.0]);
        assert_eq!((p.width, p.height), (200.0, 400.0));
        assert_eq!((p.x, p.y), (100.0, 0.0));
        assert_eq!(p.pixel_at(100.0, 0.0, (100, 50)), Some((0, 0)));
        assert_eq!(p.pixel_at(299.9, 399.9, (100, 50)), Some((99, 49)));
        assert_eq!(p.pixel_at(99.0, 10.0, (100, 50)), None);
    }

    #[test]
    fn zoom_keeps_anchor_still() {
        let (zoom, pan) = zoom_about(1.0, [10.0, 0.0], 2.0, [50.0, -20.0]);
        assert_eq!(zoom, 2.0);
        // The image point under the anchor: (anchor - pan) / zoom, before and after.
        assert_eq!((50.0 - 10.0) / 1.0, (50.0 - pan[0]) / zoom);
        assert_eq!((-20.0 - 0.0) / 1.0, (-20.0 - pan[1]) / zoom);
        assert_eq!(zoom_about(30.0, [0.0; 2], 4.0, [0.0; 2]).0, MAX_ZOOM);
    }

    #[test]
    fn window_drag_and_labels() {
        let w = dragged_window(Window::LUNG, 10.0, -5.0, 4000.0);
        assert_eq!((w.width, w.level), (1540.0, -620.0));
        assert_eq!(dragged_window(Window::LUNG, -1e6, 0.0, 4000.0).width, 1.0);
        assert_eq!(window_label(Window::LUNG), "W 1500 / L −600");
        assert_eq!(signed(-0.0), "0");
    }

    #[test]
    fn wheel_steps() {
        let mut w = WheelSteps::default();
        assert_eq!(w.feed(100.0), 1);
        assert_eq!(w.feed(-120.0), -1);
        assert_eq!(w.feed(15.0), 0);
        assert_eq!(w.feed(15.0), 0);
        assert_eq!(w.feed(15.0), 1);
    }
}
