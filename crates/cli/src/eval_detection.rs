//! `nodulens eval-detection`: the whole pipeline on a folder of annotated scans, scored the
//! LUNA16 way — FROC, sensitivity at 1/8 … 8 false positives per scan, CPM — and at the
//! operating point.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use nodulens_detect::{Finding, distance_mm, merge_duplicates};
use serde::Serialize;

use crate::candidates::hit_radius;
use crate::data::{self, Annotations};
use crate::detect::{self, Models};

/// False positives per scan at which sensitivity is read (the LUNA16 points).
pub const FP_RATES: [f64; 7] = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0];
/// Readers a mark needs to be a reference nodule.
const REFERENCE_READERS: u64 = 3;

/// What one finding is, against a scan's marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The first finding on a reference nodule.
    Hit,
    /// A second finding on a reference nodule, or one on a mark by fewer than three
    /// readers or in a tumour box: counts neither way.
    Ignored,
    FalsePositive,
}

#[derive(Debug, Serialize)]
struct NoduleResult {
    center_mm: [f64; 3],
    diameter_mm: f64,
    /// p(nodule) of the finding that hit it, if any.
    hit_p: Option<f32>,
    hit_at_threshold: bool,
}

/// A mark that counts neither way (by fewer than three readers, or a tumour box), with the
/// most likely finding on it: whether the pipeline sees LIDC-IDRI-0002's 30 mm nodule or the
/// Lung_Dx-A0001 mass is on record although the FROC leaves them out.
#[derive(Debug, Serialize)]
struct OtherMark {
    /// "nodule" (a mark by fewer than three readers) or "tumour" (a box).
    kind: &'static str,
    /// The mark's centre, or the box's.
    center_mm: [f64; 3],
    /// The mark's diameter, or the box's largest side.
    size_mm: f64,
    n_readers: Option<u64>,
    /// p(nodule) of the most likely finding on it (within its radius, or inside the box).
    best_p: Option<f32>,
    /// That finding's measured diameter.
    best_diameter_mm: Option<f64>,
    found_at_threshold: bool,
}

#[derive(Debug, Serialize)]
struct ScanResult {
    scan: String,
    n_reference: usize,
    hits_at_threshold: usize,
    false_positives_at_threshold: usize,
    findings_at_threshold: usize,
    /// Tumour boxes with a finding at the threshold inside.
    tumours_found_at_threshold: Vec<bool>,
    lung_rads: String,
    nodules: Vec<NoduleResult>,
    other_marks: Vec<OtherMark>,
    timings_ms: detect::Timings,
    warnings: Vec<String>,
}

fn in_box(p: [f64; 3], (lo, hi): ([f64; 3], [f64; 3])) -> bool {
    (0..3).all(|a| p[a] >= lo[a].min(hi[a]) && p[a] <= lo[a].max(hi[a]))
}

/// The marks of `annotations` that are not reference nodules, and its tumour boxes, each with
/// the most likely of `findings` (most likely first) on it.
fn other_marks(findings: &[Finding], annotations: &Annotations, threshold: f32) -> Vec<OtherMark> {
    let mark = |kind, center_mm, size_mm, n_readers, best: Option<&Finding>| OtherMark {
        kind,
        center_mm,
        size_mm,
        n_readers,
        best_p: best.map(|f| f.p_nodule),
        best_diameter_mm: best.map(|f| f.diameter_mm),
        found_at_threshold: best.is_some_and(|f| f.p_nodule >= threshold),
    };
    let nodules = annotations
        .nodules
        .iter()
        .filter(|n| !is_reference(n))
        .map(|n| {
            let best = findings
                .iter()
                .find(|f| distance_mm(f.center_mm, n.center_mm) <= hit_radius(n.diameter_mm));
            mark("nodule", n.center_mm, n.diameter_mm, n.n_readers, best)
        });
    let tumours = annotations.tumours.iter().map(|&(lo, hi)| {
        let best = findings.iter().find(|f| in_box(f.center_mm, (lo, hi)));
        let center = std::array::from_fn(|a| (lo[a] + hi[a]) / 2.0);
        let side = (0..3).map(|a| (hi[a] - lo[a]).abs()).fold(0.0, f64::max);
        mark("tumour", center, side, None, best)
    });
    nodules.chain(tumours).collect()
}

