//! `nodulens export`: the best epoch of each training run → `models/` (weights, `manifest.json`,
//! `README.md` model card), with validation and test metrics measured here.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use nodulens_model::manifest::MANIFEST_VERSION;
use nodulens_model::{Manifest, ManifestModel, ModelKind, Provenance};

use crate::data::{self, BuildOptions, Split};
use crate::eval::{self, sha256_hex};
use crate::train::{RunState, run_dir};

pub struct ExportArgs {
    pub runs: PathBuf,
    pub data: PathBuf,
    pub out: PathBuf,
    /// `nodulens tune` output root (`<tuning>/<kind>/tune.{json,md}`), where present.
    pub tuning: PathBuf,
    /// Markdown appended to the card's limits.
    pub notes: Option<PathBuf>,
    pub cache: PathBuf,
    pub negatives_per_scan: usize,
    /// The pipeline's default operating point (p(nodule)), chosen on whole scans with
    /// `nodulens eval-detection`; goes into the manifest.
    pub detection_threshold: Option<f32>,
    /// `eval-detection --json` reports for the card's whole-scan section, each with a label.
    pub detection_reports: Vec<(String, PathBuf)>,
}

/// The training record of a shipped model, as its run left it (from the manifest entry
/// export wrote).
fn shipped_state(entry: &ManifestModel) -> anyhow::Result<RunState> {
    let t = &entry.training;
    fn field<T: serde::de::DeserializeOwned>(
        t: &serde_json::Value,
        kind: ModelKind,
        key: &str,
    ) -> anyhow::Result<T> {
        serde_json::from_value(t[key].clone())
            .with_context(|| format!("the shipped {} model's training has no {key}", kind.name()))
    }
    let k = entry.kind;
    Ok(RunState {
        kind: entry.kind,
        architecture: entry.architecture.clone(),
        preprocess: entry.preprocess.clone(),
        train: field(t, k, "train")?,
        epochs_done: field(t, k, "epochs_done")?,
        history: field(t, k, "history")?,
        best_epoch: field(t, k, "best_epoch")?,
        best_val_auc: field(t, k, "best_val_auc")?,
        threshold: entry.threshold,
        params: entry.params as usize,
        samples: t["samples"].clone(),
        seconds: field(t, k, "seconds")?,
        fold: None,
        aux_weight: t["aux_weight"].as_f64().unwrap_or(0.0),
        aux_targets: serde_json::from_value(t["aux_targets"].clone()).unwrap_or_default(),
    })
}

