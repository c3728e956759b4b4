//! Messages between the analysis worker and its scoring helpers, and the bookkeeping of the
//! batches they hold.
//!
//! On the CPU the models are most of an analysis, and WebAssembly in a worker runs on one
//! core. The analysis worker therefore starts helpers (more copies of its own script, with
//! `?role=helper`, from the module it already compiled) that only run the models: it hands
//! them batches of patches while it segments the next candidates, and scores batches itself
//! once segmentation is done. Patches are computed by the same wasm on every worker, so a
//! batch's probabilities do not depend on who scored it.
//!
//! Envelope as [`crate::analysis_protocol`]'s: `{ data, patches?, weights? }`, `data` a JSON
//! string; `patches` a `Float32Array` (transferred), `weights` the two weight files' buffers.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Which of the two models (the manifest's order: nodule, malignancy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperModel {
    Nodule,
    Malignancy,
}

impl HelperModel {
    pub const ALL: [HelperModel; 2] = [HelperModel::Nodule, HelperModel::Malignancy];

    /// Position in [`HelperModel::ALL`] (and in `Load`'s weights).
    pub fn index(self) -> usize {
        match self {
            HelperModel::Nodule => 0,
            HelperModel::Malignancy => 1,
        }
    }
}

/// Analysis worker → helper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToHelper {
    /// The models, in the helper's first message (with the compiled module): `manifest.json`'s
    /// text here, the two weight files (already checked against it) in the envelope's
    /// `weights`, nodule first.
    Load { manifest: String },
    /// Probabilities of the envelope's `patches` under `model`.
    Score { request: u64, model: HelperModel },
}

/// Helper → analysis worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromHelper {
    /// Models loaded and warmed up: it takes `Score` requests.
    Ready,
    Scored {
        request: u64,
        probabilities: Vec<f32>,
    },
    /// `request` is `None` when the helper could not load the models.
    Failed {
        request: Option<u64>,
        message: String,
    },
}

/// A batch a helper is scoring: enough to score it here instead if the helper fails.
#[derive(Debug, Clone, PartialEq)]
pub struct Lent {
    pub helper: usize,
    pub request: u64,
    pub model: HelperModel,
    /// The batch's id in that model's `Scoring`.
    pub batch: usize,
    /// The batch's items (site indices), to cut its patches again.
    pub items: Vec<usize>,
}

/// Request ids, unique for the worker's lifetime: a late answer to a job left behind can
/// never be taken for an answer to the current one.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// One job's batches lent to helpers, by request.
#[derive(Debug, Default)]
pub struct Loans {
    lent: Vec<Lent>,
}

impl Loans {
    /// Records a batch lent to `helper`; returns its request id.
    pub fn lend(
        &mut self,
        helper: usize,
        model: HelperModel,
        batch: usize,
        items: Vec<usize>,
    ) -> u64 {
        let request = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
        self.lent.push(Lent {
            helper,
            request,
            model,
            batch,
            items,
        });
        request
    }

    /// How many batches `helper` holds.
    pub fn held_by(&self, helper: usize) -> usize {
        self.lent.iter().filter(|l| l.helper == helper).count()
    }

    pub fn is_empty(&self) -> bool {
        self.lent.is_empty()
    }

    /// The loan `request` came back: what it was (`None` for a request of a job left
    /// behind, or one answered already).
    pub fn returned(&mut self, request: u64) -> Option<Lent> {
        let at = self.lent.iter().position(|l| l.request == request)?;
        Some(self.lent.remove(at))
    }

    /// `helper` failed: every batch it held, to be scored elsewhere.
    pub fn recall(&mut self, helper: usize) -> Vec<Lent> {
        let (theirs, others) = std::mem::take(&mut self.lent)
            .into_iter()
            .partition(|l| l.helper == helper);
        self.lent = others;
        theirs
    }

    /// Every loan, of every helper (helpers that stopped answering).
    pub fn recall_all(&mut self) -> Vec<Lent> {
        std::mem::take(&mut self.lent)
    }
}

/// How many helpers to start next to the analysis worker on `cores` logical cores: one per
/// core beyond the worker's own, at most three (segmentation, on the worker, then limits).
pub fn helper_count(cores: usize) -> usize {
    cores.saturating_sub(1).min(3)
}

/// The option that makes a worker a helper (in the query string it is named with).
pub const HELPER_QUERY: &str = "role=helper";

/// Whether a worker started with the options `query` (its name) is a helper.
pub fn is_helper(query: &str) -> bool {
    query
        .trim_start_matches('?')
        .split('&')
        .any(|pair| pair == HELPER_QUERY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loans_come_back_once_and_a_failed_helper_hands_its_own_back() {
        let mut loans = Loans::default();
        let a = loans.lend(0, HelperModel::Nodule, 0, vec![0, 1]);
        let b = loans.lend(1, HelperModel::Nodule, 1, vec![2, 3]);
        let c = loans.lend(0, HelperModel::Malignancy, 0, vec![0, 1]);
        assert_ne!(a, b);
        assert_eq!((loans.held_by(0), loans.held_by(1)), (2, 1));
        let back = loans.returned(b).unwrap();
        assert_eq!((back.helper, back.batch, back.items), (1, 1, vec![2, 3]));
        assert_eq!(loans.returned(b), None, "answered twice");
        let recalled = loans.recall(0);
        assert_eq!(
            recalled.iter().map(|l| l.request).collect::<Vec<_>>(),
            [a, c]
        );
        assert!(loans.is_empty());
        assert_eq!(loans.returned(a), None, "a recalled loan's late answer");
        // Request ids are never reused, even by the next job's loans, so a late answer
        // cannot land on a new loan.
        let mut next_job = Loans::default();
        let d = next_job.lend(0, HelperModel::Nodule, 0, vec![4]);
        assert!(d > c);
        assert_eq!(next_job.returned(c), None);
        let e = next_job.lend(1, HelperModel::Malignancy, 0, vec![4]);
        assert_eq!(
            next_job
                .recall_all()
                .iter()
                .map(|l| l.request)
                .collect::<Vec<_>>(),
            [d, e]
        );
        assert!(next_job.is_empty());
    }

    #[test]
    fn helpers_fill_the_other_cores_up_to_three() {
        assert_eq!([0, 1, 2, 4, 8, 64].map(helper_count), [0, 0, 1, 3, 3, 3]);
        assert!(is_helper("?role=helper"));
        assert!(is_helper("?backend=cpu&role=helper"));
        assert!(!is_helper("?backend=cpu"));
        assert!(!is_helper(""));
    }

    #[test]
    fn messages_are_tagged_serde_data() {
        let message = ToHelper::Score {
            request: 7,
            model: HelperModel::Malignancy,
        };
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["kind"], "score");
        assert_eq!(json["model"], "malignancy");
        assert_eq!(serde_json::from_value::<ToHelper>(json).unwrap(), message);
        // Probabilities survive the JSON string exactly (f32 → shortest text → f32).
        let scored = FromHelper::Scored {
            request: 1,
            probabilities: vec![0.1, 1.0 / 3.0, 0.999_999_9, 1e-30],
        };
        let text = serde_json::to_string(&scored).unwrap();
        assert_eq!(serde_json::from_str::<FromHelper>(&text).unwrap(), scored);
    }
}
