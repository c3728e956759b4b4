//! The analysis of the open scan as the page holds it: which job, how far it got, what the
//! worker found, and what the reader chose to see (threshold, sort order, selected finding).
//!
//! A pure reducer, tested natively; the UI's `AppState` delegates its analysis actions here.
//! The worker returns *every* scored site (duplicates merged greedily, which does not depend
//! on a threshold), so the threshold control filters live without asking the worker again,
//! and the scan's Lung-RADS category is recomputed from what is shown.

use std::rc::Rc;

use nodulens_core::Warning;
use nodulens_detect::{Assessment, Finding, Report, ScanSummary, lung_rads};
use serde::{Deserialize, Serialize};

/// Where the models ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    WebGpu,
    Cpu,
}

impl Backend {
    /// As the page shows it (`data-testid="backend"`).
    pub fn label(self) -> &'static str {
        match self {
            Backend::WebGpu => "WebGPU",
            Backend::Cpu => "CPU",
        }
    }
}

/// The pipeline's stages, as the progress bar names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisStage {
    /// Receiving the volume from the decoder (the worker's own copy).
    Receiving,
    /// Fetching and checking the weights (first scan only).
    Models,
    Lungs,
    Candidates,
    Measuring,
    /// `done` of `total` candidates scored by both models.
    Scoring,
}

impl AnalysisStage {
    pub fn label(self) -> &'static str {
        match self {
            AnalysisStage::Receiving => "Receiving the scan",
            AnalysisStage::Models => "Loading the models",
            AnalysisStage::Lungs => "Finding the lungs",
            AnalysisStage::Candidates => "Finding candidates",
            AnalysisStage::Measuring => "Segmenting candidates",
            AnalysisStage::Scoring => "Scoring candidates",
        }
    }
}

/// What the worker found on one scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisResult {
    /// Every scored site, duplicates merged, most likely nodules first.
    pub findings: Vec<Finding>,
    /// The pipeline's operating point on p(nodule) (`models/manifest.json`).
    pub operating_point: f32,
    /// Candidates proposed, and those segmented and scored.
    pub candidates: usize,
    pub scored: usize,
    pub lung_volume_ml: f64,
    /// Whether lungs were found and lie wholly in the scan (else the category is 0).
    pub lungs_covered: bool,
    /// The volume's and the pipeline's warnings.
    pub warnings: Vec<Warning>,
    pub backend: Backend,
    /// Patches (of `2 × scored`) that the analysis worker's scoring helpers scored.
    #[serde(default)]
    pub helper_patches: usize,
    /// Milliseconds per stage, in order.
    pub timings_ms: Vec<(String, f64)>,
    /// `Date.now()` when the worker posted the result (the page logs how long it took over).
    pub posted_at_ms: f64,
    /// The report's `model` object (`Manifest::describe`: files, hashes, operating point).
    pub model: serde_json::Value,
    /// Both models by their SHA-256 prefixes (the SR's equipment, the printed report).
    pub models_id: String,
}

/// Where the analysis of the open scan stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Nothing open.
    Idle,
    /// The scan is still being decoded (the worker receives it meanwhile).
    Decoding,
    Analysing {
        stage: AnalysisStage,
        done: usize,
        total: usize,
    },
    Done,
    /// Not analysed, and why (grey-level images, not a CT).
    Skipped(String),
    Cancelled,
    Failed(String),
}

impl Status {
    /// `data-state` of `data-testid="analysis-status"`.
    pub fn data_state(&self) -> &'static str {
        match self {
            Status::Idle | Status::Skipped(_) | Status::Cancelled => "idle",
            Status::Decoding => "decoding",
            Status::Analysing { .. } => "analysing",
            Status::Done => "done",
            Status::Failed(_) => "error",
        }
    }
}

/// A column of the findings table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Diameter,
    Volume,
    Type,
    LungRads,
    PNodule,
    PMalignant,
}

impl Column {
    pub const ALL: [Column; 6] = [
        Column::Diameter,
        Column::Volume,
        Column::Type,
        Column::LungRads,
        Column::PNodule,
        Column::PMalignant,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Column::Diameter => "Diameter",
            Column::Volume => "Volume",
            Column::Type => "Type",
            Column::LungRads => "Lung-RADS",
            Column::PNodule => "p(nodule)",
            Column::PMalignant => "p(malignant)",
        }
    }

    fn compare(self, a: &Finding, b: &Finding) -> std::cmp::Ordering {
        match self {
            Column::Diameter => a.diameter_mm.total_cmp(&b.diameter_mm),
            Column::Volume => a.volume_mm3.total_cmp(&b.volume_mm3),
            Column::Type => a.nodule_type.name().cmp(b.nodule_type.name()),
            Column::LungRads => a.lung_rads.cmp(&b.lung_rads),
            Column::PNodule => a.p_nodule.total_cmp(&b.p_nodule),
            Column::PMalignant => a.p_malignant.total_cmp(&b.p_malignant),
        }
    }
}

