//! Decoded slices in arrival order, and putting the chosen ones in place: what a
//! streaming reader (DICOM today) and the browser's UI share.

use crate::ReadError;

/// Where [`DicomStream`] puts decoded slices, in the order it decodes them (the arrival
/// order): [`arrange_slices`] later puts the chosen ones in place.
pub trait ArrivalSink {
    /// About this many voxels are on their way (a hint for reserving memory).
    fn expect(&mut self, voxels: usize);
    /// A buffer for the next slice: `columns × rows` voxels, row by row.
    fn slice(&mut self, columns: usize, rows: usize) -> Result<&mut [i16], ReadError>;
    /// The slice of the last [`slice`](Self::slice) call is decoded.
    fn done(&mut self) -> Result<(), ReadError>;
}

/// Slices laid end to end in memory, in arrival order.
#[derive(Debug, Default)]
pub struct SliceBuffer {
    pub voxels: Vec<i16>,
    /// Length of each slice, in arrival order.
    pub lengths: Vec<usize>,
}

impl ArrivalSink for SliceBuffer {
    fn expect(&mut self, voxels: usize) {
        self.voxels
            .reserve(voxels.saturating_sub(self.voxels.len()));
    }
    fn slice(&mut self, columns: usize, rows: usize) -> Result<&mut [i16], ReadError> {
        let len = columns
            .checked_mul(rows)
            .and_then(|len| len.checked_add(self.voxels.len()).map(|_| len))
            .ok_or_else(|| {
                ReadError::NoImage(format!("{columns}×{rows} slices overflow memory"))
            })?;
        let start = self.voxels.len();
        self.voxels.resize(start.saturating_add(len), 0);
        self.lengths.push(len);
        Ok(&mut self.voxels[start..])
    }
    fn done(&mut self) -> Result<(), ReadError> {
        Ok(())
    }
}

/// Rearranges, in place, slices laid end to end in arrival order (`lengths[i]` voxels each)
/// so that `voxels` holds slice `order[0]`, then `order[1]`, … (each `slice_len` long); the
/// slices not named are dropped. No second copy of the volume is ever made.
// Every offset lies inside `voxels`, whose slice lengths add up to its length (checked
// first, without overflow), so none of these sums or products can wrap.
#[allow(clippy::arithmetic_side_effects)]
pub fn arrange_slices(
    voxels: &mut Vec<i16>,
    lengths: &[usize],
    order: &[usize],
    slice_len: usize,
) -> Result<(), String> {
    let total = lengths
        .iter()
        .try_fold(0usize, |sum, &len| sum.checked_add(len));
    if total != Some(voxels.len()) {
        return Err("slice lengths do not add up to the voxels".into());
    }
    let mut chosen = vec![usize::MAX; lengths.len()];
    for (slot, &arrival) in order.iter().enumerate() {
        match chosen.get_mut(arrival) {
            Some(c) if *c == usize::MAX && lengths[arrival] == slice_len => *c = slot,
            Some(c) if *c != usize::MAX => return Err(format!("slice {arrival} placed twice")),
            Some(_) => return Err(format!("slice {arrival} is not {slice_len} voxels")),
            None => return Err(format!("slice {arrival} never arrived")),
        }
    }
    // Compact the chosen slices to the front, keeping their arrival order. Each moves
    // towards the start (only other slices lie before it), so copy_within is safe.
    let mut compacted_slot = Vec::with_capacity(order.len());
    let mut start = 0;
    for (arrival, &len) in lengths.iter().enumerate() {
        if chosen[arrival] != usize::MAX {
            let to = compacted_slot.len() * slice_len;
            voxels.copy_within(start..start + len, to);
            compacted_slot.push(chosen[arrival]);
        }
        start += len;
    }
    voxels.truncate(order.len() * slice_len);
    // Compacted slice i belongs in slot compacted_slot[i]: follow each cycle of that
    // permutation, carrying one displaced slice in scratch.
    let mut scratch = vec![0i16; slice_len];
    let mut placed = vec![false; order.len()];
    for start in 0..order.len() {
        if placed[start] {
            continue;
        }
        scratch.copy_from_slice(&voxels[start * slice_len..(start + 1) * slice_len]);
        let mut from = start;
        loop {
            placed[from] = true;
            let to = compacted_slot[from];
            voxels[to * slice_len..(to + 1) * slice_len].swap_with_slice(&mut scratch);
            if to == start {
                break;
            }
            from = to;
        }
    }
    Ok(())
}
