//! Scoring, sans-IO: the pipeline hands out batches of patches and takes the model's
//! probabilities back, so the CLI (burn or the fused CPU pass, natively) and a browser worker
//! (WebGPU or the CPU) drive the same code and never see how patches are cut or merged.
//!
//! ```text
//! let mut scoring = Scoring::new(sites, patch_len, batch_size);
//! while let Some(batch) = scoring.next_batch(|site, out| site.cut_patch(volume, config, out)) {
//!     let probabilities = model.run(&batch.patches, batch.len());   // the caller's device
//!     scoring.submit(batch.id, &probabilities)?;                     // in any order
//! }
//! let scored = scoring.finish()?;                                    // (site, p) each
//! ```
//!
//! Items may also arrive while scoring runs ([`Scoring::push`]): the browser segments
//! candidates chunk by chunk and hands each chunk's patches to a helper worker at once.

/// Patches for up to `batch_size` items, `patch_len` values each, laid end to end.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchBatch {
    /// What [`Scoring::submit`] wants back with the batch's probabilities.
    pub id: usize,
    /// Index of the batch's first candidate.
    pub first: usize,
    pub patches: Vec<f32>,
    count: usize,
}

impl PatchBatch {
    /// Candidates in the batch.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What went wrong between the pipeline and its caller.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    #[error("batch {0} was never handed out")]
    UnknownBatch(usize),
    #[error("batch {id} has {expected} candidates but {got} probabilities came back")]
    WrongCount {
        id: usize,
        expected: usize,
        got: usize,
    },
    #[error("batch {0} was scored twice")]
    ScoredTwice(usize),
    #[error("a probability of batch {id} is {value}, not in [0, 1]")]
    NotAProbability { id: usize, value: f32 },
    #[error("{0} of the candidates are not scored yet")]
    Unfinished(usize),
}

/// The scoring of one scan's items (candidates, or sites ready to be cut; see the module's
/// description).
#[derive(Debug, Clone)]
pub struct Scoring<T> {
    candidates: Vec<T>,
    probabilities: Vec<Option<f32>>,
    patch_len: usize,
    batch_size: usize,
    next: usize,
    /// `first..end` of every batch handed out, by id.
    batches: Vec<(usize, usize)>,
}

impl<T> Scoring<T> {
    pub fn new(candidates: Vec<T>, patch_len: usize, batch_size: usize) -> Scoring<T> {
        let probabilities = vec![None; candidates.len()];
        Scoring {
            candidates,
            probabilities,
            patch_len,
            batch_size: batch_size.max(1),
            next: 0,
            batches: Vec::new(),
        }
    }

    /// More items to score, after those already given.
    pub fn push(&mut self, items: impl IntoIterator<Item = T>) {
        let before = self.candidates.len();
        self.candidates.extend(items);
        self.probabilities.resize(
            self.probabilities.len() + self.candidates.len() - before,
            None,
        );
    }

    /// Items given but not yet handed out in a batch.
    pub fn pending(&self) -> usize {
        self.candidates.len() - self.next
    }

    /// The next batch (up to `batch_size` of the items not handed out yet), its patches cut by
    /// `patch` (which appends `patch_len` values for one item); `None` while every item given
    /// so far has been handed out.
    pub fn next_batch(&mut self, mut patch: impl FnMut(&T, &mut Vec<f32>)) -> Option<PatchBatch> {
        if self.next >= self.candidates.len() {
            return None;
        }
        let first = self.next;
        let end = (first + self.batch_size).min(self.candidates.len());
        let mut patches = Vec::with_capacity((end - first) * self.patch_len);
        for c in &self.candidates[first..end] {
            let before = patches.len();
            patch(c, &mut patches);
            // A patch function that writes the wrong length must not shift every later patch.
            patches.resize(before + self.patch_len, 0.0);
        }
        self.next = end;
        self.batches.push((first, end));
        Some(PatchBatch {
            id: self.batches.len() - 1,
            first,
            patches,
            count: end - first,
        })
    }

