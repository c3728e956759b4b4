//! `nodulens eval-malignancy` and `nodulens eval-nodule`: the shipped (or a freshly trained)
//! model on a data folder, as a JSON report.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::prelude::*;
use nodulens_detect::{MalignancyCombination, malignancy};
use nodulens_model::{Classifier, Manifest, ModelKind};
use sha2::{Digest, Sha256};

use crate::calibration;
use crate::data::{self, BuildOptions, Dataset, Fold, Split};
use crate::metrics;
use crate::train::{RunState, run_dir};

/// A classifier with its operating point and the seed of its data split.
pub struct Loaded {
    pub classifier: Classifier,
    pub threshold: f32,
    pub seed: u64,
    pub source: String,
    /// The k-fold split a training run used (`None`: shipped models, the seeded split).
    pub fold: Option<Fold>,
    /// Malignancy model: what `p_malignant` is made of (`None`: the CNN's output alone, as a
    /// training run or a manifest without one gives it).
    pub combination: Option<MalignancyCombination>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Loads `kind` from `dir`: a `models/` folder (`manifest.json`, weights checked against their
/// SHA-256) or a training output folder (`<kind>/run.json` + `<kind>/best.bpk`).
pub fn load(dir: &Path, kind: ModelKind) -> anyhow::Result<Loaded> {
    load_on(dir, kind, &Device::flex())
}

/// [`load`] onto `device` (the fused CPU pass on the flex device, burn's elsewhere).
pub fn load_on(dir: &Path, kind: ModelKind, device: &Device) -> anyhow::Result<Loaded> {
    let manifest_path = dir.join("manifest.json");
    if manifest_path.is_file() {
        let manifest = Manifest::from_json(&std::fs::read_to_string(&manifest_path)?)?;
        let entry = manifest
            .model(kind)
            .with_context(|| format!("{} has no {} model", manifest_path.display(), kind.name()))?;
        let path = dir.join(&entry.file);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        entry
            .verify(&bytes)
            .with_context(|| format!("{} is not the shipped file", path.display()))?;
        let seed = entry.training["train"]["seed"].as_u64().unwrap_or(42);
        // Only the malignancy model's output is combined with the measurement.
        let combination = match kind {
            ModelKind::Malignancy => MalignancyCombination::shipped(entry.combination.as_ref())
                .with_context(|| format!("{}", manifest_path.display()))?,
            ModelKind::Nodule => None,
        };
        return Ok(Loaded {
            combination,
            classifier: Classifier::from_manifest(entry, bytes, device)?,
            threshold: entry.threshold,
            seed,
            source: path.display().to_string(),
            fold: None,
        });
    }
    let run = run_dir(dir, kind);
    let state: RunState = serde_json::from_str(
        &std::fs::read_to_string(run.join("run.json")).with_context(|| {
            format!(
                "no manifest.json in {} and no {}/run.json",
                dir.display(),
                run.display()
            )
        })?,
    )?;
    let bytes = std::fs::read(run.join("best.bpk"))?;
    Ok(Loaded {
        classifier: Classifier::from_bytes(state.architecture, state.preprocess, bytes, device)?,
        threshold: state.threshold,
        seed: state.train.seed,
        source: run.join("best.bpk").display().to_string(),
        fold: state.fold,
        combination: None,
    })
}

/// Probabilities for the samples `indices` of `ds`, in batches.
pub fn predict(
    classifier: &Classifier,
    ds: &Dataset,
    indices: &[usize],
) -> anyhow::Result<Vec<f32>> {
    let mut out = Vec::with_capacity(indices.len());
    for chunk in indices.chunks(64) {
        let (patches, _) = data::batch(ds, chunk, &classifier.preprocess, None);
        out.extend(classifier.predict(&patches)?);
    }
    Ok(out)
}

#[derive(Clone)]
pub struct EvalArgs {
    pub kind: ModelKind,
    pub data: PathBuf,
    pub models: PathBuf,
    pub split: Option<Split>,
    pub seed: Option<u64>,
    pub cache: PathBuf,
    pub negatives_per_scan: usize,
}

/// Evaluates and returns the report (the keys of the issue, plus `split`, `model`,
/// `by_source` for the nodule model).
pub fn evaluate(args: &EvalArgs) -> anyhow::Result<serde_json::Value> {
    let loaded = load(&args.models, args.kind)?;
    let seed = args.seed.unwrap_or(loaded.seed);
    let ds = data::build(&BuildOptions {
        kind: args.kind,
        data: &args.data,
        seed,
        cache: &args.cache,
        negatives_per_scan: args.negatives_per_scan,
        only: args.split,
        fold: None,
        verbose: false,
        indeterminate_target: None,
    })?;
    evaluate_dataset(&loaded, &ds, args.kind, args.split, seed)
}

pub fn evaluate_dataset(
    loaded: &Loaded,
    ds: &Dataset,
    kind: ModelKind,
    split: Option<Split>,
    seed: u64,
) -> anyhow::Result<serde_json::Value> {
    let idx = ds.indices(split);
    if idx.is_empty() {
        bail!("no samples in this split");
    }
    let cnn = predict(&loaded.classifier, ds, &idx)?;
    let labels: Vec<bool> = idx.iter().map(|&i| ds.samples[i].label).collect();
    let found = match kind {
        ModelKind::Malignancy => measurements(ds, &idx),
        ModelKind::Nodule => vec![None; idx.len()],
    };
    // What ships: the combination where the manifest has one (its probabilities are
    // calibrated, so its operating point is 0.5), else the CNN with its own.
    let (probs, threshold) = match &loaded.combination {
        Some(c) => (combine(c, &cnn, &found), COMBINED_THRESHOLD),
        None => (cnn.clone(), loaded.threshold),
    };
    let mut report = metrics::report(&probs, &labels, threshold, seed);
    let key = probability_key(kind);
    let predictions: Vec<serde_json::Value> = idx
        .iter()
        .zip(&probs)
        .zip(&cnn)
        .map(|((&i, &p), &q)| {
            let s = &ds.samples[i];
            let mut v = serde_json::json!({
                "image": s.name,
                "patient": s.patient,
                "label": u8::from(s.label),
                key: p,
            });
            match kind {
                ModelKind::Nodule => {
                    v["source"] = serde_json::to_value(s.source).unwrap_or_default();
                }
                ModelKind::Malignancy => v["p_cnn"] = q.into(),
            }
            v
        })
        .collect();
    let patients: std::collections::BTreeSet<&str> = idx
        .iter()
        .map(|&i| ds.samples[i].patient.as_str())
        .collect();
    report["patients"] = patients.len().into();
    report["split"] = match split {
        Some(s) => serde_json::to_value(s)?,
        None => "all".into(),
    };
    report["split_seed"] = seed.into();
    report["model"] = loaded.source.clone().into();
    report["roc"] = roc_json(&probs, &labels);
    let mut predictions = predictions;
    if kind == ModelKind::Malignancy {
        let readers: Vec<f32> = idx
            .iter()
            .map(|&i| ds.samples[i].diameter_mm as f32)
            .collect();
        let measured = diameters(&found);
        baselines(&mut report, &probs, &labels, &readers, &measured, seed);
        report["cnn"] = cnn_section(&cnn, &labels, seed);
        report["combination"] = loaded
            .combination
            .as_ref()
            .map_or(serde_json::Value::Null, |c| {
                serde_json::to_value(c).unwrap_or_default()
            });
        for ((p, d), m) in predictions.iter_mut().zip(measured).zip(&found) {
            p["measured_diameter_mm"] = d.into();
            p["measurement"] = serde_json::to_value(m).unwrap_or_default();
        }
    }
    if kind == ModelKind::Nodule {
        // Nodules against each kind of negative.
        let mut by = serde_json::Map::new();
        for source in [data::Source::CropBackground, data::Source::ScanCandidate] {
            let (s, l): (Vec<f32>, Vec<bool>) = idx
                .iter()
                .zip(&probs)
                .filter(|(i, _)| ds.samples[**i].label || ds.samples[**i].source == source)
                .map(|(i, p)| (*p, ds.samples[*i].label))
                .unzip();
            let name = serde_json::to_value(source)?
                .as_str()
                .unwrap_or("?")
                .to_string();
            by.insert(
                name,
                serde_json::json!({
                    "negatives": l.iter().filter(|x| !**x).count(),
                    "auc": metrics::auc(&s, &l),
                }),
            );
        }
        report["by_source"] = serde_json::Value::Object(by);
    }
    report["predictions"] = predictions.into();
    Ok(report)
}

/// The name of a prediction's probability in reports.
fn probability_key(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Malignancy => "p_malignant",
        ModelKind::Nodule => "p_nodule",
    }
}

/// The ROC curve as `[[fpr, tpr], …]`.
fn roc_json(probs: &[f32], labels: &[bool]) -> serde_json::Value {
    metrics::roc_points(probs, labels)
        .into_iter()
        .map(|(fpr, tpr)| serde_json::json!([fpr, tpr]))
        .collect::<Vec<_>>()
        .into()
}

/// Bootstrap resamples of the intervals of the AUC gains.
const GAIN_RESAMPLES: usize = 2000;

/// Equal-mass bins of the reliability table.
const CALIBRATION_BINS: usize = 10;

/// A segmentation further than this from the sample's centre (already our own segmentation's
/// centroid) is not the nodule.
const MEASURE_MAX_SHIFT_MM: f64 = 5.0;

/// Our own measurement of each sample: the pipeline's segmentation at its centre, measured
/// as on a new scan (without the chest wall outside the crop's lungs; never `diameter_mm`); 0
/// where nothing is segmented.
fn measurements(ds: &Dataset, idx: &[usize]) -> Vec<Option<nodulens_detect::Measurement>> {
    idx.iter()
        .map(|&i| {
            let s = &ds.samples[i];
            let volume = &ds.volumes[s.volume];
            let lungs = nodulens_detect::LungMask::for_crop(volume);
            nodulens_detect::Site::at(volume, Some(&lungs), s.center, MEASURE_MAX_SHIFT_MM)
                .map(|site| site.measurement)
        })
        .collect()
}

/// The operating point of combined probabilities (calibrated: even odds).
const COMBINED_THRESHOLD: f32 = 0.5;

/// The combination's `p_malignant` of each case; the CNN's own where nothing was measured.
fn combine(
    c: &MalignancyCombination,
    cnn: &[f32],
    found: &[Option<nodulens_detect::Measurement>],
) -> Vec<f32> {
    cnn.iter()
        .zip(found)
        .map(|(&p, m)| m.as_ref().map_or(p, |m| c.p_malignant(p, m)))
        .collect()
}

/// The CNN's output alone: its AUC, interval and calibration, beside what ships.
fn cnn_section(cnn: &[f32], labels: &[bool], seed: u64) -> serde_json::Value {
    serde_json::json!({
        "auc": metrics::auc(cnn, labels),
        "auc_ci95": metrics::auc_ci95(cnn, labels, GAIN_RESAMPLES, seed),
        "calibration": calibration::calibration(cnn, labels, CALIBRATION_BINS),
    })
}

/// The diameter of each measurement, 0 where nothing was segmented.
fn diameters(measurements: &[Option<nodulens_detect::Measurement>]) -> Vec<f32> {
    measurements
        .iter()
        .map(|m| m.as_ref().map_or(0.0, |m| m.diameter_mm as f32))
        .collect()
}

/// The simplest baselines beside the model: the nodule's diameter from nodules.csv (the
/// readers'), and our own measurement of it, each with its AUC and the model's paired
/// bootstrap gain over it; and the model's calibration on these cases.
fn baselines(
    report: &mut serde_json::Value,
    probs: &[f32],
    labels: &[bool],
    readers: &[f32],
    measured: &[f32],
    seed: u64,
) {
    for (key, baseline) in [("diameter", readers), ("measured_diameter", measured)] {
        report[format!("baseline_{key}_auc")] = metrics::auc(baseline, labels).into();
        report[format!("baseline_{key}_auc_ci95")] =
            metrics::auc_ci95(baseline, labels, GAIN_RESAMPLES, seed).into();
        report[format!("gain_over_{key}")] =
            match metrics::paired_auc_gain(probs, baseline, labels, GAIN_RESAMPLES, seed) {
                Some((gain, ci)) => serde_json::json!({ "auc_gain": gain, "ci95": ci }),
                None => serde_json::Value::Null,
            };
    }
    report["unmeasured"] = measured.iter().filter(|&&d| d == 0.0).count().into();
    report["calibration"] = calibration::calibration(probs, labels, CALIBRATION_BINS)
        .map_or(serde_json::Value::Null, |c| {
            serde_json::to_value(c).unwrap_or_default()
        });
}

/// Every case of an out-of-fold run, predicted by the fold model that never saw its patient.
#[derive(Default)]
pub struct OutOfFold {
    pub cnn: Vec<f32>,
    pub labels: Vec<bool>,
    /// `diameter_mm` of nodules.csv (the readers').
    pub readers: Vec<f32>,
    /// Our own measurement of each case (`None`: nothing segmented).
    pub found: Vec<Option<nodulens_detect::Measurement>>,
    /// Which fold each case is in.
    pub fold_of: Vec<usize>,
    pub images: Vec<String>,
    pub patients: Vec<String>,
    /// Each fold's validation threshold and temperature, and the cases' CNN probabilities
    /// after their fold's temperature.
    pub thresholds: Vec<f32>,
    pub temperatures: Vec<f64>,
    pub scaled: Vec<f32>,
    pub count: usize,
    pub seed: u64,
}

/// Reads each `fold-K` run in `folds` (`train --fold K/N --out <folds>/fold-K`) and scores it
/// on its own test fold.
pub fn out_of_fold(args: &EvalArgs, folds: &Path) -> anyhow::Result<OutOfFold> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(folds)
        .with_context(|| format!("reading {}", folds.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("fold-"))
        })
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        bail!("no fold-K folders in {}", folds.display());
    }
    let mut out = OutOfFold::default();
    let mut seen: Vec<Fold> = vec![];
    let mut seed = None;
    for dir in &dirs {
        let loaded = load(dir, args.kind)?;
        let fold = loaded
            .fold
            .with_context(|| format!("{} was not trained with --fold", dir.display()))?;
        seed.get_or_insert(loaded.seed);
        if seen
            .iter()
            .any(|f| f.count != fold.count || f.index == fold.index)
            || seed != Some(loaded.seed)
        {
            bail!(
                "{}: fold {}/{} does not belong with the others (same N and seed, each K once)",
                dir.display(),
                fold.index,
                fold.count
            );
        }
        seen.push(fold);
        let ds = data::build(&BuildOptions {
            kind: args.kind,
            data: &args.data,
            seed: loaded.seed,
            cache: &args.cache,
            negatives_per_scan: args.negatives_per_scan,
            only: None,
            fold: Some(fold),
            verbose: false,
            indeterminate_target: None,
        })?;
        let val = ds.indices(Some(Split::Val));
        let val_p = predict(&loaded.classifier, &ds, &val)?;
        let val_labels: Vec<bool> = val.iter().map(|&i| ds.samples[i].label).collect();
        let temperature = calibration::fit_temperature(&val_p, &val_labels);
        out.temperatures.push(temperature);
        let idx = ds.indices(Some(Split::Test));
        let p = predict(&loaded.classifier, &ds, &idx)?;
        out.scaled.extend(
            p.iter()
                .map(|&q| calibration::scale_temperature(q, temperature)),
        );
        if args.kind == ModelKind::Malignancy {
            out.found.extend(measurements(&ds, &idx));
        } else {
            out.found.extend(idx.iter().map(|_| None));
        }
        for &i in &idx {
            let s = &ds.samples[i];
            out.labels.push(s.label);
            out.readers.push(s.diameter_mm as f32);
            out.fold_of.push(fold.index);
            out.images.push(s.name.clone());
            out.patients.push(s.patient.clone());
        }
        out.cnn.extend(p);
        out.thresholds.push(loaded.threshold);
    }
    out.count = seen[0].count;
    if seen.len() != out.count {
        bail!(
            "{} of {} folds in {}",
            seen.len(),
            out.count,
            folds.display()
        );
    }
    out.seed = seed.unwrap_or(42);
    Ok(out)
}

