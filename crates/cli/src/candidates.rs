//! `nodulens candidates` (one scan) and `nodulens eval-candidates` (the shared scans and crops):
//! the pipeline's first two stages, the lung mask and the candidates, as a user runs them and as
//! they are measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use nodulens_core::Volume;
use nodulens_detect::{Candidate, LungMask, candidates, lung_mask};
use serde::Serialize;

use crate::data;

/// What one run of the first two stages gives.
#[derive(Debug, Serialize)]
pub struct CandidateReport {
    pub lung_volume_ml: f64,
    pub lungs_found: bool,
    pub candidates: Vec<Candidate>,
    pub timings_ms: Timings,
    pub warnings: Vec<nodulens_core::Warning>,
}

#[derive(Debug, Serialize)]
pub struct Timings {
    pub lung_mask: f64,
    pub candidates: f64,
}

/// The lung mask and candidates of `volume`, timed; the volume's and the mask's warnings.
pub fn find_candidates(volume: &Volume) -> (LungMask, CandidateReport) {
    let start = Instant::now();
    let mask = lung_mask(volume);
    let mask_ms = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let found = candidates(volume, &mask);
    let candidates_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut warnings = volume.warnings().to_vec();
    warnings.extend(mask.warnings().iter().cloned());
    let report = CandidateReport {
        lung_volume_ml: mask.volume_ml(),
        lungs_found: mask.found(),
        candidates: found,
        timings_ms: Timings {
            lung_mask: mask_ms,
            candidates: candidates_ms,
        },
        warnings,
    };
    (mask, report)
}

/// `nodulens candidates`: a readable summary on stdout, the report as JSON to `json`.
pub fn run(volume: &Volume, json: Option<&Path>) -> anyhow::Result<()> {
    let (_, report) = find_candidates(volume);
    if report.lungs_found {
        println!("lungs        {:.0} ml", report.lung_volume_ml);
    } else {
        println!("lungs        none found");
    }
    println!(
        "candidates   {} (lung mask {:.0} ms, candidates {:.0} ms)",
        report.candidates.len(),
        report.timings_ms.lung_mask,
        report.timings_ms.candidates
    );
    for w in &report.warnings {
        println!("warning      {w}");
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("wrote        {}", path.display());
    }
    Ok(())
}

/// A marked nodule or tumour of a shared scan, and what the stages made of it.
#[derive(Debug, Serialize)]
struct MarkResult {
    kind: &'static str,
    center_mm: [f64; 3],
    diameter_mm: f64,
    n_readers: Option<u64>,
    reference: bool,
    in_mask: bool,
    /// Rank (0 = strongest) of the nearest candidate within the radius, if any.
    hit_rank: Option<usize>,
    nearest_mm: f64,
}

#[derive(Debug, Serialize)]
struct ScanResult {
    scan: String,
    lung_volume_ml: f64,
    candidates: usize,
    timings_ms: Timings,
    warnings: Vec<String>,
    marks: Vec<MarkResult>,
}

#[derive(Debug, Serialize)]
struct BandResult {
    band: &'static str,
    nodules: usize,
    hit: usize,
    fraction: f64,
}

#[derive(Debug, Serialize)]
struct CropResults {
    nodules: usize,
    hit: usize,
    fraction: f64,
    by_size: Vec<BandResult>,
    candidates_per_crop_mean: f64,
    candidates_per_crop_max: usize,
    missed: Vec<String>,
}

/// The hit radius of the LUNA16 rule, at least 2.5 mm.
pub fn hit_radius(diameter_mm: f64) -> f64 {
    (diameter_mm / 2.0).max(2.5)
}

/// The nearest candidate to `p` within `radius`: its rank and distance (or the nearest of all).
fn nearest(found: &[Candidate], p: [f64; 3], radius: f64) -> (Option<usize>, f64) {
    let mut best = (None, f64::INFINITY);
    for (rank, c) in found.iter().enumerate() {
        let d = c.distance_mm(p);
        if d < best.1 {
            best.1 = d;
        }
        if d <= radius && best.0.is_none() {
            best.0 = Some(rank);
        }
    }
    best
}

fn evaluate_scan(scans: &Path, cache: &Path, scan: &str) -> anyhow::Result<ScanResult> {
    let dicom = data::unpack_scan(scans, scan, cache)?;
    let volume = data::open_volume(&dicom)?;
    let (mask, report) = find_candidates(&volume);
    let annotations = data::read_annotations(&scans.join(scan).join("annotations.json"))?;
    let mut marks = Vec::new();
    for n in &annotations.nodules {
        let (hit_rank, nearest_mm) =
            nearest(&report.candidates, n.center_mm, hit_radius(n.diameter_mm));
        marks.push(MarkResult {
            kind: "nodule",
            center_mm: n.center_mm,
            diameter_mm: n.diameter_mm,
            n_readers: n.n_readers,
            reference: n.reference,
            in_mask: mask.contains(&volume, n.center_mm),
            hit_rank,
            nearest_mm,
        });
    }
    for &(lo, hi) in &annotations.tumours {
        let center = std::array::from_fn(|a| (lo[a] + hi[a]) / 2.0);
        let size: [f64; 3] = std::array::from_fn(|a| (hi[a] - lo[a]).abs());
        let diameter = size[0].min(size[1]);
        let (hit_rank, nearest_mm) = nearest(&report.candidates, center, hit_radius(diameter));
        marks.push(MarkResult {
            kind: "tumour",
            center_mm: center,
            diameter_mm: diameter,
            n_readers: None,
            reference: true,
            in_mask: mask.contains(&volume, center),
            hit_rank,
            nearest_mm,
        });
    }
    Ok(ScanResult {
        scan: scan.to_owned(),
        lung_volume_ml: report.lung_volume_ml,
        candidates: report.candidates.len(),
        timings_ms: report.timings_ms,
        warnings: report.warnings.iter().map(|w| w.message.clone()).collect(),
        marks,
    })
}

