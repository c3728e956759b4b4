//! Application state as three reducers, pure and tested natively: the [`session`] (what is
//! open or opening), the [`viewer`] (where the three views are) and the
//! [`analysis`](crate::analysis) (the worker's findings and what the reader chose to see).
//! [`AppState`] routes each [`Action`] to its reducer and handles the two that cross them
//! (a finding selected moves the views); in the browser it is Yew's `Reducible`.

pub mod session;
pub mod viewer;

use nodulens_core::view::Plane;

use crate::analysis::{Analysis, AnalysisAction};
pub use session::{Loaded, Loading, Preview, Session, SessionAction, VolumeRef};
pub use viewer::{Readout, ViewState, Viewer, ViewerAction};

pub fn plane_index(plane: Plane) -> usize {
    match plane {
        Plane::Axial => 0,
        Plane::Coronal => 1,
        Plane::Sagittal => 2,
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppState {
    pub session: Session,
    pub viewer: Viewer,
    pub analysis: Analysis,
}

#[derive(Debug, Clone)]
pub enum Action {
    Session(SessionAction),
    Viewer(ViewerAction),
    Analysis(AnalysisAction),
    /// Select a finding (index into the result) and bring the three views to it.
    SelectFinding(usize),
    /// Select the next (+1) or previous (−1) finding shown and bring the views to it.
    StepFinding(i64),
}

impl AppState {
    /// Applies `action`; whether anything changed (the UI re-renders only then).
    pub fn apply(&mut self, action: Action) -> bool {
        match action {
            Action::Session(action) => {
                let opened = match &action {
                    SessionAction::Opened(loaded) => Some(loaded.clone()),
                    SessionAction::StartLoading { .. } => {
                        self.viewer.closed();
                        None
                    }
                    _ => None,
                };
                let changed = self.session.apply(action);
                if let Some(loaded) = opened {
                    self.viewer.opened(&loaded);
                }
                changed
            }
            Action::Viewer(action) => {
                let loaded = self.session.loaded.clone();
                self.viewer.apply(action, loaded.as_deref())
            }
            Action::Analysis(action) => self.analysis.apply(action),
            Action::SelectFinding(i) => {
                // Selecting the selected finding again still brings the views back to it.
                let views = self.viewer.views;
                let changed = self.analysis.apply(AnalysisAction::Select(Some(i)));
                self.go_to_selected();
                changed || self.viewer.views != views
            }
            Action::StepFinding(delta) => {
                if !self.analysis.apply(AnalysisAction::Step(delta)) {
                    return false;
                }
                self.go_to_selected();
                true
            }
        }
    }

    /// Puts the three views through the selected finding's centre.
    fn go_to_selected(&mut self) {
        let (Some(loaded), Some(result), Some(i)) = (
            &self.session.loaded,
            &self.analysis.result,
            self.analysis.selected,
        ) else {
            return;
        };
        if let Some(finding) = result.findings.get(i) {
            self.viewer.go_to(loaded, finding.center_voxel);
        }
    }
}

#[cfg(target_arch = "wasm32")]
impl yew::Reducible for AppState {
    type Action = Action;

    fn reduce(self: std::rc::Rc<Self>, action: Action) -> std::rc::Rc<Self> {
        let mut next = (*self).clone();
        if next.apply(action) {
            std::rc::Rc::new(next)
        } else {
            self
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::rc::Rc;

    use nodulens_core::{Format, IntensityUnits, Metadata, Volume, VolumeHeader};

    use super::*;

    /// A loaded volume of `dims` (HU, 1 mm voxels, values a ramp).
    pub(crate) fn loaded(dims: [usize; 3]) -> VolumeRef {
        let count = dims.iter().product::<usize>();
        let volume = Volume::new(
            VolumeHeader {
                format: Format::Nifti,
                dims,
                spacing: [1.0; 3],
                origin: [0.0; 3],
                direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                units: IntensityUnits::Hounsfield,
                metadata: Metadata::default(),
                warnings: Vec::new(),
            },
            (0..count).map(|i| (i % 2000) as i16 - 1000).collect(),
        )
        .expect("valid test volume");
        let statistics = volume.statistics();
        VolumeRef(Rc::new(Loaded::new(volume, statistics, "test".into())))
    }

    #[test]
    fn opening_a_scan_centres_the_views_and_a_new_load_forgets_the_cursor() {
        let mut s = AppState::default();
        s.apply(Action::Session(SessionAction::StartLoading {
            what: "a".into(),
        }));
        assert!(s.apply(Action::Session(SessionAction::Opened(loaded([8, 6, 4])))));
        assert_eq!(s.viewer.views.map(|v| v.index), [2, 3, 4]);
        s.apply(Action::Viewer(ViewerAction::Hover(Some(Readout {
            plane: Plane::Axial,
            voxel: [0, 0, 0],
            value: 0,
            lps: [0.0; 3],
        }))));
        s.apply(Action::Session(SessionAction::StartLoading {
            what: "b".into(),
        }));
        assert!(s.viewer.readout.is_none());
        assert!(s.session.loaded.is_none());
        // Without a volume the views cannot move.
        assert!(!s.apply(Action::Viewer(ViewerAction::SetSlice(Plane::Axial, 1))));
    }

    #[test]
    fn selecting_a_finding_brings_the_views_to_it_even_again() {
        let mut s = AppState::default();
        s.apply(Action::Session(SessionAction::Opened(loaded([8, 6, 4]))));
        let mut result = (*crate::analysis::tests::result()).clone();
        result.findings[1].center_voxel = [7, 1, 2];
        s.apply(Action::Analysis(AnalysisAction::Started { job: 1 }));
        s.apply(Action::Analysis(AnalysisAction::Done {
            job: 1,
            result: Rc::new(result),
        }));
        assert!(s.apply(Action::SelectFinding(1)));
        assert_eq!(s.viewer.views.map(|v| v.index), [2, 1, 7]);
        s.apply(Action::Viewer(ViewerAction::SetSlice(Plane::Axial, 0)));
        assert!(s.apply(Action::SelectFinding(1)), "back to the finding");
        assert_eq!(s.viewer.views[0].index, 2);
        assert!(!s.apply(Action::SelectFinding(1)), "already there");
        // Stepping goes to the next shown finding (table order: p(nodule) descending).
        assert!(s.apply(Action::StepFinding(-1)));
        assert_eq!(s.analysis.selected, Some(0));
        assert_eq!(s.viewer.views.map(|v| v.index), [0, 0, 0]);
    }
}