    /// The probabilities of batch `id`, one per candidate, in the batch's order.
    pub fn submit(&mut self, id: usize, probabilities: &[f32]) -> Result<(), ScoringError> {
        let &(first, end) = self.batches.get(id).ok_or(ScoringError::UnknownBatch(id))?;
        if probabilities.len() != end - first {
            return Err(ScoringError::WrongCount {
                id,
                expected: end - first,
                got: probabilities.len(),
            });
        }
        if let Some(&value) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(ScoringError::NotAProbability { id, value });
        }
        if self.probabilities[first..end].iter().any(Option::is_some) {
            return Err(ScoringError::ScoredTwice(id));
        }
        for (slot, &p) in self.probabilities[first..end].iter_mut().zip(probabilities) {
            *slot = Some(p);
        }
        Ok(())
    }

    /// Candidates scored so far, and in all.
    pub fn progress(&self) -> (usize, usize) {
        (
            self.probabilities.iter().filter(|p| p.is_some()).count(),
            self.candidates.len(),
        )
    }

    /// Every candidate with its probability, in the candidates' order.
    pub fn finish(self) -> Result<Vec<(T, f32)>, ScoringError> {
        let missing = self.probabilities.iter().filter(|p| p.is_none()).count();
        if missing > 0 {
            return Err(ScoringError::Unfinished(missing));
        }
        Ok(self
            .candidates
            .into_iter()
            .zip(self.probabilities.into_iter().flatten())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Candidate;

    fn candidate(x: f64) -> Candidate {
        Candidate {
            center_mm: [x, 0.0, 0.0],
            center_voxel: [0, 0, 0],
            scale_mm: 5.0,
            score: 100,
        }
    }

    #[test]
    fn batches_go_out_and_probabilities_come_back_in_any_order() {
        let mut scoring = Scoring::new((0..5).map(|x| candidate(x as f64)).collect(), 2, 2);
        let mut batches = Vec::new();
        while let Some(b) = scoring.next_batch(|c, out| out.extend([c.center_mm[0] as f32, 1.0])) {
            batches.push(b);
        }
        assert_eq!(
            batches.iter().map(PatchBatch::len).collect::<Vec<_>>(),
            [2, 2, 1]
        );
        assert_eq!(batches[1].patches, [2.0, 1.0, 3.0, 1.0]);
        assert_eq!(scoring.progress(), (0, 5));
        // The caller's "model": the patch's first value over ten.
        for b in batches.iter().rev() {
            let p: Vec<f32> = b.patches.chunks(2).map(|patch| patch[0] / 10.0).collect();
            scoring.submit(b.id, &p).unwrap();
        }
        let scored = scoring.finish().unwrap();
        assert_eq!(
            scored.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            [0.0, 0.1, 0.2, 0.3, 0.4]
        );
    }

    #[test]
    fn items_pushed_while_scoring_are_batched_after_the_others() {
        let mut scoring = Scoring::new(vec![0.0f32, 1.0, 2.0], 1, 2);
        let first = scoring.next_batch(|x, out| out.push(*x)).unwrap();
        assert_eq!(scoring.pending(), 1);
        scoring.push([3.0, 4.0, 5.0]);
        assert_eq!(scoring.pending(), 4);
        let mut batches = vec![first];
        while let Some(b) = scoring.next_batch(|x, out| out.push(*x)) {
            batches.push(b);
        }
        let items: Vec<Vec<f32>> = batches.iter().map(|b| b.patches.clone()).collect();
        assert_eq!(items, [vec![0.0, 1.0], vec![2.0, 3.0], vec![4.0, 5.0]]);
        // Nothing left until more items come; a short batch when fewer than batch_size wait.
        assert!(scoring.next_batch(|x, out| out.push(*x)).is_none());
        scoring.push([6.0]);
        let last = scoring.next_batch(|x, out| out.push(*x)).unwrap();
        assert_eq!((last.id, last.first, last.len()), (3, 6, 1));
        batches.push(last);
        assert_eq!(
            scoring.clone().finish().unwrap_err(),
            ScoringError::Unfinished(7)
        );
        for b in batches.iter().rev() {
            let p: Vec<f32> = b.patches.iter().map(|x| x / 10.0).collect();
            scoring.submit(b.id, &p).unwrap();
        }
        let scored: Vec<f32> = scoring
            .finish()
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(scored, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
    }

    #[test]
    fn a_caller_that_gets_it_wrong_is_told_why() {
        let mut scoring = Scoring::new((0..3).map(|x| candidate(x as f64)).collect(), 1, 2);
        // A patch function writing too much is cut back to the patch length.
        let first = scoring
            .next_batch(|_, out| out.extend([1.0, 2.0, 3.0]))
            .unwrap();
        assert_eq!(first.patches.len(), 2);
        assert_eq!(
            scoring.submit(1, &[0.5]),
            Err(ScoringError::UnknownBatch(1))
        );
        assert_eq!(
            scoring.submit(0, &[0.5]),
            Err(ScoringError::WrongCount {
                id: 0,
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            scoring.submit(0, &[0.5, 1.5]),
            Err(ScoringError::NotAProbability { id: 0, value: 1.5 })
        );
        scoring.submit(0, &[0.5, 0.6]).unwrap();
        assert_eq!(
            scoring.submit(0, &[0.5, 0.6]),
            Err(ScoringError::ScoredTwice(0))
        );
        assert_eq!(
            scoring.clone().finish().unwrap_err(),
            ScoringError::Unfinished(1)
        );
    }
}