pub fn export(args: &ExportArgs) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(&args.out)?;
    let mut models = Vec::new();
    let mut reports = Vec::new();
    // A kind without a run keeps what `out` ships (weights, training record), re-evaluated.
    let shipped = Manifest::from_json(
        &std::fs::read_to_string(args.out.join("manifest.json")).unwrap_or_default(),
    )
    .ok();
    for kind in ModelKind::ALL {
        let dir = run_dir(&args.runs, kind);
        // The shipped malignancy combination stays with the CNN it was fitted for, and only
        // with it: a new CNN needs `nodulens fit-malignancy`.
        let (state, loaded, bytes, combination) = if dir.join("run.json").is_file() {
            let state: RunState =
                serde_json::from_str(&std::fs::read_to_string(dir.join("run.json"))?)?;
            let bytes = std::fs::read(dir.join("best.bpk"))?;
            if kind == ModelKind::Malignancy {
                eprintln!(
                    "malignancy: a new CNN; run `nodulens fit-malignancy` next (p_malignant is \
the CNN's own output until then)"
                );
            }
            (state, eval::load(&args.runs, kind)?, bytes, None)
        } else {
            let entry = shipped
                .as_ref()
                .and_then(|m| m.model(kind))
                .with_context(|| {
                    format!(
                        "no {}/run.json and no shipped {} model in {} (train first)",
                        dir.display(),
                        kind.name(),
                        args.out.display()
                    )
                })?;
            eprintln!(
                "{}: no run in {}, keeping the shipped model",
                kind.name(),
                args.runs.display()
            );
            let bytes = std::fs::read(args.out.join(&entry.file))?;
            let state = shipped_state(entry)?;
            // The card's tables are the CNN's own output; fit-malignancy adds the combination's.
            let mut loaded = eval::load(&args.out, kind)?;
            loaded.combination = None;
            (state, loaded, bytes, entry.combination.clone())
        };
        let seed = state.train.seed;
        eprintln!("evaluating {} on validation and test patients", kind.name());
        let ds = data::build(&BuildOptions {
            kind,
            data: &args.data,
            seed,
            cache: &args.cache,
            negatives_per_scan: args.negatives_per_scan,
            only: None,
            fold: None,
            verbose: false,
            indeterminate_target: None,
        })?;
        let mut metrics = serde_json::Map::new();
        for (name, split) in [("val", Split::Val), ("test", Split::Test)] {
            let mut r = eval::evaluate_dataset(&loaded, &ds, kind, Some(split), seed)?;
            if let Some(o) = r.as_object_mut() {
                o.remove("predictions");
                o.remove("model");
                o.remove("roc");
            }
            eprintln!("  {name}: {}", eval::summary_line(&r));
            metrics.insert(name.into(), r);
        }
        let file = kind.weights_file().to_string();
        std::fs::write(args.out.join(&file), &bytes)?;
        let tuning = read_tuning(&args.tuning, kind)?;
        let training = serde_json::json!({
            "tuning": tuning.as_ref().map(|t| &t.summary),
            "train": state.train,
            "epochs_done": state.epochs_done,
            "best_epoch": state.best_epoch,
            "best_val_auc": state.best_val_auc,
            "seconds": state.seconds,
            "samples": state.samples,
            "history": state.history,
            "aux_weight": state.aux_weight,
            "aux_targets": state.aux_targets,
        });
        reports.push(Report {
            kind,
            state: state.clone(),
            metrics: serde_json::Value::Object(metrics.clone()),
            tuning,
        });
        models.push(ManifestModel {
            kind,
            sha256: sha256_hex(&bytes),
            bytes: bytes.len() as u64,
            file,
            params: state.params as u64,
            architecture: state.architecture.clone(),
            preprocess: state.preprocess.clone(),
            threshold: state.threshold,
            // Chosen on whole scans (`nodulens eval-detection`), not by training.
            detection_threshold: match kind {
                ModelKind::Nodule => args.detection_threshold,
                ModelKind::Malignancy => None,
            },
            training,
            combination,
            metrics: serde_json::Value::Object(metrics),
        });
    }
    let manifest = Manifest {
        format_version: MANIFEST_VERSION,
        models,
        provenance: Provenance {
            datasets: vec![
                "LIDC-IDRI nodule crops (791 nodules, 438 patients; ../shared/data/lidc-crops)".into(),
                "whole chest CTs (negatives: the pipeline's candidates away from every mark) LIDC-IDRI-0002, LIDC-IDRI-0008, CPTAC-C3N-00247 (train), Lung_Dx-A0001 (validation), LIDC-IDRI-0006 (test); LIDC-IDRI-0476 held out of training and tuning (test)".into(),
            ],
            licence: "LIDC-IDRI CC BY 3.0; Lung-PET-CT-Dx CC BY 4.0; CPTAC CC BY 3.0 (all via TCIA)".into(),
            split: format!(
                "by patient, seeded: {:.0} % train, {:.0} % validation, rest test; LIDC-IDRI-0476 always test; the other whole scans dealt 3/1/1",
                data::TRAIN_FRACTION * 100.0,
                data::VAL_FRACTION * 100.0
            ),
            code_version: env!("CARGO_PKG_VERSION").into(),
        },
        intended_use: "research use only, not a medical device".into(),
    };
    std::fs::write(
        args.out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    let notes = match &args.notes {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        None => None,
    };
    let mut detection = Vec::new();
    for (label, path) in &args.detection_reports {
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not an eval-detection report", path.display()))?;
        detection.push((label.clone(), report));
    }
    std::fs::write(
        args.out.join("README.md"),
        model_card(&manifest, &reports, &detection, notes.as_deref()),
    )?;
    Ok(manifest)
}

fn fmt_metric(m: &serde_json::Value, key: &str) -> String {
    m[key]
        .as_f64()
        .map(|v| format!("{v:.3}"))
        .unwrap_or_else(|| "–".into())
}