fn evaluate_crops(crops: &Path) -> anyhow::Result<CropResults> {
    const BANDS: [(&str, f64, f64); 4] = [
        ("3-6 mm", 0.0, 6.0),
        ("6-10 mm", 6.0, 10.0),
        ("10-20 mm", 10.0, 20.0),
        (">=20 mm", 20.0, f64::INFINITY),
    ];
    let rows = data::read_nodules_csv(crops)?;
    let mut hits = [(0usize, 0usize); 4];
    let mut counts = Vec::new();
    let mut missed = Vec::new();
    for row in &rows {
        let volume = data::open_volume(&crops.join(&row.image))?;
        let mask = LungMask::for_crop(&volume);
        let found = candidates(&volume, &mask);
        counts.push(found.len());
        let hit = nearest(&found, row.center, hit_radius(row.diameter_mm))
            .0
            .is_some();
        let band = BANDS
            .iter()
            .position(|&(_, lo, hi)| row.diameter_mm >= lo && row.diameter_mm < hi)
            .unwrap_or(0);
        hits[band].0 += 1;
        if hit {
            hits[band].1 += 1;
        } else {
            missed.push(format!("{} ({:.1} mm)", row.image, row.diameter_mm));
        }
    }
    let nodules = rows.len();
    let hit: usize = hits.iter().map(|h| h.1).sum();
    Ok(CropResults {
        nodules,
        hit,
        fraction: hit as f64 / nodules.max(1) as f64,
        by_size: BANDS
            .iter()
            .zip(hits)
            .map(|(&(band, _, _), (n, h))| BandResult {
                band,
                nodules: n,
                hit: h,
                fraction: h as f64 / n.max(1) as f64,
            })
            .collect(),
        candidates_per_crop_mean: counts.iter().sum::<usize>() as f64 / counts.len().max(1) as f64,
        candidates_per_crop_max: counts.iter().copied().max().unwrap_or(0),
        missed,
    })
}

/// `nodulens eval-candidates`: every shared whole scan and every crop; prints a summary and
/// writes the figures as JSON.
pub fn run_eval(
    data_root: &Path,
    cache: &Path,
    json: Option<&PathBuf>,
    skip_crops: bool,
    only: &[String],
) -> anyhow::Result<()> {
    let scans_dir = data::scans_dir(data_root).context("no scans/ folder in the data root")?;
    let mut scans = Vec::new();
    for scan in data::scan_names(Some(&scans_dir)) {
        if !only.is_empty() && !only.contains(&scan) {
            continue;
        }
        let result = evaluate_scan(&scans_dir, cache, &scan)?;
        println!(
            "{:<16} lungs {:>5.0} ml  candidates {:>3}  mask {:>4.0} ms  candidates {:>4.0} ms",
            result.scan,
            result.lung_volume_ml,
            result.candidates,
            result.timings_ms.lung_mask,
            result.timings_ms.candidates
        );
        for m in &result.marks {
            println!(
                "    {:<6} {:>5.1} mm {:>8} in mask {:<5} hit {:<9} nearest {:.1} mm",
                m.kind,
                m.diameter_mm,
                match (m.reference, m.n_readers) {
                    (true, _) => "ref".to_owned(),
                    (false, Some(n)) => format!("{n} reader"),
                    (false, None) => "-".to_owned(),
                },
                m.in_mask,
                m.hit_rank
                    .map_or("MISS".to_owned(), |r| format!("rank {r}")),
                m.nearest_mm
            );
        }
        for w in &result.warnings {
            println!("    warning: {w}");
        }
        scans.push(result);
    }
    let crops = if skip_crops {
        None
    } else {
        let crops = evaluate_crops(&data::crops_dir(data_root))?;
        println!(
            "crops: {}/{} nodules with a candidate within their radius ({:.3}); {:.1} candidates per crop (max {})",
            crops.hit,
            crops.nodules,
            crops.fraction,
            crops.candidates_per_crop_mean,
            crops.candidates_per_crop_max
        );
        for b in &crops.by_size {
            println!(
                "    {:<9} {:>3}/{:<3} {:.3}",
                b.band, b.hit, b.nodules, b.fraction
            );
        }
        Some(crops)
    };
    if let Some(path) = json {
        let text =
            serde_json::to_string_pretty(&serde_json::json!({ "scans": scans, "crops": crops }))?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
