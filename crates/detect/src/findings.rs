//! From candidates to findings: each candidate segmented and measured (a [`Site`]), its patch
//! cut from its own deterministic context, the models' probabilities attached by the caller
//! (through [`Scoring`](crate::Scoring)), duplicates merged in millimetres, a Lung-RADS
//! category each, and the scan's report.

use nodulens_core::preprocess::{
    PatchTransform, PreprocessConfig, extract_views_into, nodule_context,
};
use nodulens_core::{Volume, Warning, WarningKind};
use serde::{Deserialize, Serialize};

use crate::candidates::{Candidate, distance_mm};
use crate::lung::LungMask;
use crate::lung_rads::{self, Assessment, Category};
use crate::measure::{Measurement, NoduleType, measure};
use crate::segment::segment;

/// A segmentation whose centre lies farther than this many candidate scales from the
/// candidate found something else (a vessel or the wall beside a faint blob).
const MAX_SHIFT_SCALES: f64 = 1.0;
/// Two findings closer than this (mm), or than the larger one's radius, are one.
pub const MERGE_MIN_MM: f64 = 2.5;

/// A candidate ready to be scored: where it is, what it measures, which slices its context
/// holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub candidate: Candidate,
    /// The segmentation's centroid, LPS mm: where the patch is centred and the finding
    /// reported.
    pub center_mm: [f64; 3],
    pub measurement: Measurement,
}

impl Site {
    /// The site of a finding near `seed_mm`: `None` when nothing there can be segmented
    /// (no tissue denser than aerated lung near the seed), or the segmentation lies more than
    /// `max_shift_mm` from the seed. `lungs`: the scan's, for the juxtapleural rule.
    pub fn at(
        volume: &Volume,
        lungs: Option<&LungMask>,
        seed_mm: [f64; 3],
        max_shift_mm: f64,
    ) -> Option<Site> {
        let seg = segment(volume, seed_mm)?;
        if seg.voxel_count() == 0 {
            return None;
        }
        let measurement = measure(volume, &seg, lungs);
        let shift = distance_mm(measurement.center_mm, seed_mm);
        if shift > max_shift_mm {
            return None;
        }
        let voxel = volume
            .world_to_voxel(seed_mm)
            .map(|v| v.max(0.0).round() as usize);
        Some(Site {
            candidate: Candidate {
                center_mm: seed_mm,
                center_voxel: voxel,
                scale_mm: measurement.diameter_mm,
                score: 0,
            },
            center_mm: measurement.center_mm,
            measurement,
        })
    }

    /// Appends this site's patch (the models' one patch function on the site's context) to
    /// `out`.
    pub fn cut_patch(&self, volume: &Volume, config: &PreprocessConfig, out: &mut Vec<f32>) {
        cut_patch(volume, self.center_mm, self.measurement.slices, config, out);
    }
}

/// The patch of a finding at `center_mm` whose own extent is `slices`: its context cut the
/// deterministic way ([`nodule_context`]), then sampled. Training and the pipeline both cut
/// patches with this, from crops and whole scans alike.
pub fn cut_patch(
    volume: &Volume,
    center_mm: [f64; 3],
    slices: [usize; 2],
    config: &PreprocessConfig,
    out: &mut Vec<f32>,
) {
    let transform = PatchTransform::default();
    match nodule_context(volume, center_mm, slices) {
        Some(context) => extract_views_into(&context, center_mm, config, &transform, out),
        // Only for a centre outside the volume: padding, as the sampler gives there.
        None => extract_views_into(volume, center_mm, config, &transform, out),
    }
}

/// The candidates that can be segmented, as sites, in the candidates' order (`lungs`: the
/// scan's mask, that the candidates were found in).
pub fn sites(volume: &Volume, lungs: &LungMask, candidates: &[Candidate]) -> Vec<Site> {
    candidates
        .iter()
        .filter_map(|c| {
            let max_shift = (MAX_SHIFT_SCALES * c.scale_mm).max(MERGE_MIN_MM);
            let mut site = Site::at(volume, Some(lungs), c.center_mm, max_shift)?;
            site.candidate = c.clone();
            Some(site)
        })
        .collect()
}

/// One finding of the scan, as reports carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// LPS mm (the segmentation's centroid).
    pub center_mm: [f64; 3],
    /// The nearest voxel of the volume, `[column, row, slice]`.
    pub center_voxel: [usize; 3],
    pub diameter_mm: f64,
    pub long_axis_mm: f64,
    pub short_axis_mm: f64,
    pub volume_mm3: f64,
    pub mean_hu: f64,
    #[serde(rename = "type")]
    pub nodule_type: NoduleType,
    pub solid_component_mm: Option<f64>,
    pub calcified: bool,
    /// A solid nodule under 10 mm on the pleura: a reader may apply Lung-RADS's juxtapleural
    /// rule (category 2 when its margin is smooth).
    #[serde(default)]
    pub on_pleura: bool,
    pub p_nodule: f32,
    pub p_malignant: f32,
    pub lung_rads: Category,
    pub lung_rads_rule: String,
    /// The candidate scale that found it, mm.
    pub scale_mm: f64,
}

