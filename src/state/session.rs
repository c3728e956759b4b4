//! The session: the scan that is open (the UI's one copy of its voxels), the one being
//! opened, and what went wrong.

use std::rc::Rc;

use nodulens_core::view::{self, Plane, Window};
use nodulens_core::{IntensityUnits, Statistics, Volume};

use crate::display::Flips;
use crate::protocol::LoadProgress;

use super::plane_index;

/// A decoded volume on the UI side (the one copy of its voxels), with what the views
/// need from it precomputed.
#[derive(Debug)]
pub struct Loaded {
    /// Distinguishes successive volumes (view caches and first-draw timing key on it).
    pub generation: u64,
    pub volume: Volume,
    pub statistics: Statistics,
    /// Display flips per plane, in [`Plane::ALL`] order.
    pub flips: [Flips; 3],
    pub default_window: Window,
    /// What was opened, for the title bar.
    pub source: String,
}

thread_local! {
    static GENERATIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

impl Loaded {
    /// Each volume gets the next generation.
    pub fn new(volume: Volume, statistics: Statistics, source: String) -> Self {
        let generation = GENERATIONS.with(|g| g.replace(g.get() + 1));
        let flips = Plane::ALL.map(|p| Flips::for_plane(&volume.direction(), p));
        let default_window = match volume.units() {
            IntensityUnits::Hounsfield => Window::LUNG,
            IntensityUnits::GreyLevels => Window::spanning(statistics.min, statistics.max),
        };
        Self {
            generation,
            volume,
            statistics,
            flips,
            default_window,
            source,
        }
    }

    pub fn flips(&self, plane: Plane) -> Flips {
        self.flips[plane_index(plane)]
    }

    pub fn value_range(&self) -> f64 {
        f64::from(self.statistics.max) - f64::from(self.statistics.min)
    }
}

/// Shared handle to the loaded volume; equal only to itself, so props compare in O(1).
#[derive(Debug, Clone)]
pub struct VolumeRef(pub Rc<Loaded>);

impl PartialEq for VolumeRef {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for VolumeRef {
    type Target = Loaded;
    fn deref(&self) -> &Loaded {
        &self.0
    }
}

/// A slice shown while the rest of its scan is still arriving (as stored, Hounsfield units).
#[derive(Debug, Clone)]
pub struct Preview(pub Rc<view::Slice>);

impl PartialEq for Preview {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// A decode in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Loading {
    pub what: String,
    pub progress: Option<LoadProgress>,
    /// The latest slice offered for showing, if any has arrived.
    pub preview: Option<Preview>,
}

/// What the session reducer acts on.
#[derive(Debug, Clone)]
pub enum SessionAction {
    /// A request was sent to the decoder.
    StartLoading {
        what: String,
    },
    Progress(LoadProgress),
    /// A slice to show until the volume is whole.
    Preview(Preview),
    /// The decoder's result, whole.
    Opened(VolumeRef),
    Failed(String),
    /// The decoder died (panic, out of memory): only an error if a decode was running.
    WorkerCrashed(String),
    Cancelled,
    DismissError,
    SetStackSpacing([f64; 3]),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub loading: Option<Loading>,
    pub error: Option<String>,
    /// A neutral message (e.g. "Cancelled").
    pub notice: Option<String>,
    pub loaded: Option<VolumeRef>,
    /// Voxel size given to PNG/JPEG stacks, which carry none.
    pub stack_spacing: [f64; 3],
}

impl Default for Session {
    fn default() -> Self {
        Self {
            loading: None,
            error: None,
            notice: None,
            loaded: None,
            stack_spacing: [1.0, 1.0, 1.0],
        }
    }
}

impl Session {
    /// Applies `action`; whether anything changed (so the UI re-renders only then).
    pub fn apply(&mut self, action: SessionAction) -> bool {
        match action {
            SessionAction::StartLoading { what } => {
                // Drop the old volume now: the UI should never hold two.
                self.loaded = None;
                self.error = None;
                self.notice = None;
                self.loading = Some(Loading {
                    what,
                    progress: None,
                    preview: None,
                });
            }
            SessionAction::Progress(progress) => match &mut self.loading {
                Some(loading) => loading.progress = Some(progress),
                None => return false,
            },
            SessionAction::Preview(preview) => match &mut self.loading {
                Some(loading) => loading.preview = Some(preview),
                None => return false,
            },
            SessionAction::Opened(loaded) => {
                self.loading = None;
                self.loaded = Some(loaded);
            }
            SessionAction::Failed(message) => {
                self.loading = None;
                self.error = Some(message);
            }
            SessionAction::WorkerCrashed(message) => {
                if self.loading.take().is_none() {
                    return false;
                }
                self.error = Some(message);
            }
            SessionAction::Cancelled => {
                self.loading = None;
                self.notice = Some("Cancelled".into());
            }
            SessionAction::DismissError => {
                if self.error.is_none() && self.notice.is_none() {
                    return false;
                }
                self.error = None;
                self.notice = None;
            }
            SessionAction::SetStackSpacing(spacing) => {
                if self.stack_spacing == spacing {
                    return false;
                }
                self.stack_spacing = spacing;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::loaded;
    use super::*;
    use crate::protocol::LoadStage;

    fn progress() -> LoadProgress {
        LoadProgress {
            stage: LoadStage::Decoding,
            done: 1,
            total: 3,
        }
    }

    #[test]
    fn a_new_load_drops_the_old_volume_and_messages() {
        let mut s = Session {
            loaded: Some(loaded([4, 4, 4])),
            error: Some("old".into()),
            notice: Some("Cancelled".into()),
            ..Session::default()
        };
        assert!(s.apply(SessionAction::StartLoading {
            what: "a.nii".into()
        }));
        assert!(s.loaded.is_none() && s.error.is_none() && s.notice.is_none());
        assert_eq!(s.loading.as_ref().map(|l| l.what.as_str()), Some("a.nii"));
        assert!(s.apply(SessionAction::Progress(progress())));
        assert_eq!(
            s.loading.as_ref().and_then(|l| l.progress),
            Some(progress())
        );
        let volume = loaded([4, 4, 4]);
        assert!(s.apply(SessionAction::Opened(volume.clone())));
        assert!(s.loading.is_none());
        assert_eq!(s.loaded, Some(volume));
    }

    #[test]
    fn progress_and_previews_without_a_load_change_nothing() {
        let mut s = Session::default();
        assert!(!s.apply(SessionAction::Progress(progress())));
        let slice = nodulens_core::view::Slice {
            width: 1,
            height: 1,
            pixel_mm: [1.0, 1.0],
            values: vec![0],
        };
        assert!(!s.apply(SessionAction::Preview(Preview(Rc::new(slice)))));
        assert_eq!(s, Session::default());
    }

    #[test]
    fn a_crashed_decoder_is_an_error_only_while_it_decodes() {
        let mut s = Session::default();
        assert!(!s.apply(SessionAction::WorkerCrashed("gone".into())));
        assert!(s.error.is_none());
        s.apply(SessionAction::StartLoading { what: "x".into() });
        assert!(s.apply(SessionAction::WorkerCrashed("gone".into())));
        assert_eq!(s.error.as_deref(), Some("gone"));
        assert!(s.loading.is_none());
        assert!(s.apply(SessionAction::DismissError));
        assert!(!s.apply(SessionAction::DismissError));
    }

    #[test]
    fn cancel_and_failure_end_the_load() {
        let mut s = Session::default();
        s.apply(SessionAction::StartLoading { what: "x".into() });
        s.apply(SessionAction::Cancelled);
        assert!(s.loading.is_none());
        assert_eq!(s.notice.as_deref(), Some("Cancelled"));
        s.apply(SessionAction::StartLoading { what: "y".into() });
        s.apply(SessionAction::Failed("not a CT".into()));
        assert!(s.loading.is_none());
        assert_eq!(s.error.as_deref(), Some("not a CT"));
    }

    #[test]
    fn stack_spacing_changes_only_when_different() {
        let mut s = Session::default();
        assert!(!s.apply(SessionAction::SetStackSpacing([1.0, 1.0, 1.0])));
        assert!(s.apply(SessionAction::SetStackSpacing([0.7, 0.7, 2.5])));
        assert_eq!(s.stack_spacing, [0.7, 0.7, 2.5]);
    }

    #[test]
    fn generations_increase_and_grey_stacks_get_a_spanning_window() {
        let a = loaded([2, 2, 2]);
        let b = loaded([2, 2, 2]);
        assert!(b.generation > a.generation);
        assert_ne!(a, b, "equal only to itself");
        assert_eq!(a.default_window, Window::LUNG);
    }
}
