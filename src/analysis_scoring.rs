//! One job's scoring in the analysis worker, driving the pipeline's sans-IO [`Scoring`]:
//! while the worker segments candidates chunk by chunk, each chunk's batches go to the
//! scoring helpers (CPU only, see [`crate::helper_protocol`]); once segmentation is done the
//! worker scores what is left itself, side by side with them. With no helper (WebGPU, one
//! core, or helpers that failed) the worker scores every batch itself, as before.

use std::ops::Range;

use nodulens_core::Volume;
use nodulens_detect::{PatchBatch, Scoring, ScoringError, Site};
use nodulens_model::Classifier;

use crate::analysis::Backend;
use crate::analysis_protocol::AnalysisError;
use crate::helper_pool::HelperPool;
use crate::helper_protocol::{FromHelper, HelperModel, Lent, Loans};

/// Patches per model call on the CPU: a batch takes about 0.1 s in the browser, so Cancel,
/// progress and the helpers' answers are seen that often, and the last batches of the
/// worker and its helpers end close together.
const CPU_BATCH: usize = 32;
/// On WebGPU: large enough for the GPU to pay.
const GPU_BATCH: usize = 64;
/// Batches a helper holds at once: one it scores and one waiting, so it never idles while
/// the worker is busy between two looks at its messages.
const HELD: usize = 2;
/// Helpers that have not answered for this long are given up; the worker scores their
/// batches.
const SILENT_HELPER_MS: f64 = 15_000.0;

fn internal(e: ScoringError) -> AnalysisError {
    AnalysisError::Internal(e.to_string())
}

pub struct JobScoring<'a> {
    /// Nodule and malignancy, in [`HelperModel::ALL`]'s order.
    classifiers: [&'a Classifier; 2],
    backend: Backend,
    volume: &'a Volume,
    helpers: Option<&'a HelperPool>,
    /// Items are indices into the job's segmented sites.
    scorings: [Scoring<usize>; 2],
    loans: Loans,
    /// Batches of helpers that failed, to score here.
    redo: Vec<Lent>,
    /// Patches scored, by anyone, and by helpers.
    done: usize,
    by_helpers: usize,
    /// `Date.now()` of the helpers' last answer (or of the first loan since).
    heard_at: f64,
}

