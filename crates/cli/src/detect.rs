//! `nodulens detect`: a whole scan in, findings out — the pipeline crate's stages driven
//! natively, both models run by the caller through the sans-IO scoring protocol, as a
//! browser worker drives them.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use nodulens_core::Volume;
use nodulens_detect::{
    Report, ReportDocument, ReportSource, Scoring, Site, SrContext, candidates, findings,
    lung_mask, malignancy::shipped_p_malignant, sites, structured_report,
};
use nodulens_model::{Classifier, Device, Manifest, ModelKind};
use serde::Serialize;

use crate::eval::{self, Loaded};

/// Patches per model call.
const BATCH: usize = 64;

/// Both models and the pipeline's default operating point.
pub struct Models {
    pub nodule: Loaded,
    pub malignancy: Loaded,
    /// The default `p_nodule` threshold: the manifest's detection operating point where it
    /// has one, else the nodule model's own.
    pub operating_point: f32,
    pub describe: serde_json::Value,
    /// Both models by their sha256 prefixes, e.g. for the SR's equipment.
    pub short_id: String,
}

/// Loads both models from `dir` (a `models/` folder, checked against its manifest) onto
/// `device`.
pub fn load_models(dir: &Path, device: &Device) -> anyhow::Result<Models> {
    let nodule = eval::load_on(dir, ModelKind::Nodule, device)?;
    let malignancy = eval::load_on(dir, ModelKind::Malignancy, device)?;
    let backend = if nodule.classifier.is_fused() {
        "cpu (fused pass)"
    } else if *device == Device::flex() {
        "cpu (burn)"
    } else {
        "wgpu"
    };
    let manifest_path = dir.join("manifest.json");
    let manifest = Manifest::from_json(
        &std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )?;
    let operating_point = manifest.operating_point().unwrap_or(nodule.threshold);
    Ok(Models {
        short_id: manifest.short_id(),
        describe: manifest.describe(operating_point, backend),
        nodule,
        malignancy,
        operating_point,
    })
}

/// Milliseconds per stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub lung_mask: f64,
    pub candidates: f64,
    pub measurement: f64,
    pub nodule_model: f64,
    pub malignancy_model: f64,
    pub findings: f64,
    pub total: f64,
}

fn bar(show: bool, len: usize, message: &'static str) -> ProgressBar {
    let bar = if show {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{msg:12} [{bar:30}] {pos}/{len}") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar
}

/// Every candidate's probability under `classifier`, patches cut by the pipeline.
fn score<T>(
    volume: &Volume,
    items: Vec<T>,
    classifier: &Classifier,
    patch: impl Fn(&T, &Volume, &nodulens_core::preprocess::PreprocessConfig, &mut Vec<f32>),
    bar: &ProgressBar,
) -> anyhow::Result<Vec<(T, f32)>> {
    let config = &classifier.preprocess;
    let mut scoring = Scoring::new(items, config.patch_len(), BATCH);
    while let Some(batch) = scoring.next_batch(|item, out| patch(item, volume, config, out)) {
        let p = classifier.predict(&batch.patches)?;
        scoring.submit(batch.id, &p)?;
        bar.set_position(scoring.progress().0 as u64);
    }
    Ok(scoring.finish()?)
}

/// The whole pipeline on `volume`: the report at `threshold` and the stages' timings.
pub fn analyse(
    volume: &Volume,
    models: &Models,
    threshold: f32,
    show_progress: bool,
) -> anyhow::Result<(Report, Timings)> {
    let mut t = Timings::default();
    let all = Instant::now();
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1e3;

    let progress = bar(show_progress, 1, "lung mask");
    let start = Instant::now();
    let mask = lung_mask(volume);
    t.lung_mask = ms(start);
    progress.finish_and_clear();

    let progress = bar(show_progress, 1, "candidates");
    let start = Instant::now();
    let found = candidates(volume, &mask);
    t.candidates = ms(start);
    progress.finish_and_clear();

    let progress = bar(show_progress, found.len(), "measuring");
    let start = Instant::now();
    let mut measured: Vec<Site> = Vec::with_capacity(found.len());
    for chunk in found.chunks(16) {
        measured.extend(sites(volume, &mask, chunk));
        progress.inc(chunk.len() as u64);
    }
    t.measurement = ms(start);
    progress.finish_and_clear();

    let progress = bar(show_progress, measured.len(), "nodule model");
    let start = Instant::now();
    let scored = score(
        volume,
        measured,
        &models.nodule.classifier,
        |site, volume, config, out| site.cut_patch(volume, config, out),
        &progress,
    )?;
    t.nodule_model = ms(start);
    progress.finish_and_clear();

    let progress = bar(show_progress, scored.len(), "malignancy");
    let start = Instant::now();
    let scored = score(
        volume,
        scored,
        &models.malignancy.classifier,
        |(site, _), volume, config, out| site.cut_patch(volume, config, out),
        &progress,
    )?;
    t.malignancy_model = ms(start);
    progress.finish_and_clear();

    let start = Instant::now();
    let n_scored = scored.len();
    let triples = scored
        .into_iter()
        .map(|((site, p_nodule), p_cnn)| {
            let p_malignant = shipped_p_malignant(
                models.malignancy.combination.as_ref(),
                p_cnn,
                &site.measurement,
            );
            (site, p_nodule, p_malignant)
        })
        .collect();
    let listed = findings(volume, triples, threshold);
    let report = Report::new(volume, &mask, listed, threshold, found.len(), n_scored);
    t.findings = ms(start);
    t.total = ms(all);
    Ok((report, t))
}

/// The `--json` object: the pipeline's report with timings, models and source.
pub fn report_json(
    volume: &Volume,
    report: &Report,
    timings: &Timings,
    models: &Models,
) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(ReportDocument {
        report,
        timings_ms: timings,
        model: &models.describe,
        source: ReportSource::of(volume),
    })?)
}