/// Each finding's outcome (findings most likely first), and which reference nodule each hit.
pub fn classify(findings: &[Finding], annotations: &Annotations) -> Vec<(Outcome, Option<usize>)> {
    let references: Vec<usize> = (0..annotations.nodules.len())
        .filter(|&i| is_reference(&annotations.nodules[i]))
        .collect();
    let mut hit = vec![false; annotations.nodules.len()];
    findings
        .iter()
        .map(|f| {
            let on = |i: &usize| {
                let n = &annotations.nodules[*i];
                distance_mm(f.center_mm, n.center_mm) <= hit_radius(n.diameter_mm)
            };
            if let Some(&i) = references.iter().find(|i| on(i)) {
                if hit[i] {
                    return (Outcome::Ignored, None);
                }
                hit[i] = true;
                return (Outcome::Hit, Some(i));
            }
            let on_other =
                (0..annotations.nodules.len()).any(|i| !references.contains(&i) && on(&i));
            if on_other || annotations.tumours.iter().any(|&b| in_box(f.center_mm, b)) {
                (Outcome::Ignored, None)
            } else {
                (Outcome::FalsePositive, None)
            }
        })
        .collect()
}

fn is_reference(n: &data::AnnotatedNodule) -> bool {
    n.reference || n.n_readers.is_some_and(|r| r >= REFERENCE_READERS)
}

/// Sensitivity at each of [`FP_RATES`]: the hits ranked above the (⌊r·scans⌋+1)-th false
/// positive of all scans pooled, no interpolation.
pub fn froc(scored: &[(f32, Outcome)], n_reference: usize, n_scans: usize) -> Vec<(f64, f64)> {
    let mut ranked: Vec<(f32, Outcome)> = scored
        .iter()
        .copied()
        .filter(|(_, o)| *o != Outcome::Ignored)
        .collect();
    // At equal p a false positive ranks first: ties never flatter.
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then((a.1 == Outcome::Hit).cmp(&(b.1 == Outcome::Hit)))
    });
    FP_RATES
        .iter()
        .map(|&r| {
            let allowed = (r * n_scans as f64).floor() as usize;
            let mut fps = 0;
            let mut hits = 0;
            for (_, o) in &ranked {
                match o {
                    Outcome::FalsePositive => {
                        fps += 1;
                        if fps > allowed {
                            break;
                        }
                    }
                    _ => hits += 1,
                }
            }
            (r, hits as f64 / n_reference.max(1) as f64)
        })
        .collect()
}

/// The image of a scan folder: `dicom/`, `dicom.tar.xz` (unpacked into `cache`), an `.mhd`
/// or a `.nii.gz`.
fn scan_image(scans: &Path, scan: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    let dir = scans.join(scan);
    if dir.join("dicom").is_dir() {
        return Ok(dir.join("dicom"));
    }
    if dir.join("dicom.tar.xz").is_file() {
        return data::unpack_scan(scans, scan, cache);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    entries
        .into_iter()
        .find(|p| {
            let name = p.to_string_lossy();
            name.ends_with(".mhd") || name.ends_with(".nii.gz") || name.ends_with(".nii")
        })
        .with_context(|| {
            format!(
                "{}: no dicom/, dicom.tar.xz, .mhd or .nii.gz",
                dir.display()
            )
        })
}

pub struct EvalDetectionArgs<'a> {
    pub scans: &'a Path,
    pub models: &'a Path,
    pub cache: &'a Path,
    pub threshold: Option<f32>,
    pub only: &'a [String],
}

