//! The viewer: where each of the three views is (slice, zoom, pan), the window, which view
//! the arrow keys scroll, and what is under the cursor.

use nodulens_core::view::{self, Plane, Window};

use super::plane_index;
use super::session::Loaded;
use crate::display;

/// Per-view navigation: slice, zoom and pan (CSS px from centred).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewState {
    pub index: usize,
    pub zoom: f64,
    pub pan: [f64; 2],
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            index: 0,
            zoom: 1.0,
            pan: [0.0, 0.0],
        }
    }
}

/// What is under the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub plane: Plane,
    pub voxel: [usize; 3],
    pub value: i16,
    pub lps: [f64; 3],
}

/// What the viewer reducer acts on. Actions that need the volume's extent get it from
/// [`Viewer::apply`]'s `loaded`; without a volume they change nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerAction {
    SetSlice(Plane, usize),
    /// Step the given view (or the active one) by a number of slices.
    StepSlice(Option<Plane>, i64),
    SetWindow(Window),
    /// Multiply a view's zoom by a factor about an anchor (CSS px from the canvas centre).
    Zoom(Plane, f64, [f64; 2]),
    SetPan(Plane, [f64; 2]),
    /// Centred slices, no zoom or pan, the volume's own window.
    ResetView,
    SetActive(Plane),
    Hover(Option<Readout>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    pub views: [ViewState; 3],
    pub window: Window,
    /// The view arrow keys scroll: the last one hovered or focused.
    pub active: Plane,
    pub readout: Option<Readout>,
}

impl Default for Viewer {
    fn default() -> Self {
        Self {
            views: [ViewState::default(); 3],
            window: Window::LUNG,
            active: Plane::Axial,
            readout: None,
        }
    }
}

impl Viewer {
    /// The viewer as a newly opened volume starts: centred, in its default window.
    pub fn opened(&mut self, loaded: &Loaded) {
        self.views = Plane::ALL.map(|plane| ViewState {
            index: view::slice_count(&loaded.volume, plane) / 2,
            ..ViewState::default()
        });
        self.window = loaded.default_window;
    }

    /// Forgets the cursor (the volume it pointed into is gone).
    pub fn closed(&mut self) {
        self.readout = None;
    }

    /// Puts the three views through a voxel (each index clamped to its plane).
    pub fn go_to(&mut self, loaded: &Loaded, [x, y, z]: [usize; 3]) {
        for (plane, index) in [(Plane::Axial, z), (Plane::Coronal, y), (Plane::Sagittal, x)] {
            self.views[plane_index(plane)].index = index.min(last_slice(loaded, plane));
        }
    }

    /// Applies `action`; whether anything changed.
    pub fn apply(&mut self, action: ViewerAction, loaded: Option<&Loaded>) -> bool {
        match action {
            ViewerAction::SetSlice(plane, index) => {
                let Some(loaded) = loaded else {
                    return false;
                };
                let index = index.min(last_slice(loaded, plane));
                let view = &mut self.views[plane_index(plane)];
                if view.index == index && self.active == plane {
                    return false;
                }
                view.index = index;
                self.active = plane;
            }
            ViewerAction::StepSlice(plane, delta) => {
                let Some(loaded) = loaded else {
                    return false;
                };
                let plane = plane.unwrap_or(self.active);
                let last = last_slice(loaded, plane) as i64;
                let view = &mut self.views[plane_index(plane)];
                let index = (view.index as i64).saturating_add(delta).clamp(0, last) as usize;
                if index == view.index {
                    return false;
                }
                view.index = index;
            }
            ViewerAction::SetWindow(window) => {
                if self.window == window {
                    return false;
                }
                self.window = window;
            }
            ViewerAction::Zoom(plane, factor, anchor) => {
                let view = &mut self.views[plane_index(plane)];
                (view.zoom, view.pan) = display::zoom_about(view.zoom, view.pan, factor, anchor);
            }
            ViewerAction::SetPan(plane, pan) => self.views[plane_index(plane)].pan = pan,
            ViewerAction::ResetView => match loaded {
                Some(loaded) => self.opened(loaded),
                None => return false,
            },
            ViewerAction::SetActive(plane) => {
                if self.active == plane {
                    return false;
                }
                self.active = plane;
            }
            ViewerAction::Hover(readout) => {
                if self.readout == readout {
                    return false;
                }
                self.readout = readout;
            }
        }
        true
    }
}

