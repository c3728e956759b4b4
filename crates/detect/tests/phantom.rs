//! The lung mask and the candidates on the synthetic chest (`nodulens_detect::phantom`) and on
//! volumes without lungs.

use nodulens_core::preprocess::synthetic_volume;
use nodulens_core::{IntensityUnits, Volume, VolumeHeader, WarningKind};
use nodulens_detect::{MAX_CANDIDATES, candidates, lung_mask, phantom};

fn world(volume: &Volume, v: [usize; 3]) -> [f64; 3] {
    volume.voxel_to_world(v.map(|c| c as f64))
}

#[test]
fn the_mask_holds_the_lungs_and_every_nodule_but_not_the_trachea() {
    let chest = phantom::chest();
    let mask = lung_mask(&chest);
    assert!(mask.found(), "{:?}", mask.warnings());
    for (centre, d) in phantom::NODULES {
        assert!(
            mask.contains(&chest, world(&chest, centre)),
            "nodule {centre:?} ({d} mm) outside the mask"
        );
    }
    let [ti, tj, _] = phantom::TRACHEA;
    assert!(
        !mask.contains(&chest, world(&chest, [ti, tj, phantom::TRACHEA_FROM + 4])),
        "trachea inside"
    );
    // Body wall, mediastinum and outside air are not lung.
    for outside in [[5, 80, 24], [14, 80, 24], [96, 100, 24], [96, 155, 24]] {
        assert!(
            !mask.contains(&chest, world(&chest, outside)),
            "{outside:?} inside"
        );
    }
    // Two ellipses of semi-axes 32 and 48 mm over 44 slices of 2 mm: 2 × π·32·48·88 mm³ ≈ 849 ml.
    let expected = 2.0 * std::f64::consts::PI * 32.0 * 48.0 * 88.0 / 1000.0;
    assert!(
        (mask.volume_ml() - expected).abs() < 0.08 * expected,
        "{} ml, expected {expected:.0}",
        mask.volume_ml()
    );
    assert!(mask.warnings().is_empty(), "{:?}", mask.warnings());
}

#[test]
fn every_nodule_has_a_candidate_and_the_candidates_are_deterministic() {
    let chest = phantom::chest();
    let mask = lung_mask(&chest);
    let found = candidates(&chest, &mask);
    assert!(!found.is_empty() && found.len() <= MAX_CANDIDATES);
    for (centre, d) in phantom::NODULES {
        let p = world(&chest, centre);
        let radius = (d as f64 / 2.0).max(2.5);
        let hit = found.iter().any(|c| c.distance_mm(p) <= radius);
        assert!(
            hit,
            "no candidate within {radius} mm of the {d} mm nodule at {centre:?}: {found:#?}"
        );
    }
    for c in &found {
        assert!(mask.contains(&chest, c.center_mm), "{c:?} outside the mask");
    }
    assert_eq!(found, candidates(&chest, &lung_mask(&chest)));
}

#[test]
fn a_volume_without_lungs_is_reported_as_such() {
    // A water cylinder in air (a phantom, or a head without its sinuses).
    let water = synthetic_volume([96, 96, 20], [1.0, 1.0, 2.5], [0.0; 3], |i, j, _| {
        let (x, y) = (i as i64 - 48, j as i64 - 48);
        if x * x + y * y < 40 * 40 { 0 } else { -1000 }
    });
    let mask = lung_mask(&water);
    assert!(!mask.found());
    assert_eq!(mask.warnings().len(), 1);
    assert_eq!(mask.warnings()[0].kind, WarningKind::NoLungs);
    assert!(candidates(&water, &mask).is_empty());

    // Grey levels (a PNG stack): not HU, so no lungs to look for.
    let chest = phantom::chest();
    let (mut header, voxels): (VolumeHeader, Vec<i16>) = chest.into_parts();
    header.units = IntensityUnits::GreyLevels;
    let grey = header.into_volume(voxels).unwrap();
    let mask = lung_mask(&grey);
    assert!(!mask.found());
    assert!(
        mask.warnings()[0].message.contains("not Hounsfield"),
        "{:?}",
        mask.warnings()
    );
}

/// The synthetic chest with only every `step`-th slice kept: slices `2 × step` mm apart.
fn every_nth_slice(step: usize) -> Volume {
    let (mut header, voxels) = phantom::chest().into_parts();
    let [nx, ny, nz] = header.dims;
    let kept: Vec<i16> = voxels
        .chunks(nx * ny)
        .step_by(step)
        .flatten()
        .copied()
        .collect();
    header.dims = [nx, ny, nz.div_ceil(step)];
    header.spacing[2] *= step as f64;
    header.into_volume(kept).unwrap()
}

#[test]
fn ten_millimetre_slices_still_give_the_lungs() {
    let thick = every_nth_slice(5);
    assert_eq!(thick.spacing()[2], 10.0);
    let mask = lung_mask(&thick);
    assert!(mask.found(), "{:?}", mask.warnings());
    let full = lung_mask(&phantom::chest()).volume_ml();
    assert!(
        (mask.volume_ml() - full).abs() < 0.2 * full,
        "{} ml against {full} ml",
        mask.volume_ml()
    );
    // The 14 mm nodule against the pleura spans a 10 mm slice: still inside.
    let ([i, j, k], _) = phantom::NODULES[3];
    assert!(mask.contains(&thick, world(&phantom::chest(), [i, j, k])));
}

#[test]
fn thick_slices_are_a_typed_warning() {
    let chest = phantom::chest();
    assert!(
        !lung_mask(&chest)
            .warnings()
            .iter()
            .any(|w| w.kind == WarningKind::ThickSlices)
    );
    // Every other slice of the 2 mm chest: 4 mm apart.
    let thick = every_nth_slice(2);
    let mask = lung_mask(&thick);
    assert!(mask.found());
    assert!(
        mask.warnings()
            .iter()
            .any(|w| w.kind == WarningKind::ThickSlices),
        "{:?}",
        mask.warnings()
    );
}

#[test]
fn lungs_cut_off_by_the_last_slice_are_partial_coverage() {
    let chest = phantom::chest();
    let [nx, ny, _] = chest.dims();
    // The lower 24 slices only: the lungs run off the top.
    let lower = nodulens_core::preprocess::crop_box(&chest, [0, 0, 0], [nx, ny, 24]).unwrap();
    let mask = lung_mask(&lower);
    assert!(mask.found());
    assert!(
        mask.warnings()
            .iter()
            .any(|w| w.kind == WarningKind::PartialCoverage && w.message.contains("last")),
        "{:?}",
        mask.warnings()
    );
}