impl OutOfFold {
    /// The combination's inputs of each measured case, with its label.
    pub fn rows(
        &self,
        keep: impl Fn(usize) -> bool,
    ) -> (Vec<[f64; malignancy::N_INPUTS]>, Vec<bool>) {
        (0..self.cnn.len())
            .filter(|&i| keep(i))
            .filter_map(|i| {
                let m = self.found[i].as_ref()?;
                Some((malignancy::inputs(self.cnn[i], m), self.labels[i]))
            })
            .unzip()
    }

    /// Each case's combined probability from a combination fitted on the other folds' cases
    /// only (nested, so no case's label decides its own prediction); the CNN's own where a
    /// case was not measured or a fold could not be fitted.
    pub fn nested_combination(&self, l2: f64) -> Vec<f32> {
        let mut out = self.cnn.clone();
        for k in 0..self.count {
            let (rows, labels) = self.rows(|i| self.fold_of[i] != k);
            let Some(c) = MalignancyCombination::fit(&rows, &labels, l2) else {
                continue;
            };
            for i in (0..out.len()).filter(|&i| self.fold_of[i] == k) {
                if let Some(m) = &self.found[i] {
                    out[i] = c.p_malignant(self.cnn[i], m);
                }
            }
        }
        out
    }
}

/// Out-of-fold: every case predicted once by a model that never saw its patient; one report
/// over all of them (`fold` per prediction). For the malignancy model `p_malignant` is what
/// ships, the combination, fitted on the other folds' cases (`cnn`: the CNN's alone), with
/// the baselines and the calibration.
pub fn evaluate_out_of_fold(args: &EvalArgs, folds: &Path) -> anyhow::Result<serde_json::Value> {
    let oof = out_of_fold(args, folds)?;
    Ok(report_out_of_fold(&oof, args.kind, folds))
}