/// Runs the pipeline on every scan folder and returns the report (the keys of the issue).
pub fn evaluate(args: &EvalDetectionArgs) -> anyhow::Result<serde_json::Value> {
    let models: Models = detect::load_models(args.models, &nodulens_model::Device::flex())?;
    let threshold = args.threshold.unwrap_or(models.operating_point);
    let mut names: Vec<String> = std::fs::read_dir(args.scans)
        .with_context(|| format!("reading {}", args.scans.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("annotations.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| args.only.is_empty() || args.only.contains(n))
        .collect();
    names.sort();
    if names.is_empty() {
        bail!(
            "no scan folders with annotations.json in {}",
            args.scans.display()
        );
    }
    let mut scored: Vec<(f32, Outcome)> = Vec::new();
    let mut per_scan = Vec::new();
    let mut n_reference = 0;
    for scan in &names {
        let image = scan_image(args.scans, scan, args.cache)?;
        let volume = data::open_volume(&image)?;
        let annotations = data::read_annotations(&args.scans.join(scan).join("annotations.json"))?;
        let (report, timings) = detect::analyse(&volume, &models, 0.0, false)?;
        let merged = merge_duplicates(report.findings);
        let outcomes = classify(&merged, &annotations);
        let mut nodules: Vec<NoduleResult> = annotations
            .nodules
            .iter()
            .filter(|n| is_reference(n))
            .map(|n| NoduleResult {
                center_mm: n.center_mm,
                diameter_mm: n.diameter_mm,
                hit_p: None,
                hit_at_threshold: false,
            })
            .collect();
        let reference_index: Vec<usize> = (0..annotations.nodules.len())
            .filter(|&i| is_reference(&annotations.nodules[i]))
            .collect();
        let (mut hits, mut fps, mut shown) = (0, 0, 0);
        for (f, (outcome, nodule)) in merged.iter().zip(&outcomes) {
            scored.push((f.p_nodule, *outcome));
            let above = f.p_nodule >= threshold;
            shown += usize::from(above);
            if let Some(i) = nodule
                && let Some(slot) = reference_index.iter().position(|r| r == i)
            {
                nodules[slot].hit_p = Some(f.p_nodule);
                nodules[slot].hit_at_threshold = above;
                hits += usize::from(above);
            }
            if *outcome == Outcome::FalsePositive && above {
                fps += 1;
            }
        }
        let tumours_found = annotations
            .tumours
            .iter()
            .map(|&b| {
                merged
                    .iter()
                    .any(|f| f.p_nodule >= threshold && in_box(f.center_mm, b))
            })
            .collect();
        let shown_findings: Vec<_> = merged.iter().filter(|f| f.p_nodule >= threshold).collect();
        let lung_rads = shown_findings
            .iter()
            .map(|f| f.lung_rads)
            .max()
            .map_or("1", |c| c.code());
        n_reference += nodules.len();
        println!(
            "{scan:<18} reference {:>2}  hits {:>2}  false positives {:>3}  at p ≥ {threshold:.3}; {:.0} ms",
            nodules.len(),
            hits,
            fps,
            timings.total
        );
        let others = other_marks(&merged, &annotations, threshold);
        for m in &others {
            let seen = match (m.best_p, m.best_diameter_mm) {
                (Some(p), Some(d)) => format!(
                    "best finding p {p:.3} ({d:.1} mm), {} at p ≥ {threshold:.3}",
                    if m.found_at_threshold {
                        "listed"
                    } else {
                        "not listed"
                    }
                ),
                _ => "no finding on it".to_owned(),
            };
            println!(
                "{:<18} {} of {:.1} mm (counts neither way): {seen}",
                "", m.kind, m.size_mm
            );
        }
        per_scan.push(ScanResult {
            scan: scan.clone(),
            n_reference: nodules.len(),
            hits_at_threshold: hits,
            false_positives_at_threshold: fps,
            findings_at_threshold: shown,
            tumours_found_at_threshold: tumours_found,
            lung_rads: lung_rads.to_owned(),
            nodules,
            other_marks: others,
            timings_ms: timings,
            warnings: report.warnings.iter().map(|w| w.message.clone()).collect(),
        });
    }
    let n_scans = names.len();
    let curve = froc(&scored, n_reference, n_scans);
    let cpm = curve.iter().map(|(_, s)| s).sum::<f64>() / curve.len() as f64;
    let hits: usize = per_scan.iter().map(|s| s.hits_at_threshold).sum();
    let fps: usize = per_scan
        .iter()
        .map(|s| s.false_positives_at_threshold)
        .sum();
    let sensitivity_at_fp: serde_json::Map<String, serde_json::Value> = curve
        .iter()
        .map(|(r, s)| (format!("{r}"), serde_json::json!(s)))
        .collect();
    // The whole curve, for plots: (false positives per scan, sensitivity) at every rank.
    let mut ranked: Vec<(f32, Outcome)> = scored
        .iter()
        .copied()
        .filter(|(_, o)| *o != Outcome::Ignored)
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut h, mut f) = (0usize, 0usize);
    let mut points = vec![(0.0, 0.0, 1.0)];
    for (p, o) in &ranked {
        match o {
            Outcome::Hit => h += 1,
            _ => f += 1,
        }
        points.push((
            f as f64 / n_scans as f64,
            h as f64 / n_reference.max(1) as f64,
            f64::from(*p),
        ));
    }
    // Where to put an operating point: the p of the (⌊r·scans⌋+1)-th false positive; a
    // threshold just above it allows r false positives per scan.
    let false_positive_p: Vec<f32> = ranked
        .iter()
        .filter(|(_, o)| *o == Outcome::FalsePositive)
        .map(|(p, _)| *p)
        .collect();
    let threshold_at_fp: serde_json::Map<String, serde_json::Value> = FP_RATES
        .iter()
        .map(|&r| {
            let allowed = (r * n_scans as f64).floor() as usize;
            (
                format!("{r}"),
                serde_json::json!(false_positive_p.get(allowed).copied().unwrap_or(0.0)),
            )
        })
        .collect();
    Ok(serde_json::json!({
        "cpm": cpm,
        "sensitivity_at_fp": sensitivity_at_fp,
        "n_reference": n_reference,
        "n_scans": n_scans,
        "threshold": threshold,
        "sensitivity_at_threshold": hits as f64 / n_reference.max(1) as f64,
        "fp_per_scan_at_threshold": fps as f64 / n_scans as f64,
        "per_scan": per_scan,
        "threshold_at_fp": threshold_at_fp,
        "froc": points,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodulens_detect::{Category, NoduleType};

    fn finding(center_mm: [f64; 3], p_nodule: f32, diameter_mm: f64) -> Finding {
        Finding {
            center_mm,
            center_voxel: [0; 3],
            diameter_mm,
            long_axis_mm: diameter_mm,
            short_axis_mm: diameter_mm,
            volume_mm3: 100.0,
            mean_hu: 0.0,
            nodule_type: NoduleType::Solid,
            solid_component_mm: None,
            calcified: false,
            on_pleura: false,
            p_nodule,
            p_malignant: 0.5,
            lung_rads: Category::Suspicious,
            lung_rads_rule: String::new(),
            scale_mm: 10.0,
        }
    }

    #[test]
    fn marks_that_count_neither_way_keep_their_most_likely_finding() {
        let annotations = Annotations {
            nodules: vec![
                // A two-reader 30 mm nodule, seen below the threshold.
                data::AnnotatedNodule {
                    center_mm: [0.0; 3],
                    diameter_mm: 30.0,
                    n_readers: Some(2),
                    reference: false,
                },
                // A reference nodule: not an "other" mark.
                data::AnnotatedNodule {
                    center_mm: [100.0, 0.0, 0.0],
                    diameter_mm: 6.0,
                    n_readers: Some(4),
                    reference: true,
                },
            ],
            tumours: vec![([50.0, 50.0, 50.0], [70.0, 90.0, 60.0])],
        };
        // Most likely first, as the pipeline lists them.
        let findings = [
            finding([100.0, 0.0, 0.0], 0.99, 6.0),
            finding([60.0, 60.0, 55.0], 0.95, 35.0),
            finding([10.0, 0.0, 0.0], 0.8, 20.0),
            finding([-5.0, 0.0, 0.0], 0.7, 25.0),
        ];
        let others = other_marks(&findings, &annotations, 0.9);
        assert_eq!(others.len(), 2);
        let (nodule, tumour) = (&others[0], &others[1]);
        assert_eq!((nodule.kind, nodule.n_readers), ("nodule", Some(2)));
        assert_eq!(nodule.best_p, Some(0.8));
        assert_eq!(nodule.best_diameter_mm, Some(20.0));
        assert!(!nodule.found_at_threshold);
        assert_eq!(tumour.kind, "tumour");
        assert_eq!(tumour.center_mm, [60.0, 70.0, 55.0]);
        assert_eq!(tumour.size_mm, 40.0);
        assert_eq!(tumour.best_p, Some(0.95));
        assert!(tumour.found_at_threshold);
        // Nothing near: no finding on it.
        let none = other_marks(&findings[..1], &annotations, 0.9);
        assert_eq!(none[0].best_p, None);
        assert!(!none[0].found_at_threshold);
    }

    #[test]
    fn froc_counts_hits_above_the_allowed_false_positives() {
        use Outcome::*;
        // Two scans, four reference nodules.
        let scored = [
            (0.9, Hit),
            (0.8, FalsePositive),
            (0.7, Hit),
            (0.6, Ignored),
            (0.5, FalsePositive),
            (0.4, FalsePositive),
            (0.3, Hit),
        ];
        let curve = froc(&scored, 4, 2);
        let at = |r: f64| curve.iter().find(|(x, _)| *x == r).unwrap().1;
        // r = 1/8, 1/4: no false positive allowed: only the first hit.
        assert_eq!(at(0.125), 0.25);
        assert_eq!(at(0.25), 0.25);
        // r = 1/2: one allowed (⌊0.5·2⌋ = 1): hits above the second: 2.
        assert_eq!(at(0.5), 0.5);
        // r = 1: two allowed: hits above the third false positive: 2.
        assert_eq!(at(1.0), 0.5);
        // r = 2: four allowed: every hit.
        assert_eq!(at(2.0), 0.75);
        assert_eq!(at(8.0), 0.75);
    }
}