/// The analysis part of the page's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The job whose messages count; older jobs' are ignored.
    pub job: u64,
    pub status: Status,
    /// Where the models run (known once the worker is up).
    pub backend: Option<Backend>,
    pub result: Option<Rc<AnalysisResult>>,
    /// Findings with p(nodule) below are hidden; the operating point until the reader moves it.
    pub threshold: f32,
    /// Whether the reader moved the threshold (a new scan then keeps it).
    pub threshold_chosen: bool,
    /// Column and descending.
    pub sort: (Column, bool),
    /// Index into `result.findings`.
    pub selected: Option<usize>,
    /// Something the reader should know about how the result was obtained.
    pub notice: Option<String>,
}

impl Default for Analysis {
    fn default() -> Self {
        Self {
            job: 0,
            status: Status::Idle,
            backend: None,
            result: None,
            threshold: 0.5,
            threshold_chosen: false,
            sort: (Column::PNodule, true),
            selected: None,
            notice: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AnalysisAction {
    /// A scan started decoding as `job`.
    Started {
        job: u64,
    },
    Skipped {
        job: u64,
        reason: String,
    },
    Progress {
        job: u64,
        stage: AnalysisStage,
        done: usize,
        total: usize,
    },
    Done {
        job: u64,
        result: Rc<AnalysisResult>,
    },
    Failed {
        job: u64,
        message: String,
    },
    Cancelled {
        job: u64,
    },
    /// The job runs again on a fresh CPU worker, because of `why`.
    FellBack {
        job: u64,
        why: String,
    },
    Backend(Backend),
    SetThreshold(f32),
    /// Sort by a column (again: reverse).
    Sort(Column),
    Select(Option<usize>),
    /// Select the next (+1) or previous (−1) shown finding, in table order.
    Step(i64),
}

impl Analysis {
    /// Applies `action`; `false` when nothing changed (stale job, same value).
    pub fn apply(&mut self, action: AnalysisAction) -> bool {
        let before = self.clone();
        match action {
            AnalysisAction::Started { job } => {
                *self = Analysis {
                    job,
                    status: Status::Decoding,
                    backend: self.backend,
                    threshold: self.threshold,
                    threshold_chosen: self.threshold_chosen,
                    sort: self.sort,
                    ..Analysis::default()
                };
            }
            AnalysisAction::Skipped { job, reason } if job == self.job => {
                self.status = Status::Skipped(reason);
            }
            AnalysisAction::Progress {
                job,
                stage,
                done,
                total,
            } if job == self.job && !self.finished() => {
                self.status = Status::Analysing { stage, done, total };
            }
            AnalysisAction::Done { job, result } if job == self.job && !self.finished() => {
                if !self.threshold_chosen {
                    self.threshold = result.operating_point;
                }
                self.backend = Some(result.backend);
                self.result = Some(result);
                self.status = Status::Done;
            }
            AnalysisAction::Failed { job, message } if job == self.job => {
                self.status = Status::Failed(message);
            }
            AnalysisAction::Cancelled { job } if job == self.job && !self.finished() => {
                self.status = Status::Cancelled;
            }
            AnalysisAction::FellBack { job, why } if job == self.job => {
                self.backend = Some(Backend::Cpu);
                self.notice = Some(format!("{why}; analysed again on the CPU"));
            }
            AnalysisAction::Backend(backend) => self.backend = Some(backend),
            AnalysisAction::SetThreshold(t) => {
                self.threshold = t.clamp(0.0, 1.0);
                self.threshold_chosen = true;
                if self.selected.is_some_and(|i| !self.shown().contains(&i)) {
                    self.selected = None;
                }
            }
            AnalysisAction::Sort(column) => {
                self.sort = if self.sort.0 == column {
                    (column, !self.sort.1)
                } else {
                    (column, true)
                };
            }
            AnalysisAction::Select(index) => {
                self.selected = index.filter(|i| self.shown().contains(i));
            }
            AnalysisAction::Step(delta) => {
                let shown = self.shown();
                if shown.is_empty() {
                    return false;
                }
                let last = shown.len() as i64 - 1;
                let at = match self
                    .selected
                    .and_then(|s| shown.iter().position(|&i| i == s))
                {
                    Some(at) => (at as i64 + delta).clamp(0, last),
                    None if delta >= 0 => 0,
                    None => last,
                };
                self.selected = Some(shown[at as usize]);
            }
            // Messages of jobs that are no longer the page's.
            _ => return false,
        }
        *self != before
    }

    /// Done, cancelled, skipped or failed: later messages of the job change nothing.
    fn finished(&self) -> bool {
        matches!(
            self.status,
            Status::Done | Status::Cancelled | Status::Skipped(_) | Status::Failed(_)
        )
    }

    /// Indices into `result.findings` of the findings shown, in table order.
    pub fn shown(&self) -> Vec<usize> {
        let Some(result) = &self.result else {
            return Vec::new();
        };
        let mut shown: Vec<usize> = (0..result.findings.len())
            .filter(|&i| result.findings[i].p_nodule >= self.threshold)
            .collect();
        let (column, descending) = self.sort;
        shown.sort_by(|&a, &b| {
            let order = column.compare(&result.findings[a], &result.findings[b]);
            if descending { order.reverse() } else { order }
        });
        shown
    }

    /// The report of what is shown: the findings at or above the threshold, most likely
    /// nodules first (the CLI's order), and the scan's category from them.
    pub fn report(&self) -> Option<Report> {
        let result = self.result.as_ref()?;
        let findings = result
            .findings
            .iter()
            .filter(|f| f.p_nodule >= self.threshold)
            .cloned()
            .collect();
        Some(Report::of_findings(
            findings,
            self.threshold,
            ScanSummary {
                candidates: result.candidates,
                scored: result.scored,
                lung_volume_ml: result.lung_volume_ml,
                lungs_covered: result.lungs_covered,
                warnings: result.warnings.clone(),
            },
        ))
    }

    /// The scan's Lung-RADS category from the findings shown.
    pub fn scan_assessment(&self) -> Option<Assessment> {
        let result = self.result.as_ref()?;
        let assessments: Vec<Assessment> = self
            .shown()
            .into_iter()
            .map(|i| Assessment {
                category: result.findings[i].lung_rads,
                rule: result.findings[i].lung_rads_rule.clone(),
            })
            .collect();
        Some(lung_rads::scan_category(&assessments, result.lungs_covered))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use nodulens_detect::{Category, NoduleType};

    fn finding(p_nodule: f32, diameter_mm: f64, lung_rads: Category) -> Finding {
        Finding {
            center_mm: [diameter_mm, 0.0, 0.0],
            center_voxel: [0, 0, 0],
            diameter_mm,
            long_axis_mm: diameter_mm,
            short_axis_mm: diameter_mm,
            volume_mm3: diameter_mm.powi(3) * 0.52,
            mean_hu: 20.0,
            nodule_type: NoduleType::Solid,
            solid_component_mm: None,
            calcified: false,
            on_pleura: false,
            p_nodule,
            p_malignant: 0.1,
            lung_rads,
            lung_rads_rule: format!("rule {}", lung_rads.code()),
            scale_mm: 6.0,
        }
    }

    pub(crate) fn result() -> Rc<AnalysisResult> {
        Rc::new(AnalysisResult {
            findings: vec![
                finding(0.99, 5.0, Category::Benign),
                finding(0.95, 9.0, Category::Suspicious),
                finding(0.6, 12.0, Category::VerySuspicious),
            ],
            operating_point: 0.9,
            candidates: 10,
            scored: 3,
            lung_volume_ml: 4000.0,
            lungs_covered: true,
            warnings: Vec::new(),
            backend: Backend::Cpu,
            helper_patches: 0,
            timings_ms: Vec::new(),
            posted_at_ms: 0.0,
            model: serde_json::Value::Null,
            models_id: "nodule 00000000, malignancy 00000000".into(),
        })
    }

    fn done(job: u64) -> Analysis {
        let mut a = Analysis::default();
        a.apply(AnalysisAction::Started { job });
        assert!(a.apply(AnalysisAction::Done {
            job,
            result: result()
        }));
        a
    }

    #[test]
    fn the_operating_point_filters_and_sets_the_category() {
        let mut a = done(1);
        assert_eq!(a.status.data_state(), "done");
        assert_eq!(a.threshold, 0.9);
        assert_eq!(a.shown(), vec![0, 1]);
        assert_eq!(a.scan_assessment().unwrap().category, Category::Suspicious);
        // Lowering the threshold shows the 12 mm finding, and the scan becomes 4B.
        a.apply(AnalysisAction::SetThreshold(0.5));
        assert_eq!(a.shown(), vec![0, 1, 2]);
        assert_eq!(
            a.scan_assessment().unwrap().category,
            Category::VerySuspicious
        );
        // Above every finding: none shown, category 1.
        a.apply(AnalysisAction::SetThreshold(1.0));
        assert!(a.shown().is_empty());
        assert_eq!(a.scan_assessment().unwrap().category, Category::Negative);
    }

    #[test]
    fn the_report_holds_what_is_shown_in_p_nodule_order() {
        let mut a = done(1);
        a.apply(AnalysisAction::Sort(Column::Diameter));
        let report = a.report().expect("a result");
        let p: Vec<f32> = report.findings.iter().map(|f| f.p_nodule).collect();
        assert_eq!(
            p,
            vec![0.99, 0.95],
            "above the threshold, whatever the table's order"
        );
        assert_eq!(report.threshold, 0.9);
        assert_eq!(
            Some(report.lung_rads),
            a.scan_assessment().map(|s| s.category)
        );
        assert_eq!(report.candidates, 10);
        assert!(Analysis::default().report().is_none());
    }

    #[test]
    fn a_chosen_threshold_survives_the_next_scan() {
        let mut a = done(1);
        a.apply(AnalysisAction::SetThreshold(0.5));
        a.apply(AnalysisAction::Started { job: 2 });
        assert_eq!(a.status, Status::Decoding);
        assert!(a.result.is_none());
        a.apply(AnalysisAction::Done {
            job: 2,
            result: result(),
        });
        assert_eq!(a.threshold, 0.5);
    }

    #[test]
    fn sorting_and_stepping_follow_the_table() {
        let mut a = done(1);
        a.apply(AnalysisAction::SetThreshold(0.0));
        a.apply(AnalysisAction::Sort(Column::Diameter));
        assert_eq!(a.shown(), vec![2, 1, 0], "largest first");
        a.apply(AnalysisAction::Sort(Column::Diameter));
        assert_eq!(a.shown(), vec![0, 1, 2], "again: smallest first");
        assert!(a.apply(AnalysisAction::Step(1)));
        assert_eq!(a.selected, Some(0));
        a.apply(AnalysisAction::Step(1));
        a.apply(AnalysisAction::Step(1));
        a.apply(AnalysisAction::Step(1));
        assert_eq!(a.selected, Some(2), "stops at the last");
        a.apply(AnalysisAction::Step(-1));
        assert_eq!(a.selected, Some(1));
        // Hiding the selected finding deselects it.
        a.apply(AnalysisAction::SetThreshold(0.97));
        assert_eq!(a.selected, None);
        assert!(!a.apply(AnalysisAction::Select(Some(2))), "hidden");
    }

    #[test]
    fn messages_of_other_jobs_are_ignored() {
        let mut a = done(2);
        assert!(!a.apply(AnalysisAction::Progress {
            job: 1,
            stage: AnalysisStage::Lungs,
            done: 0,
            total: 1
        }));
        assert!(!a.apply(AnalysisAction::Failed {
            job: 1,
            message: "old".into()
        }));
        // A finished job's late progress changes nothing either.
        assert!(!a.apply(AnalysisAction::Progress {
            job: 2,
            stage: AnalysisStage::Scoring,
            done: 1,
            total: 2
        }));
        assert_eq!(a.status, Status::Done);
    }

    #[test]
    fn states_for_the_page() {
        let mut a = Analysis::default();
        assert_eq!(a.status.data_state(), "idle");
        a.apply(AnalysisAction::Started { job: 3 });
        assert_eq!(a.status.data_state(), "decoding");
        a.apply(AnalysisAction::Progress {
            job: 3,
            stage: AnalysisStage::Scoring,
            done: 5,
            total: 10,
        });
        assert_eq!(a.status.data_state(), "analysing");
        a.apply(AnalysisAction::FellBack {
            job: 3,
            why: "WebGPU failed".into(),
        });
        assert_eq!(a.backend, Some(Backend::Cpu));
        assert!(a.notice.as_deref().unwrap().contains("on the CPU"));
        a.apply(AnalysisAction::Cancelled { job: 3 });
        assert_eq!(a.status.data_state(), "idle");
        a.apply(AnalysisAction::Started { job: 4 });
        a.apply(AnalysisAction::Skipped {
            job: 4,
            reason: "grey levels".into(),
        });
        assert_eq!(a.status, Status::Skipped("grey levels".into()));
        a.apply(AnalysisAction::Started { job: 5 });
        a.apply(AnalysisAction::Failed {
            job: 5,
            message: "boom".into(),
        });
        assert_eq!(a.status.data_state(), "error");
    }
}