/// The report of [`evaluate_out_of_fold`] from cases already predicted.
pub fn report_out_of_fold(oof: &OutOfFold, kind: ModelKind, folds: &Path) -> serde_json::Value {
    let seed = oof.seed;
    let labels = &oof.labels;
    let malignancy = kind == ModelKind::Malignancy;
    let (probs, threshold) = if malignancy {
        (
            oof.nested_combination(malignancy::DEFAULT_L2),
            COMBINED_THRESHOLD,
        )
    } else {
        // One operating point for the pooled cases: the folds' validation thresholds' mean.
        let t = oof.thresholds.iter().sum::<f32>() / oof.thresholds.len() as f32;
        (oof.cnn.clone(), t)
    };
    let mut report = metrics::report(&probs, labels, threshold, seed);
    let measured = diameters(&oof.found);
    if malignancy {
        baselines(&mut report, &probs, labels, &oof.readers, &measured, seed);
        let mut cnn = cnn_section(&oof.cnn, labels, seed);
        // What temperature scaling on each fold's validation would make of the CNN.
        cnn["temperature_scaled"] = serde_json::json!({
            "temperatures": oof.temperatures,
            "auc": metrics::auc(&oof.scaled, labels),
            "calibration": calibration::calibration(&oof.scaled, labels, CALIBRATION_BINS),
        });
        report["cnn"] = cnn;
        report["combination"] = serde_json::json!({
            "inputs": malignancy::INPUTS,
            "l2": malignancy::DEFAULT_L2,
            "fitted": "per fold, on the other folds' out-of-fold cases",
        });
    }
    let key = probability_key(kind);
    let predictions: Vec<serde_json::Value> = (0..probs.len())
        .map(|i| {
            let mut v = serde_json::json!({
                "image": oof.images[i],
                "patient": oof.patients[i],
                "label": u8::from(labels[i]),
                key: probs[i],
                "fold": oof.fold_of[i],
            });
            if malignancy {
                v["p_cnn"] = oof.cnn[i].into();
                v["measured_diameter_mm"] = measured[i].into();
                v["measurement"] = serde_json::to_value(&oof.found[i]).unwrap_or_default();
            }
            v
        })
        .collect();
    let patients: std::collections::BTreeSet<&String> = oof.patients.iter().collect();
    report["patients"] = patients.len().into();
    report["split"] = "out-of-fold".into();
    report["folds"] = oof.count.into();
    report["split_seed"] = seed.into();
    report["model"] = folds.display().to_string().into();
    report["roc"] = roc_json(&probs, labels);
    report["predictions"] = predictions.into();
    report
}

