//! Slices sorted along the normal: spacing, origin, direction, and every irregularity.

// Lengths, offsets and counts here come from untrusted bytes, and wasm32 has a 32-bit
// `usize`: every sum must be checked (or widened), every narrowing cast justified.
#![deny(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]

use super::*;

pub(super) struct Geometry {
    pub(super) planes: Vec<Plane>,
    pub(super) spacing: [f64; 3],
    pub(super) origin: [f64; 3],
    pub(super) direction: [f64; 9],
}

/// Sorts planes along the slice normal and derives spacing, reporting every
/// irregularity instead of silently averaging it away.
pub(super) fn arrange(group: &Group, warnings: &mut Vec<Warning>) -> Geometry {
    let header = &group.first;
    let (row_dir, col_dir) = match header.orientation {
        Some(o) if norm([o[0], o[1], o[2]]) > 0.5 && norm([o[3], o[4], o[5]]) > 0.5 => {
            let r = [o[0], o[1], o[2]];
            let c = [o[3], o[4], o[5]];
            let (nr, nc) = (norm(r), norm(c));
            (
                [r[0] / nr, r[1] / nr, r[2] / nr],
                [c[0] / nc, c[1] / nc, c[2] / nc],
            )
        }
        _ => {
            warnings.push(Warning::new(
                WarningKind::AssumedGeometry,
                "no Image Orientation (Patient): axial orientation assumed".to_owned(),
            ));
            ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        }
    };
    let normal = cross(row_dir, col_dir);
    let n = norm(normal).max(1e-9);
    let normal = [normal[0] / n, normal[1] / n, normal[2] / n];
    let [dy, dx] = header.pixel_spacing.unwrap_or([1.0, 1.0]);
    let fallback_z = header
        .spacing_between_slices
        .or(header.metadata.slice_thickness_mm)
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0);

    let mut planes = group.planes.clone();
    let all_positioned = planes.iter().all(|p| p.position.is_some());
    if !all_positioned {
        if planes.len() > 1 {
            warnings.push(Warning::new(WarningKind::AssumedGeometry, format!(
                "slice positions missing: slices ordered by instance number, {fallback_z} mm apart"
            )));
        }
        planes.sort_by_key(|p| (p.instance.unwrap_or(i64::MAX), p.file, p.frame));
        let origin = planes.first().and_then(|p| p.position).unwrap_or([0.0; 3]);
        return Geometry {
            planes,
            spacing: [dx, dy, fallback_z],
            origin,
            direction: direction_from_axes(row_dir, col_dir, normal),
        };
    }
    let along = |p: &Plane| dot(p.position.unwrap_or([0.0; 3]), normal);
    planes.sort_by(|a, b| {
        along(a)
            .total_cmp(&along(b))
            .then(a.file.cmp(&b.file))
            .then(a.frame.cmp(&b.frame))
    });

    // Duplicate positions: keep the first plane at each position.
    let before = planes.len();
    planes.dedup_by(|b, a| (along(a) - along(b)).abs() < 1e-3);
    if planes.len() < before {
        warnings.push(Warning::new(
            WarningKind::DuplicateSlices,
            format!(
                "{} slice(s) share a position with another and were dropped (duplicate positions)",
                before.saturating_sub(planes.len())
            ),
        ));
    }

    let gaps: Vec<f64> = planes
        .windows(2)
        .map(|w| along(&w[1]) - along(&w[0]))
        .collect();
    let spacing_z = if gaps.is_empty() {
        fallback_z
    } else {
        let mut sorted = gaps.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    if let (Some(min), Some(max)) = (
        gaps.iter().copied().min_by(f64::total_cmp),
        gaps.iter().copied().max_by(f64::total_cmp),
    ) {
        let missing: Vec<usize> = (0..gaps.len())
            .filter(|&i| gaps[i] > 1.5 * spacing_z)
            .collect();
        if let Some(&first) = missing.first() {
            let lost: f64 = missing
                .iter()
                .map(|&i| (gaps[i] / spacing_z).round() - 1.0)
                .sum();
            warnings.push(Warning::new(WarningKind::SliceGaps, format!(
                "missing slices: {} gap(s) wider than the usual {:.3} mm (first after slice {}, {:.3} mm; about {} slice(s) missing); the volume spacing is not uniform there",
                missing.len(),
                spacing_z,
                first,
                gaps[first],
                lost
            )));
        } else if max - min > 0.01 * spacing_z.max(0.01) && max - min > 1e-3 {
            warnings.push(Warning::new(WarningKind::UnevenSpacing, format!(
                "uneven slice spacing: gaps from {min:.3} to {max:.3} mm; the volume uses the median {spacing_z:.3} mm"
            )));
        }
    }

    let first = planes[0].position.unwrap_or([0.0; 3]);
    if planes.len() > 1 {
        let last = planes.last().and_then(|p| p.position).unwrap_or([0.0; 3]);
        let step = [last[0] - first[0], last[1] - first[1], last[2] - first[2]];
        let length = norm(step);
        if length > 1e-6 {
            let cos = (dot(step, normal) / length).clamp(-1.0, 1.0);
            let tilt = cos.acos().to_degrees();
            if tilt > 0.5 {
                warnings.push(Warning::new(WarningKind::GantryTilt, format!(
                    "gantry tilt of {tilt:.1}°: slices are offset, not stacked straight; the volume is shown unsheared"
                )));
            }
        }
    }
    Geometry {
        planes,
        spacing: [dx, dy, spacing_z],
        origin: first,
        direction: direction_from_axes(row_dir, col_dir, normal),
    }
}
