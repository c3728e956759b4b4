//! Application state: one [`Reducible`] with an [`Action`] enum (Yew's reducer pattern).

use std::rc::Rc;

use nodulens_app::analysis::{Analysis, AnalysisAction};
use nodulens_app::display::{self, Flips};
use nodulens_app::protocol::LoadProgress;
use nodulens_core::view::{self, Plane, Window};
use nodulens_core::{IntensityUnits, Statistics, Volume};
use yew::Reducible;

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

pub fn plane_index(plane: Plane) -> usize {
    match plane {
        Plane::Axial => 0,
        Plane::Coronal => 1,
        Plane::Sagittal => 2,
    }
}

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

/// What is under the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Readout {
    pub plane: Plane,
    pub voxel: [usize; 3],
    pub value: i16,
    pub lps: [f64; 3],
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppState {
    pub loading: Option<Loading>,
    pub error: Option<String>,
    /// A neutral message (e.g. "Cancelled").
    pub notice: Option<String>,
    pub loaded: Option<VolumeRef>,
    pub views: [ViewState; 3],
    pub window: Window,
    /// The view arrow keys scroll: the last one hovered or focused.
    pub active: Plane,
    pub readout: Option<Readout>,
    /// Voxel size given to PNG/JPEG stacks, which carry none.
    pub stack_spacing: [f64; 3],
    pub analysis: Analysis,
}

impl Default for AppState {
    fn default() -> Self {
        Self {
            loading: None,
            error: None,
            notice: None,
            loaded: None,
            views: [ViewState::default(); 3],
            window: Window::LUNG,
            active: Plane::Axial,
            readout: None,
            stack_spacing: [1.0, 1.0, 1.0],
            analysis: Analysis::default(),
        }
    }
}

pub enum Action {
    /// A request was sent to the worker.
    StartLoading {
        what: String,
    },
    Progress(LoadProgress),
    /// A slice to show until the volume is whole.
    Preview(Preview),
    /// The worker's result, whole.
    Opened(VolumeRef),
    Failed(String),
    /// The worker died (panic, out of memory) — only an error if a decode was running.
    WorkerCrashed(String),
    Cancelled,
    DismissError,
    SetSlice(Plane, usize),
    /// Step the given view (or the active one) by a number of slices.
    StepSlice(Option<Plane>, i64),
    SetWindow(Window),
    /// Multiply a view's zoom by a factor about an anchor (CSS px from the canvas centre).
    Zoom(Plane, f64, [f64; 2]),
    SetPan(Plane, [f64; 2]),
    ResetView,
    SetActive(Plane),
    Hover(Option<Readout>),
    SetStackSpacing([f64; 3]),
    Analysis(AnalysisAction),
    /// Select a finding (index into the result) and bring the three views to it.
    SelectFinding(usize),
    /// Select the next (+1) or previous (−1) finding shown and bring the views to it.
    StepFinding(i64),
}

impl AppState {
    /// Puts the three views through the selected finding's centre.
    fn go_to_selected(&mut self) {
        let (Some(loaded), Some(result), Some(i)) =
            (&self.loaded, &self.analysis.result, self.analysis.selected)
        else {
            return;
        };
        let Some(finding) = result.findings.get(i) else {
            return;
        };
        let [x, y, z] = finding.center_voxel;
        for (plane, index) in [(Plane::Axial, z), (Plane::Coronal, y), (Plane::Sagittal, x)] {
            let last = view::slice_count(&loaded.volume, plane).saturating_sub(1);
            self.views[plane_index(plane)].index = index.min(last);
        }
    }

    fn centred_views(loaded: &Loaded) -> [ViewState; 3] {
        Plane::ALL.map(|plane| ViewState {
            index: view::slice_count(&loaded.volume, plane) / 2,
            ..ViewState::default()
        })
    }
}

impl Reducible for AppState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut s = (*self).clone();
        match action {
            Action::StartLoading { what } => {
                // Drop the old volume now: the UI should never hold two.
                s.loaded = None;
                s.readout = None;
                s.error = None;
                s.notice = None;
                s.loading = Some(Loading {
                    what,
                    progress: None,
                    preview: None,
                });
            }
            Action::Progress(progress) => {
                if let Some(loading) = &mut s.loading {
                    loading.progress = Some(progress);
                } else {
                    return self;
                }
            }
            Action::Preview(preview) => {
                if let Some(loading) = &mut s.loading {
                    loading.preview = Some(preview);
                } else {
                    return self;
                }
            }
            Action::Opened(loaded) => {
                s.loading = None;
                s.views = Self::centred_views(&loaded);
                s.window = loaded.default_window;
                s.loaded = Some(loaded);
            }
            Action::Failed(message) => {
                s.loading = None;
                s.error = Some(message);
            }
            Action::WorkerCrashed(message) => {
                if s.loading.take().is_none() {
                    return self;
                }
                s.error = Some(message);
            }
            Action::Cancelled => {
                s.loading = None;
                s.notice = Some("Cancelled".into());
            }
            Action::DismissError => {
                s.error = None;
                s.notice = None;
            }
            Action::SetSlice(plane, index) => {
                let Some(loaded) = &s.loaded else {
                    return self;
                };
                let last = view::slice_count(&loaded.volume, plane).saturating_sub(1);
                s.views[plane_index(plane)].index = index.min(last);
                s.active = plane;
            }
            Action::StepSlice(plane, delta) => {
                let Some(loaded) = &s.loaded else {
                    return self;
                };
                let plane = plane.unwrap_or(s.active);
                let last = view::slice_count(&loaded.volume, plane).saturating_sub(1) as i64;
                let view = &mut s.views[plane_index(plane)];
                let index = (view.index as i64 + delta).clamp(0, last) as usize;
                if index == view.index {
                    return self;
                }
                view.index = index;
            }
            Action::SetWindow(window) => s.window = window,
            Action::Zoom(plane, factor, anchor) => {
                let view = &mut s.views[plane_index(plane)];
                (view.zoom, view.pan) = display::zoom_about(view.zoom, view.pan, factor, anchor);
            }
            Action::SetPan(plane, pan) => s.views[plane_index(plane)].pan = pan,
            Action::ResetView => {
                if let Some(loaded) = &s.loaded {
                    s.views = Self::centred_views(loaded);
                    s.window = loaded.default_window;
                }
            }
            Action::SetActive(plane) => {
                if s.active == plane {
                    return self;
                }
                s.active = plane;
            }
            Action::Hover(readout) => {
                if s.readout == readout {
                    return self;
                }
                s.readout = readout;
            }
            Action::SetStackSpacing(spacing) => s.stack_spacing = spacing,
            Action::Analysis(action) => {
                if !s.analysis.apply(action) {
                    return self;
                }
            }
            Action::SelectFinding(i) => {
                s.analysis.apply(AnalysisAction::Select(Some(i)));
                s.go_to_selected();
            }
            Action::StepFinding(delta) => {
                if !s.analysis.apply(AnalysisAction::Step(delta)) {
                    return self;
                }
                s.go_to_selected();
            }
        }
        Rc::new(s)
    }
}