/// The baselines, gains and calibration of a malignancy report, for the terminal.
pub fn baseline_lines(report: &serde_json::Value) -> Vec<String> {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let mut lines = Vec::new();
    for (key, label) in [
        ("diameter", "nodules.csv diameter"),
        ("measured_diameter", "our measured diameter"),
    ] {
        let ci = &report[format!("baseline_{key}_auc_ci95")];
        let gain = &report[format!("gain_over_{key}")];
        if report[format!("baseline_{key}_auc")].is_null() {
            continue;
        }
        let mut line = format!(
            "{label}: AUC {:.3}",
            f(&report[format!("baseline_{key}_auc")])
        );
        if ci.is_array() {
            line += &format!(" [{:.3}, {:.3}]", f(&ci[0]), f(&ci[1]));
        }
        if gain.is_object() {
            line += &format!(
                "; the model's gain {:+.3} [{:+.3}, {:+.3}]",
                f(&gain["auc_gain"]),
                f(&gain["ci95"][0]),
                f(&gain["ci95"][1]),
            );
        }
        lines.push(line);
    }
    let cnn = &report["cnn"];
    if cnn.is_object() {
        let ci = &cnn["auc_ci95"];
        lines.push(format!(
            "the CNN alone: AUC {:.3} [{:.3}, {:.3}], ECE {:.3}",
            f(&cnn["auc"]),
            f(&ci[0]),
            f(&ci[1]),
            f(&cnn["calibration"]["ece"]),
        ));
    }
    let scaled = &report["cnn"]["temperature_scaled"]["calibration"];
    if scaled.is_object() {
        lines.push(format!(
            "the CNN after temperature scaling on each fold's validation: ECE {:.3}, Brier {:.3}, slope {:.2}",
            f(&scaled["ece"]),
            f(&scaled["brier"]),
            f(&scaled["slope"]),
        ));
    }
    let c = &report["calibration"];
    if !c.is_null() {
        lines.push(format!(
            "calibration: ECE {:.3} ({} equal-mass bins), Brier {:.3}, slope {:.2}, intercept {:+.2}",
            f(&c["ece"]),
            c["bins"].as_array().map_or(0, Vec::len),
            f(&c["brier"]),
            f(&c["slope"]),
            f(&c["intercept"]),
        ));
    }
    lines
}

/// One-line summary for the terminal.
pub fn summary_line(report: &serde_json::Value) -> String {
    let f = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    let ci = &report["auc_ci95"];
    format!(
        "n {} ({} positive, {} patients)  AUC {:.3} [{:.3}, {:.3}]  sensitivity {:.3}  specificity {:.3}  accuracy {:.3}  F1 {:.3} at p ≥ {:.3}",
        report["n"],
        report["n_positive"],
        report["patients"],
        f("auc"),
        ci[0].as_f64().unwrap_or(f64::NAN),
        ci[1].as_f64().unwrap_or(f64::NAN),
        f("recall"),
        f("specificity"),
        f("accuracy"),
        f("f1"),
        f("threshold"),
    )
}