fn metrics_row(name: &str, m: &serde_json::Value) -> String {
    let ci = &m["auc_ci95"];
    format!(
        "| {name} | {} ({} positive, {} patients) | {} [{:.3}, {:.3}] | {} | {} | {} | {} |\n",
        m["n"],
        m["n_positive"],
        m["patients"],
        fmt_metric(m, "auc"),
        ci[0].as_f64().unwrap_or(f64::NAN),
        ci[1].as_f64().unwrap_or(f64::NAN),
        fmt_metric(m, "recall"),
        fmt_metric(m, "specificity"),
        fmt_metric(m, "precision"),
        fmt_metric(m, "f1"),
    )
}

/// `models/README.md`.
/// One model's search by `nodulens tune`: its summary (tune.json) and its table (tune.md).
struct Tuning {
    summary: serde_json::Value,
    table: String,
}

/// What the model card says of one exported model.
struct Report {
    kind: ModelKind,
    state: RunState,
    metrics: serde_json::Value,
    tuning: Option<Tuning>,
}

fn read_tuning(root: &std::path::Path, kind: ModelKind) -> anyhow::Result<Option<Tuning>> {
    let dir = root.join(kind.name());
    let (json, md) = (dir.join("tune.json"), dir.join("tune.md"));
    if !json.exists() || !md.exists() {
        return Ok(None);
    }
    let mut summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)
        .with_context(|| format!("reading {}", json.display()))?;
    if let Some(o) = summary.as_object_mut() {
        o.remove("trials"); // the full table is in the card
    }
    let table = std::fs::read_to_string(&md)?
        .lines()
        .skip_while(|l| l.starts_with('#') || l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Some(Tuning { summary, table }))
}

/// Whether a run was trained with the configuration its search chose (to the 3 significant
/// digits `nodulens train` is given).
fn uses_chosen(state: &RunState, tuning: &Tuning) -> bool {
    let close = |a: f64, key: &str| {
        tuning.summary["chosen"][key]
            .as_f64()
            .is_some_and(|b| (a - b).abs() <= 0.01 * b.abs().max(1e-12))
    };
    close(state.train.learning_rate, "learning_rate")
        && close(state.train.weight_decay, "weight_decay")
        && close(state.train.augmentation, "augmentation")
}