/// The device `--backend` names: the CPU (the fused pass), or wgpu (Vulkan, Metal, DX12;
/// Mesa's lavapipe on a machine without a GPU) where this binary was built with it.
pub fn device(wgpu: bool) -> anyhow::Result<Device> {
    if !wgpu {
        return Ok(Device::flex());
    }
    #[cfg(feature = "wgpu")]
    {
        Device::wgpu_options()
            .init()
            .map_err(|e| anyhow::anyhow!("--backend wgpu: no usable wgpu adapter ({e})"))
    }
    #[cfg(not(feature = "wgpu"))]
    anyhow::bail!(
        "--backend wgpu: this nodulens was built without wgpu; rebuild with \
         `cargo build --release -p nodulens-cli --features wgpu`"
    )
}

/// Where `detect` writes its report besides stdout.
#[derive(Default, Clone, Copy)]
pub struct Outputs<'a> {
    pub json: Option<&'a Path>,
    pub sr: Option<&'a Path>,
}

/// `nodulens detect`: progress on stderr, a summary on stdout, the report as JSON and as a
/// DICOM SR where asked.
pub fn run(
    volume: &Volume,
    models_dir: &Path,
    device: &Device,
    threshold: Option<f32>,
    outputs: Outputs,
) -> anyhow::Result<()> {
    let models = load_models(models_dir, device)?;
    let threshold = threshold.unwrap_or(models.operating_point);
    let (report, timings) = analyse(volume, &models, threshold, true)?;
    println!(
        "lungs        {}",
        if report.lung_volume_ml > 0.0 {
            format!("{:.0} ml", report.lung_volume_ml)
        } else {
            "none found".to_owned()
        }
    );
    println!(
        "candidates   {} ({} measured and scored)",
        report.candidates, report.scored
    );
    println!(
        "findings     {} at p(nodule) ≥ {:.3}",
        report.findings.len(),
        threshold
    );
    for (n, f) in report.findings.iter().enumerate().take(20) {
        println!(
            "  {:>2}. ({:>7.1}, {:>7.1}, {:>7.1}) mm  {:>5.1} mm {:<12} p(nodule) {:.3}  p(malignant) {:.3}  Lung-RADS {}",
            n + 1,
            f.center_mm[0],
            f.center_mm[1],
            f.center_mm[2],
            f.diameter_mm,
            f.nodule_type.name(),
            f.p_nodule,
            f.p_malignant,
            f.lung_rads.code()
        );
    }
    if report.findings.len() > 20 {
        println!("  … {} more (see --json)", report.findings.len() - 20);
    }
    println!(
        "Lung-RADS    {} ({}): {}",
        report.lung_rads.code(),
        report.lung_rads_rule,
        report.lung_rads.management()
    );
    println!(
        "time         {:.0} ms (mask {:.0}, candidates {:.0}, measuring {:.0}, models {:.0} + {:.0})",
        timings.total,
        timings.lung_mask,
        timings.candidates,
        timings.measurement,
        timings.nodule_model,
        timings.malignancy_model
    );
    for w in &report.warnings {
        println!("warning      {w}");
    }
    println!("research use only, not a medical device");
    if let Some(path) = outputs.json {
        let text = serde_json::to_string_pretty(&report_json(volume, &report, &timings, &models)?)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("wrote        {}", path.display());
    }
    if let Some(path) = outputs.sr {
        let (date, time) = utc_now();
        let context = SrContext {
            date: &date,
            time: &time,
            uid_seed: random_u128(),
            software_version: env!("CARGO_PKG_VERSION"),
            models: &models.short_id,
        };
        let bytes = structured_report(&report, volume, &context)?;
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote        {} (DICOM SR)", path.display());
    }
    Ok(())
}

/// Today's date (`YYYYMMDD`) and the time (`HHMMSS`), UTC, as DICOM writes them.
fn utc_now() -> (String, String) {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, second) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    (
        format!("{year:04}{month:02}{day:02}"),
        format!(
            "{:02}{:02}{:02}",
            second / 3600,
            second / 60 % 60,
            second % 60
        ),
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// 128 bits for new UIDs: the standard library's per-process random hash keys.
fn random_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let half = || {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        hasher.finish()
    };
    u128::from(half()) << 64 | u128::from(half())
}

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn calendar_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_791), (2026, 12, 4));
    }
}
