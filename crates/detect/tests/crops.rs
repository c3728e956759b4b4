//! The crop mask and the candidates on the eight LIDC nodule crops committed for the model
//! tests (`tests/fixtures/model`): as on all 791 crops (`nodulens eval-candidates`), the
//! generator gets the crop as a volume, never the nodule's centre, and must put a candidate
//! within the nodule's radius (at least 2.5 mm) with the whole-scan parameters.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use nodulens_detect::{LungMask, MAX_CANDIDATES, candidates};

#[test]
fn every_committed_crop_has_a_candidate_on_its_nodule() {
    let dir = common::repo().join("tests/fixtures/model");
    let text = std::fs::read_to_string(dir.join("nodules.csv")).expect("nodules.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let (image, x, y, z, d) = (
        col("image"),
        col("coordX"),
        col("coordY"),
        col("coordZ"),
        col("diameter_mm"),
    );
    let mut crops = 0;
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let num = |c: usize| f[c].parse::<f64>().expect("a number");
        let centre = [num(x), num(y), num(z)];
        let volume = common::open_paths(&[dir.join(f[image])]).expect("the crop opens");
        let mask = LungMask::for_crop(&volume);
        assert!(
            mask.contains(&volume, centre),
            "{}: the nodule is outside the crop's mask",
            f[image]
        );
        let found = candidates(&volume, &mask);
        assert!(found.len() <= MAX_CANDIDATES);
        let radius = (num(d) / 2.0).max(2.5);
        let nearest = found
            .iter()
            .map(|c| c.distance_mm(centre))
            .fold(f64::INFINITY, f64::min);
        assert!(
            nearest <= radius,
            "{}: nearest candidate {nearest:.1} mm, radius {radius:.1}",
            f[image]
        );
        crops += 1;
    }
    assert_eq!(crops, 8);
}