fn model_card(
    manifest: &Manifest,
    reports: &[Report],
    detection: &[(String, serde_json::Value)],
    notes: Option<&str>,
) -> String {
    let mut s = String::new();
    let pre = manifest
        .models
        .first()
        .map(|m| m.preprocess.clone())
        .unwrap_or_default();
    let _ = writeln!(s, "# Nodulens models — model card\n");
    let _ = writeln!(
        s,
        "**Research use only — not a medical device.** These models must not be used for diagnosis, \
screening decisions or any clinical purpose.\n"
    );
    let _ = writeln!(
        s,
        "Generated by `nodulens export`; the figures below are measured, not edited by hand.\n"
    );
    let _ = writeln!(s, "## Intended use\n");
    let _ = writeln!(
        s,
        "- `nodule.bpk`: p(nodule) for a candidate point of a chest CT (false-positive reduction after a \
candidate detector).\n- `malignancy.bpk`: p(malignant) for a nodule, where \"malignant\" means the LIDC \
radiologists' majority rating was 4–5 (suspicious) rather than 1–2; a rating of suspicion, not pathology.\n"
    );
    let _ = writeln!(s, "## Input\n");
    let _ = writeln!(
        s,
        "`nodulens_core::preprocess::extract_views` around the point: axial, coronal and sagittal planes, \
{} slices each at offsets {:?} mm, {}×{} samples at {} mm (trilinear), HU clipped to [{}, {}] and scaled \
to [0, 1], outside the volume {} HU. The LIDC crops cover about 44×44 native voxels in-plane and only the \
nodule's own z-extent, so every input, in training and in the pipeline, is first cut to the same \
deterministic context (`nodulens_detect::cut_patch`: 18 voxels each side in-plane, the slices of our own \
segmentation of the finding along z), from crops and whole scans alike.\n",
        pre.channels(),
        pre.slice_offsets_mm,
        pre.patch_size,
        pre.patch_size,
        pre.spacing_mm,
        pre.hu_min,
        pre.hu_max,
        pre.pad_hu
    );
    let _ = writeln!(s, "## Architecture\n");
    for m in &manifest.models {
        let _ = writeln!(
            s,
            "- {}: 2.5D CNN, a shared 2D network over the three views (3 stages of two 3×3 conv + \
batch-norm + ReLU and a 2×2 max-pool, widths {:?}), global average, concatenated, then {}-unit hidden layer \
(dropout {}) and one logit. {} parameters, {} bytes (f32 burnpack), SHA-256 `{}`.",
            m.kind.name(),
            m.architecture.widths,
            m.architecture.hidden,
            m.architecture.dropout,
            m.params,
            m.bytes,
            m.sha256
        );
    }
    let _ = writeln!(s, "\n## Data and licences\n");
    for d in &manifest.provenance.datasets {
        let _ = writeln!(s, "- {d}");
    }
    let _ = writeln!(
        s,
        "- Licences: {}. LIDC-IDRI: Armato SG III et al., Medical Physics 38(2), 2011. TCIA: Clark K. et al., \
J Digit Imaging 26(6), 2013.\n- Split: {}.\n- Malignancy model: ratings 1–2 benign, 4–5 malignant, 3 left out. \
Nodule model: every crop is a positive; negatives are one point per crop away from its nodule, and \
the detection pipeline's own candidates of the whole scans (lung mask, then `nodulens_detect::candidates`) \
at least 10 mm beyond every mark.\n",
        manifest.provenance.licence, manifest.provenance.split
    );
    let _ = writeln!(s, "## Metrics\n");
    let _ = writeln!(
        s,
        "AUC with a 95 % percentile bootstrap interval (2000 resamples of cases); sensitivity, specificity, \
precision and F1 at the threshold chosen on validation (Youden's J).\n"
    );
    for Report {
        kind,
        state,
        metrics,
        ..
    } in reports
    {
        let threshold = manifest.model(*kind).map(|m| m.threshold).unwrap_or(0.5);
        let _ = writeln!(s, "### {} (threshold p ≥ {threshold:.3})\n", kind.name());
        let _ = writeln!(
            s,
            "| split | n | AUC [95 % CI] | sensitivity | specificity | precision | F1 |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        s.push_str(&metrics_row("validation", &metrics["val"]));
        s.push_str(&metrics_row("test", &metrics["test"]));
        if *kind == ModelKind::Malignancy {
            let _ = writeln!(
                s,
                "\nThese are the CNN's own outputs; `p_malignant` as shipped combines them with our \
                 measurement of the finding (see \"p_malignant: the CNN combined with our measurement\" \
                 below). Baselines on the same test nodules (the diameter alone: the readers' from \
                 `nodules.csv`, and our own segmentation's), the CNN's gain over each (paired \
                 bootstrap 95 % interval), and its calibration:\n"
            );
            for line in crate::eval::baseline_lines(&metrics["test"]) {
                let _ = writeln!(s, "- {line}");
            }
        }
        if *kind == ModelKind::Nodule {
            let by = &metrics["test"]["by_source"];
            let _ = writeln!(
                s,
                "\nTest AUC of nodules against crop-background negatives: {}; against whole-scan candidates: {} \
({} negatives from one scan).",
                fmt_metric(&by["crop_background"], "auc"),
                fmt_metric(&by["scan_candidate"], "auc"),
                by["scan_candidate"]["negatives"]
            );
        }
        let _ = writeln!(
            s,
            "\nTraining: {} epochs (best {}), batch {}, AdamW lr {} (cosine), weight decay {}, augmentation {}, \
seed {}; {:.0} s on the CPU (flex backend, 2 shared cores).\n",
            state.epochs_done,
            state
                .best_epoch
                .map(|e| e.to_string())
                .unwrap_or_else(|| "–".into()),
            state.train.batch_size,
            state.train.learning_rate,
            state.train.weight_decay,
            state.train.augmentation,
            state.train.seed,
            state.seconds
        );
        if state.aux_weight > 0.0 {
            let _ = writeln!(
                s,
                "Multi-task: beside the label, a second head on the hidden layer learnt the readers' \
other ratings ({}; each scaled to 0–1, loss weight {}). That head is not shipped: the ratings are \
training targets only, never inputs.\n",
                state.aux_targets.join(", "),
                state.aux_weight
            );
        }
    }
    let _ = writeln!(s, "## Tuning\n");
    for report in reports {
        let _ = writeln!(s, "### {}\n", report.kind.name());
        match &report.tuning {
            Some(t) => {
                let train = &report.state.train;
                let used = if uses_chosen(&report.state, t) {
                    "The shipped weights were trained with the chosen configuration (values rounded to \
three significant digits, as given to `nodulens train`)."
                        .to_owned()
                } else {
                    format!(
                        "The shipped weights were **not** trained with the chosen configuration but with lr {}, \
weight decay {}, augmentation {} (see Limits).",
                        train.learning_rate, train.weight_decay, train.augmentation
                    )
                };
                let _ = writeln!(
                    s,
                    "{}\n\n{used} The search summary is in `manifest.json` (`training.tuning`).\n",
                    t.table
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "No search was run for these weights: they use the default configuration.\n"
                );
            }
        }
    }
    if !detection.is_empty() {
        detection_section(&mut s, manifest, detection);
    }
    let _ = writeln!(s, "## Limits\n");
    let _ = writeln!(
        s,
        "- Small data: a few hundred nodules; the test sets are small and the intervals above are wide.\n\
- Labels are radiologists' ratings, not pathology; rating-3 nodules are excluded from the malignancy task, which \
makes it easier than the clinical question.\n\
- Whole-scan negatives come from four scans only (one of them in test), so the nodule model's specificity \
on other scanners, kernels and contrast is unmeasured; a CPTAC scan has no reads, so unmarked lesions may \
be among its negatives.\n\
- All positives are LIDC nodules ≥ 3 mm marked by ≥ 3 of 4 readers; smaller or less certain nodules, masses \
and non-LIDC scanners were not in training.\n\
- The searches above are short (a few epochs per trial, one seed each), so their ranking is noisy; \
they are scored on the validation patients only."
    );
    if let Some(notes) = notes {
        let _ = writeln!(s, "{}", notes.trim_end());
    }
    let _ = writeln!(s, "- Research use only, not a medical device.");
    s
}

/// The whole pipeline on whole scans (`nodulens eval-detection` reports): CPM, the FROC points
/// and the operating point, per set of scans.
fn detection_section(
    s: &mut String,
    manifest: &Manifest,
    detection: &[(String, serde_json::Value)],
) {
    let _ = writeln!(s, "## Whole-scan detection\n");
    let point = manifest
        .model(ModelKind::Nodule)
        .and_then(|m| m.detection_threshold);
    let _ = writeln!(
        s,
        "The pipeline (lung mask, candidates, segmentation, the nodule model) on whole scans, by \
`nodulens eval-detection`: a finding is a hit within the reference nodule's radius (at least 2.5 mm); \
reference nodules are those marked by 3 or more of 4 LIDC readers. Sensitivity at r false positives per \
scan counts the hits ranked above the (⌊r·scans⌋+1)-th false positive; CPM is their mean over \
r = 1/8 … 8. The default operating point{} was chosen on the development scans for about one false \
positive per scan.\n",
        point.map_or(String::new(), |t| format!(" (p(nodule) ≥ {t})"))
    );
    let _ = writeln!(
        s,
        "| scans | n scans | reference nodules | CPM | 1/8 | 1/4 | 1/2 | 1 | 2 | 4 | 8 | sensitivity at the operating point | FP/scan there |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (label, r) in detection {
        let f = |v: &serde_json::Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.3}"));
        let rates: Vec<String> = ["0.125", "0.25", "0.5", "1", "2", "4", "8"]
            .iter()
            .map(|k| f(&r["sensitivity_at_fp"][*k]))
            .collect();
        let _ = writeln!(
            s,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            r["n_scans"],
            r["n_reference"],
            f(&r["cpm"]),
            rates.join(" | "),
            f(&r["sensitivity_at_threshold"]),
            r["fp_per_scan_at_threshold"]
                .as_f64()
                .map_or("–".to_owned(), |x| format!("{x:.2}"))
        );
    }
    let _ = writeln!(
        s,
        "\nAnchors: LUNA16 CPM 0.84 (DeepLung) to 0.93–0.95 (nnDetection), large 3-D networks on GPUs and \
hundreds of scans. With 9 reference nodules here, each one is 0.11 of sensitivity: these figures are \
anecdotes, not estimates.\n"
    );
}
