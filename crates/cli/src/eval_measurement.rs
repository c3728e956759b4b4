//! `nodulens eval-measurement`: the pipeline's segmentation and measurement of every LIDC crop
//! against the readers' mask (the same axis routine on both), `diameter_mm` of `nodules.csv`,
//! and the texture and calcification ratings.

use std::path::Path;

use anyhow::Context;
use nodulens_detect::NoduleType;
use nodulens_detect::measure::{JUXTAPLEURAL_MAX_MM, axes_of_largest_slice};
use serde::Serialize;

use crate::data;

const BANDS: [(&str, f64, f64); 4] = [
    ("3-6 mm", 0.0, 6.0),
    ("6-10 mm", 6.0, 10.0),
    ("10-20 mm", 10.0, 20.0),
    (">=20 mm", 20.0, f64::INFINITY),
];

#[derive(Debug, Default, Serialize)]
struct Band {
    band: &'static str,
    nodules: usize,
    segmented: usize,
    /// Median |ours − the readers' mask|, mean of long and short axis, mm.
    mean_axis_vs_mask_mae: f64,
    /// Median signed difference (ours − mask), mm.
    mean_axis_vs_mask_bias: f64,
    long_axis_vs_mask_mae: f64,
    /// Median |ours − diameter_mm|, mm (the table's diameter is not an axis: see the note).
    mean_axis_vs_table_mae: f64,
    /// Median signed difference (ours − diameter_mm), mm.
    mean_axis_vs_table_bias: f64,
    /// The readers' mask measured by the same routine against diameter_mm.
    mask_vs_table_mae: f64,
    /// Median signed difference (mask − diameter_mm), mm: the two references disagree by this
    /// much, so no measurement can be near both where it is large.
    mask_vs_table_bias: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn type_index(t: NoduleType) -> usize {
    match t {
        NoduleType::GroundGlass => 0,
        NoduleType::PartSolid => 1,
        NoduleType::Solid => 2,
    }
}

/// The readers' texture rating as a type: 1–2 ground glass, 3–4 part-solid, 5 solid.
fn texture_index(texture: u8) -> Option<usize> {
    match texture {
        1 | 2 => Some(0),
        3 | 4 => Some(1),
        5 => Some(2),
        _ => None,
    }
}

/// Solid crops under 10 mm (ours) that the pipeline marks as on the pleura, with the readers'
/// ratings of those: what the juxtapleural rule would move to category 2 if their margins
/// were smooth.
#[derive(Debug, Default, Serialize)]
struct OnPleura {
    nodules: usize,
    on_pleura: usize,
    /// Of those on the pleura: rated lobulation and spiculation 1.
    rated_smooth: usize,
    /// Of those on the pleura: rated malignancy 4 or 5.
    rated_malignant: usize,
    /// Of those on the pleura: our mean diameter ≥ 6 mm (where category 2 would change the
    /// category).
    at_least_6_mm: usize,
    crops: Vec<String>,
}

impl OnPleura {
    fn add(&mut self, row: &data::NoduleRow, m: &nodulens_detect::Measurement) {
        self.nodules += 1;
        if !m.on_pleura {
            return;
        }
        self.on_pleura += 1;
        self.rated_smooth += usize::from(row.lobulation == Some(1) && row.spiculation == Some(1));
        self.rated_malignant += usize::from(row.malignancy >= 4);
        self.at_least_6_mm += usize::from(m.diameter_mm >= 6.0);
        self.crops.push(row.image.clone());
    }
}

/// Measures every crop of `crops` and returns the report.
pub fn evaluate(crops: &Path) -> anyhow::Result<serde_json::Value> {
    let rows = data::read_nodules_csv(crops)?;
    // Per band: (ours mean, mask mean, ours long, mask long, table) of segmented nodules.
    let mut per_band: Vec<Vec<[f64; 5]>> = vec![Vec::new(); BANDS.len()];
    let mut counts = [0usize; 4];
    let mut unsegmented = Vec::new();
    // Rows: readers' texture (ground glass, part-solid, solid); columns: ours.
    let mut confusion = [[0usize; 3]; 3];
    // Calcification: [rated benign pattern (1, 2, 3, 5), rated absent (6)] × [ours no, yes].
    let mut calcified = [[0usize; 2]; 2];
    // Solid crops under 10 mm (ours), where the juxtapleural rule could apply.
    let mut on_pleura = OnPleura::default();
    for row in &rows {
        let band = BANDS
            .iter()
            .position(|&(_, lo, hi)| row.diameter_mm >= lo && row.diameter_mm < hi)
            .unwrap_or(0);
        counts[band] += 1;
        let crop = data::open_volume(&crops.join(&row.image))?;
        let lungs = nodulens_detect::LungMask::for_crop(&crop);
        let Some(site) =
            nodulens_detect::Site::at(&crop, Some(&lungs), row.center, row.diameter_mm / 2.0 + 2.5)
        else {
            unsegmented.push(row.image.clone());
            continue;
        };
        let m = &site.measurement;
        if let Some(t) = row.texture.and_then(texture_index) {
            confusion[t][type_index(m.nodule_type)] += 1;
        }
        match row.calcification {
            Some(1 | 2 | 3 | 5) => calcified[0][usize::from(m.calcified)] += 1,
            Some(6) => calcified[1][usize::from(m.calcified)] += 1,
            _ => {}
        }
        if m.nodule_type == NoduleType::Solid && !m.calcified && m.diameter_mm < JUXTAPLEURAL_MAX_MM
        {
            on_pleura.add(row, m);
        }
        if row.mask.is_empty() {
            continue;
        }
        let mask = data::open_volume(&crops.join(&row.mask))
            .with_context(|| format!("mask of {}", row.image))?;
        if mask.dims() != crop.dims() {
            continue;
        }
        let inside: Vec<bool> = mask.voxels().iter().map(|&v| v != 0).collect();
        let spacing = crop.spacing();
        let (long, short) = axes_of_largest_slice(&inside, crop.dims(), [spacing[0], spacing[1]]);
        per_band[band].push([
            m.diameter_mm,
            (long + short) / 2.0,
            m.long_axis_mm,
            long,
            row.diameter_mm,
        ]);
    }
    let bands: Vec<Band> = BANDS
        .iter()
        .zip(&per_band)
        .zip(counts)
        .map(|((&(band, _, _), v), nodules)| Band {
            band,
            nodules,
            segmented: v.len(),
            mean_axis_vs_mask_mae: median(v.iter().map(|r| (r[0] - r[1]).abs()).collect()),
            mean_axis_vs_mask_bias: median(v.iter().map(|r| r[0] - r[1]).collect()),
            long_axis_vs_mask_mae: median(v.iter().map(|r| (r[2] - r[3]).abs()).collect()),
            mean_axis_vs_table_mae: median(v.iter().map(|r| (r[0] - r[4]).abs()).collect()),
            mean_axis_vs_table_bias: median(v.iter().map(|r| r[0] - r[4]).collect()),
            mask_vs_table_mae: median(v.iter().map(|r| (r[1] - r[4]).abs()).collect()),
            mask_vs_table_bias: median(v.iter().map(|r| r[1] - r[4]).collect()),
        })
        .collect();
    let agree: usize = (0..3).map(|i| confusion[i][i]).sum();
    let rated: usize = confusion.iter().flatten().sum();
    Ok(serde_json::json!({
        "nodules": rows.len(),
        "unsegmented": unsegmented,
        "by_size": bands,
        "type_confusion": {
            "rows": "readers' texture: ground_glass (1-2), part_solid (3-4), solid (5)",
            "columns": "ours: ground_glass, part_solid, solid",
            "counts": confusion,
            "agreement": agree as f64 / rated.max(1) as f64,
        },
        "calcification": {
            "rows": "readers: benign pattern (1, 2, 3, 5), absent (6)",
            "columns": "ours: not calcified, calcified",
            "counts": calcified,
        },
        "on_pleura": on_pleura,
    }))
}

/// `nodulens eval-measurement`: prints the figures and writes them as JSON.
pub fn run(data_root: &Path, json: Option<&Path>) -> anyhow::Result<()> {
    let report = evaluate(&data::crops_dir(data_root))?;
    println!(
        "{:<9} {:>4} {:>5}  {:>12} {:>6} {:>10} {:>12} {:>6} {:>12} {:>6}",
        "band",
        "n",
        "seg",
        "mean vs mask",
        "bias",
        "long vs",
        "mean vs csv",
        "bias",
        "mask vs csv",
        "bias"
    );
    for b in report["by_size"].as_array().into_iter().flatten() {
        println!(
            "{:<9} {:>4} {:>5}  {:>12.2} {:>6.2} {:>10.2} {:>12.2} {:>6.2} {:>12.2} {:>6.2}",
            b["band"].as_str().unwrap_or(""),
            b["nodules"],
            b["segmented"],
            b["mean_axis_vs_mask_mae"].as_f64().unwrap_or(f64::NAN),
            b["mean_axis_vs_mask_bias"].as_f64().unwrap_or(f64::NAN),
            b["long_axis_vs_mask_mae"].as_f64().unwrap_or(f64::NAN),
            b["mean_axis_vs_table_mae"].as_f64().unwrap_or(f64::NAN),
            b["mean_axis_vs_table_bias"].as_f64().unwrap_or(f64::NAN),
            b["mask_vs_table_mae"].as_f64().unwrap_or(f64::NAN),
            b["mask_vs_table_bias"].as_f64().unwrap_or(f64::NAN),
        );
    }
    println!(
        "type (rows: readers GG, PS, S; columns: ours): {}  agreement {:.3}",
        report["type_confusion"]["counts"],
        report["type_confusion"]["agreement"]
            .as_f64()
            .unwrap_or(0.0)
    );
    println!(
        "calcification (rows: benign pattern, absent; columns: ours no, yes): {}",
        report["calcification"]["counts"]
    );
    let p = &report["on_pleura"];
    println!(
        "on the pleura (solid < 10 mm): {} of {} crops; of those, rated smooth {}, rated malignancy 4-5 {}, ours >= 6 mm {}",
        p["on_pleura"], p["nodules"], p["rated_smooth"], p["rated_malignant"], p["at_least_6_mm"],
    );
    println!(
        "not segmented: {}",
        report["unsegmented"].as_array().map_or(0, Vec::len)
    );
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