fn last_slice(loaded: &Loaded, plane: Plane) -> usize {
    view::slice_count(&loaded.volume, plane).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::super::tests::loaded;
    use super::*;

    #[test]
    fn opening_centres_every_view_in_the_volumes_window() {
        let volume = loaded([10, 20, 30]);
        let mut v = Viewer {
            window: Window::BONE,
            ..Viewer::default()
        };
        v.opened(&volume);
        let indices = v.views.map(|view| view.index);
        // Axial slices run along z, coronal along y, sagittal along x.
        assert_eq!(indices, [15, 10, 5]);
        assert_eq!(v.window, Window::LUNG);
    }

    #[test]
    fn slices_are_clamped_to_the_volume_and_need_one() {
        let volume = loaded([10, 20, 30]);
        let mut v = Viewer::default();
        assert!(!v.apply(ViewerAction::SetSlice(Plane::Coronal, 3), None));
        assert!(v.apply(ViewerAction::SetSlice(Plane::Coronal, 99), Some(&volume)));
        assert_eq!(v.views[plane_index(Plane::Coronal)].index, 19);
        assert_eq!(
            v.active,
            Plane::Coronal,
            "the view set becomes the active one"
        );
        // Steps go to the active view and stop at either end.
        assert!(v.apply(ViewerAction::StepSlice(None, -5), Some(&volume)));
        assert_eq!(v.views[plane_index(Plane::Coronal)].index, 14);
        assert!(v.apply(ViewerAction::SetSlice(Plane::Axial, 7), Some(&volume)));
        assert!(v.apply(
            ViewerAction::StepSlice(Some(Plane::Axial), i64::MIN),
            Some(&volume)
        ));
        assert_eq!(v.views[0].index, 0);
        assert!(!v.apply(
            ViewerAction::StepSlice(Some(Plane::Axial), -1),
            Some(&volume)
        ));
    }

    #[test]
    fn go_to_puts_each_view_through_the_voxel() {
        let volume = loaded([10, 20, 30]);
        let mut v = Viewer::default();
        v.go_to(&volume, [3, 4, 50]);
        assert_eq!(v.views.map(|view| view.index), [29, 4, 3]);
    }

    #[test]
    fn zoom_pan_and_reset() {
        let volume = loaded([10, 20, 30]);
        let mut v = Viewer::default();
        v.opened(&volume);
        assert!(v.apply(
            ViewerAction::Zoom(Plane::Axial, 2.0, [0.0, 0.0]),
            Some(&volume)
        ));
        assert_eq!(v.views[0].zoom, 2.0);
        assert!(v.apply(
            ViewerAction::SetPan(Plane::Axial, [5.0, -3.0]),
            Some(&volume)
        ));
        assert!(v.apply(ViewerAction::SetWindow(Window::BONE), Some(&volume)));
        assert!(!v.apply(ViewerAction::SetWindow(Window::BONE), Some(&volume)));
        assert!(v.apply(ViewerAction::ResetView, Some(&volume)));
        assert_eq!(
            v.views[0],
            ViewState {
                index: 15,
                ..ViewState::default()
            }
        );
        assert_eq!(v.window, Window::LUNG);
        assert!(!v.apply(ViewerAction::ResetView, None));
    }

    #[test]
    fn hover_and_active_report_only_changes() {
        let mut v = Viewer::default();
        assert!(!v.apply(ViewerAction::SetActive(Plane::Axial), None));
        assert!(v.apply(ViewerAction::SetActive(Plane::Sagittal), None));
        let readout = Readout {
            plane: Plane::Sagittal,
            voxel: [1, 2, 3],
            value: -700,
            lps: [1.0, 2.0, 3.0],
        };
        assert!(v.apply(ViewerAction::Hover(Some(readout.clone())), None));
        assert!(!v.apply(ViewerAction::Hover(Some(readout)), None));
        v.closed();
        assert!(v.readout.is_none());
    }
}