impl<'a> JobScoring<'a> {
    pub fn new(
        classifiers: [&'a Classifier; 2],
        backend: Backend,
        volume: &'a Volume,
        helpers: Option<&'a HelperPool>,
    ) -> Self {
        let batch = match backend {
            Backend::Cpu => CPU_BATCH,
            Backend::WebGpu => GPU_BATCH,
        };
        JobScoring {
            classifiers,
            backend,
            volume,
            helpers,
            scorings: classifiers
                .map(|c| Scoring::new(Vec::new(), c.preprocess.patch_len(), batch)),
            loans: Loans::default(),
            redo: Vec::new(),
            done: 0,
            by_helpers: 0,
            heard_at: js_sys::Date::now(),
        }
    }

    /// Sites `sites` (indices into the job's sites) have been segmented: score them with
    /// both models.
    pub fn push(&mut self, sites: Range<usize>) {
        for scoring in &mut self.scorings {
            scoring.push(sites.clone());
        }
    }

    /// Patches scored so far.
    pub fn done(&self) -> usize {
        self.done
    }

    /// Patches the helpers scored.
    pub fn helper_patches(&self) -> usize {
        self.by_helpers
    }

    /// The next batch of either model, cut from `measured`.
    fn next_batch(&mut self, measured: &[Site]) -> Option<(HelperModel, PatchBatch)> {
        let volume = self.volume;
        for model in HelperModel::ALL {
            let config = &self.classifiers[model.index()].preprocess;
            let scoring = &mut self.scorings[model.index()];
            if let Some(batch) =
                scoring.next_batch(|&i, out| measured[i].cut_patch(volume, config, out))
            {
                return Some((model, batch));
            }
        }
        None
    }

    /// Hands batches to every ready helper that holds fewer than [`HELD`].
    pub fn lend(&mut self, measured: &[Site]) {
        let Some(pool) = self.helpers else {
            return;
        };
        for helper in pool.ready() {
            while self.loans.held_by(helper) < HELD {
                let Some((model, batch)) = self.next_batch(measured) else {
                    return;
                };
                if self.loans.is_empty() {
                    self.heard_at = js_sys::Date::now();
                }
                // Items were pushed as consecutive site indices, so a batch's items are
                // `first..first + len`.
                let items = (batch.first..batch.first + batch.len()).collect();
                let request = self.loans.lend(helper, model, batch.id, items);
                pool.send(helper, request, model, &batch.patches);
            }
        }
    }

    /// Takes in the helpers' answers that have arrived.
    pub fn collect(&mut self) -> Result<(), AnalysisError> {
        let Some(pool) = self.helpers else {
            return Ok(());
        };
        for (helper, message) in pool.collect() {
            self.heard_at = js_sys::Date::now();
            match message {
                FromHelper::Scored {
                    request,
                    probabilities,
                } => {
                    // An answer to a job left behind is no loan of this one.
                    let Some(lent) = self.loans.returned(request) else {
                        continue;
                    };
                    // An answer that does not fit its batch is scored again here.
                    if lent.items.len() != probabilities.len()
                        || probabilities.iter().any(|p| !p.is_finite())
                    {
                        web_sys::console::warn_1(
                            &format!("scoring helper {helper}: a malformed answer; scored here")
                                .into(),
                        );
                        self.redo.push(lent);
                        continue;
                    }
                    self.scorings[lent.model.index()]
                        .submit(lent.batch, &probabilities)
                        .map_err(internal)?;
                    self.done += probabilities.len();
                    self.by_helpers += probabilities.len();
                }
                FromHelper::Failed {
                    request: Some(request),
                    message,
                } => {
                    web_sys::console::warn_1(
                        &format!("scoring helper {helper}: {message}; scored here").into(),
                    );
                    self.redo.extend(self.loans.returned(request));
                }
                // The pool has logged why it stopped.
                FromHelper::Failed { request: None, .. } => {
                    self.redo.extend(self.loans.recall(helper));
                }
                FromHelper::Ready => {}
            }
        }
        Ok(())
    }

    /// Scores one batch here: a failed helper's, else the next one. `false` when there is
    /// none (helpers may still hold some: see [`JobScoring::wait_for_helpers`]).
    pub async fn score_one_here(&mut self, measured: &[Site]) -> Result<bool, AnalysisError> {
        let (model, batch, patches) = if let Some(lent) = self.redo.pop() {
            let config = &self.classifiers[lent.model.index()].preprocess;
            let mut patches = Vec::with_capacity(lent.items.len() * config.patch_len());
            for &i in &lent.items {
                measured[i].cut_patch(self.volume, config, &mut patches);
            }
            (lent.model, lent.batch, patches)
        } else if let Some((model, batch)) = self.next_batch(measured) {
            (model, batch.id, batch.patches)
        } else {
            return Ok(false);
        };
        let probabilities = self.classifiers[model.index()]
            .predict_async(&patches)
            .await
            .map_err(|e| match self.backend {
                Backend::WebGpu => AnalysisError::Gpu(e.to_string()),
                Backend::Cpu => AnalysisError::Internal(e.to_string()),
            })?;
        self.scorings[model.index()]
            .submit(batch, &probabilities)
            .map_err(internal)?;
        self.done += probabilities.len();
        Ok(true)
    }

    /// Waits a little for the helpers' answers; `false` when they hold nothing. Helpers
    /// silent for too long are given up and their batches scored here.
    pub async fn wait_for_helpers(&mut self) -> bool {
        let Some(pool) = self.helpers else {
            return false;
        };
        if self.loans.is_empty() {
            return false;
        }
        if js_sys::Date::now() - self.heard_at > SILENT_HELPER_MS {
            web_sys::console::warn_1(&"scoring helpers stopped answering; scored here".into());
            // Those that held loans are given up: lent more, they would stall the next job too.
            let recalled = self.loans.recall_all();
            for lent in &recalled {
                pool.give_up(lent.helper);
            }
            self.redo.extend(recalled);
            return true;
        }
        pool.wait(50.0).await;
        true
    }

    /// Each model's probability per site, once every batch is scored.
    pub fn finish(self, sites: usize) -> Result<[Vec<f32>; 2], AnalysisError> {
        let [nodule, malignancy] = self.scorings;
        let by_site = |scoring: Scoring<usize>| -> Result<Vec<f32>, AnalysisError> {
            let mut by_site = vec![0.0f32; sites];
            for (i, p) in scoring.finish().map_err(internal)? {
                by_site[i] = p;
            }
            Ok(by_site)
        };
        Ok([by_site(nodule)?, by_site(malignancy)?])
    }
}