/// The findings of scored sites (`(site, p_nodule, p_malignant)`), most likely nodules first:
/// those with `p_nodule ≥ threshold`, duplicates merged (the likelier kept). At a threshold of
/// 0 every scored site is listed, unmerged.
pub fn findings(volume: &Volume, scored: Vec<(Site, f32, f32)>, threshold: f32) -> Vec<Finding> {
    let all = all_findings(volume, scored);
    if threshold <= 0.0 {
        return all;
    }
    let mut merged = merge_duplicates(all);
    merged.retain(|f| f.p_nodule >= threshold);
    merged
}

/// Every scored site as a finding, most likely nodules first.
pub fn all_findings(volume: &Volume, scored: Vec<(Site, f32, f32)>) -> Vec<Finding> {
    let mut all: Vec<Finding> = scored
        .into_iter()
        .map(|(site, p_nodule, p_malignant)| finding(volume, site, p_nodule, p_malignant))
        .collect();
    all.sort_by(|a, b| b.p_nodule.total_cmp(&a.p_nodule));
    all
}

/// `findings` (most likely first) without those on a likelier finding's nodule: greedy, so
/// the result does not depend on any threshold applied after it.
pub fn merge_duplicates(findings: Vec<Finding>) -> Vec<Finding> {
    let mut kept: Vec<Finding> = Vec::new();
    for f in findings {
        if !kept.iter().any(|k| same_nodule(k, &f)) {
            kept.push(f);
        }
    }
    kept
}

fn same_nodule(a: &Finding, b: &Finding) -> bool {
    let reach = (a.diameter_mm.max(b.diameter_mm) / 2.0).max(MERGE_MIN_MM);
    distance_mm(a.center_mm, b.center_mm) < reach
}

fn finding(volume: &Volume, site: Site, p_nodule: f32, p_malignant: f32) -> Finding {
    let m = site.measurement;
    let assessment = lung_rads::categorise(&m);
    let dims = volume.dims();
    let v = volume.world_to_voxel(site.center_mm);
    let center_voxel =
        std::array::from_fn(|a| (v[a].round().max(0.0) as usize).min(dims[a].saturating_sub(1)));
    Finding {
        center_mm: site.center_mm,
        center_voxel,
        diameter_mm: m.diameter_mm,
        long_axis_mm: m.long_axis_mm,
        short_axis_mm: m.short_axis_mm,
        volume_mm3: m.volume_mm3,
        mean_hu: m.mean_hu,
        nodule_type: m.nodule_type,
        solid_component_mm: m.solid_component_mm,
        calcified: m.calcified,
        on_pleura: m.on_pleura,
        p_nodule,
        p_malignant,
        lung_rads: assessment.category,
        lung_rads_rule: assessment.rule,
        scale_mm: site.candidate.scale_mm,
    }
}

/// Every warning of the volume and of its lung mask, as a report lists them.
pub fn report_warnings(volume: &Volume, mask: &LungMask) -> Vec<Warning> {
    let mut warnings: Vec<Warning> = volume.warnings().to_vec();
    warnings.extend(mask.warnings().iter().cloned());
    warnings
}

/// Whether lungs were found and lie wholly in the scan (`warnings` from [`report_warnings`]);
/// if not, the scan's category is 0.
pub fn lungs_covered(warnings: &[Warning], mask: &LungMask) -> bool {
    mask.found()
        && !warnings
            .iter()
            .any(|w| w.kind == WarningKind::PartialCoverage)
}

/// What the pipeline says of one scan (the CLI adds timings, the model and the source).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub lung_rads: Category,
    pub lung_rads_rule: String,
    pub threshold: f32,
    /// Candidates the detector proposed (before segmentation).
    pub candidates: usize,
    /// Sites scored (candidates that could be segmented).
    pub scored: usize,
    pub lung_volume_ml: f64,
    pub warnings: Vec<Warning>,
}

impl Report {
    /// The report of `findings` on a scan whose lungs are `mask`: the scan's Lung-RADS
    /// category and every warning of the volume and the mask.
    pub fn new(
        volume: &Volume,
        mask: &LungMask,
        findings: Vec<Finding>,
        threshold: f32,
        candidates: usize,
        scored: usize,
    ) -> Report {
        let warnings = report_warnings(volume, mask);
        let covered = lungs_covered(&warnings, mask);
        Report::of_findings(
            findings,
            threshold,
            ScanSummary {
                candidates,
                scored,
                lung_volume_ml: mask.volume_ml(),
                lungs_covered: covered,
                warnings,
            },
        )
    }

    /// The report of `findings` at `threshold` on a scan summarised as `scan` (the browser
    /// keeps the summary, not the mask, and refilters as the reader moves the threshold).
    pub fn of_findings(findings: Vec<Finding>, threshold: f32, scan: ScanSummary) -> Report {
        let assessments: Vec<Assessment> = findings
            .iter()
            .map(|f| Assessment {
                category: f.lung_rads,
                rule: f.lung_rads_rule.clone(),
            })
            .collect();
        let category = lung_rads::scan_category(&assessments, scan.lungs_covered);
        Report {
            findings,
            lung_rads: category.category,
            lung_rads_rule: category.rule,
            threshold,
            candidates: scan.candidates,
            scored: scan.scored,
            lung_volume_ml: scan.lung_volume_ml,
            warnings: scan.warnings,
        }
    }
}

/// What a report says of the scan beside its findings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanSummary {
    pub candidates: usize,
    pub scored: usize,
    pub lung_volume_ml: f64,
    /// See [`lungs_covered`].
    pub lungs_covered: bool,
    pub warnings: Vec<Warning>,
}
