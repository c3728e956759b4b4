//! `nodulens`: the native command-line half of Nodulens. It opens scans with the same
//! core code as the browser app.

mod calibration;
mod candidates;
mod data;
mod detect;
mod eval;
mod eval_detection;
mod eval_measurement;
mod export;
mod fit_malignancy;
mod metrics;
mod plots;
mod rng;
mod train;
mod tune;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nodulens_core::preprocess::PreprocessConfig;
use nodulens_core::{DiskFiles, OpenOptions, Progress, Stage, Volume};
use nodulens_model::ModelKind;
use nodulens_model::train::TrainConfig;

#[derive(Parser)]
#[command(
    name = "nodulens",
    version,
    about = "Lung-nodule screening tools (research use only, not a medical device)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open a scan (files, folders or a zip, as the app does) and describe it.
    Info {
        /// DICOM files or folders, a .zip, an .mhd/.mha, a .nii/.nii.gz, or PNG/JPEG slices.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Voxel size for PNG/JPEG stacks, "x,y,z" in mm.
        #[arg(long, value_parser = parse_spacing, default_value = "1,1,1")]
        stack_spacing: [f64; 3],
    },
    /// Find the lungs and the candidate nodules of a scan (the pipeline's first two stages).
    Candidates {
        /// As for `info`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also write the lung volume, the candidates and the timings as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Voxel size for PNG/JPEG stacks, "x,y,z" in mm.
        #[arg(long, value_parser = parse_spacing, default_value = "1,1,1")]
        stack_spacing: [f64; 3],
    },
    /// Find, measure and categorise the nodules of a scan: findings with size, type,
    /// p(nodule), p(malignant) and Lung-RADS (research use only, not a medical device).
    Detect {
        /// As for `info`.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write a DICOM SR (Comprehensive 3D SR, TID 1500) here, in the source's study
        /// (DICOM input only).
        #[arg(long)]
        sr: Option<PathBuf>,
        /// Findings need p(nodule) at least this (default: the models' operating point);
        /// 0 lists every scored candidate, unmerged.
        #[arg(long)]
        threshold: Option<f32>,
        /// Where the models are (manifest.json and weights).
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Which device runs the models.
        #[arg(long, value_enum, default_value = "cpu")]
        backend: Backend,
        /// Voxel size for PNG/JPEG stacks, "x,y,z" in mm.
        #[arg(long, value_parser = parse_spacing, default_value = "1,1,1")]
        stack_spacing: [f64; 3],
    },
    /// Score the whole pipeline on annotated scans: FROC, sensitivity at 1/8 … 8 false
    /// positives per scan, CPM, and the operating point's sensitivity and false positives.
    EvalDetection {
        /// One folder per scan with annotations.json and dicom/, dicom.tar.xz, .mhd or .nii.gz.
        #[arg(long)]
        scans: PathBuf,
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Where dicom.tar.xz files are unpacked (<cache>/<scan>/dicom).
        #[arg(long, default_value = "target/test-scans")]
        cache: PathBuf,
        /// The operating point (default: the models').
        #[arg(long)]
        threshold: Option<f32>,
        /// Only these scans (repeatable).
        #[arg(long = "scan")]
        only: Vec<String>,
        /// Write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write the FROC curve as PNG into this folder.
        #[arg(long)]
        plots: Option<PathBuf>,
    },
    /// Segment and measure every LIDC crop: axes against the readers' masks and diameter_mm by
    /// size band, type against the texture rating, calcification against its rating.
    EvalMeasurement {
        /// The shared data root (with lidc-crops/) or a folder laid out like lidc-crops.
        #[arg(long)]
        data: PathBuf,
        /// Write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Measure the lung mask and the candidates on the shared whole scans and all crops.
    EvalCandidates {
        /// The shared data root (with lidc-crops/ and scans/).
        #[arg(long)]
        data: PathBuf,
        /// Where whole scans are unpacked (<cache>/<scan>/dicom).
        #[arg(long, default_value = "target/test-scans")]
        cache: PathBuf,
        /// Write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Whole scans only.
        #[arg(long)]
        skip_crops: bool,
        /// Only these scans (repeatable; default: every scan in <data>/scans).
        #[arg(long = "scan")]
        only: Vec<String>,
    },
    /// Train a classifier on the CPU (flex backend); checkpoints every epoch.
    Train {
        #[arg(value_enum)]
        kind: Kind,
        /// The shared data root (with lidc-crops/ and scans/).
        #[arg(long)]
        data: PathBuf,
        /// Output folder; the run goes to <out>/<kind>/.
        #[arg(long, default_value = "target/nodulens-runs")]
        out: PathBuf,
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
        #[arg(long, default_value_t = 1e-4)]
        weight_decay: f64,
        /// Augmentation strength (0 = none, 1 = default ranges).
        #[arg(long, default_value_t = 1.0)]
        augmentation: f64,
        /// Channels of the three conv stages, "a,b,c".
        #[arg(long, value_parser = parse_widths, default_value = "16,32,64")]
        widths: [usize; 3],
        /// Continue from <out>/<kind>/checkpoint.* if present.
        #[arg(long)]
        resume: bool,
        /// Train on fold K of an N-fold split by patient ("K/N"; fold K's patients are test)
        /// instead of the seeded split, for `eval-malignancy --out-of-fold`.
        #[arg(long, value_parser = data::Fold::parse)]
        fold: Option<data::Fold>,
        /// Malignancy: weight of a multi-task loss on the readers' other ratings (calcification,
        /// lobulation, spiculation, margin, sphericity, subtlety, texture, diameter), predicted
        /// from the hidden layer by a head that is not shipped; 0 for none.
        #[arg(long, default_value_t = 0.0)]
        aux_weight: f64,
        /// Side of each view of the patch, samples (a multiple of 8).
        #[arg(long, default_value_t = 32)]
        patch_size: usize,
        /// Distance between the patch's samples, mm.
        #[arg(long, default_value_t = 1.0)]
        spacing_mm: f64,
        /// Malignancy: also train on the nodules rated 3 (indeterminate), with this target
        /// between benign (0) and malignant (1); they are never validation or test cases.
        #[arg(long, value_parser = parse_target)]
        indeterminate_target: Option<f32>,
        #[command(flatten)]
        scans: ScanArgs,
    },
    /// Random search over learning rate, weight decay and augmentation strength, each trial a
    /// short training run scored on validation AUC only; writes <out>/tune.{json,md}.
    Tune {
        #[arg(value_enum)]
        kind: Kind,
        /// The shared data root (with lidc-crops/ and scans/).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "target/nodulens-tune")]
        out: PathBuf,
        #[arg(long, default_value_t = 8)]
        trials: usize,
        /// Epochs per trial.
        #[arg(long, default_value_t = 8)]
        epochs: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, value_parser = parse_widths, default_value = "16,32,64")]
        widths: [usize; 3],
        #[command(flatten)]
        scans: ScanArgs,
    },
    /// Evaluate the malignancy model on a folder laid out like lidc-crops (ratings 1, 2, 4, 5).
    EvalMalignancy {
        #[command(flatten)]
        eval: EvalOptions,
    },
    /// Fit how p_malignant combines the malignancy CNN with our own measurement, on the
    /// out-of-fold runs (`train malignancy --fold K/5 --out DIR/fold-K`), and write it into
    /// <models>/manifest.json and the model card.
    FitMalignancy {
        /// The shared data root (with lidc-crops/) or the crops folder.
        #[arg(long)]
        data: PathBuf,
        /// The folder of `fold-K` runs.
        #[arg(long, default_value = "target/oof")]
        out_of_fold: PathBuf,
        #[arg(long, default_value = "models")]
        models: PathBuf,
    },
    /// Evaluate the nodule model: crops as positives, negatives sampled as in training (seeded).
    EvalNodule {
        #[command(flatten)]
        eval: EvalOptions,
        #[command(flatten)]
        scans: ScanArgs,
    },
    /// Copy the best epoch of both runs to models/ with manifest.json and the model card.
    Export {
        /// The training output folder (as given to train --out).
        #[arg(long, default_value = "target/nodulens-runs")]
        runs: PathBuf,
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "models")]
        out: PathBuf,
        /// Where `nodulens tune` wrote its searches (<tuning>/<kind>/tune.{json,md}); each one
        /// found goes into the model card and the manifest.
        #[arg(long, default_value = "target/nodulens-tune")]
        tuning: PathBuf,
        /// Markdown appended to the card's limits: decisions the measured figures cannot show.
        #[arg(long)]
        notes: Option<PathBuf>,
        /// The pipeline's default operating point, p(nodule) (chosen with eval-detection).
        #[arg(long)]
        detection_threshold: Option<f32>,
        /// An eval-detection JSON report for the card, as LABEL=PATH (repeatable).
        #[arg(long = "detection-report", value_parser = parse_labelled_path)]
        detection_reports: Vec<(String, PathBuf)>,
        #[command(flatten)]
        scans: ScanArgs,
    },
}

/// Where `detect` runs the models.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// The fused CPU pass.
    Cpu,
    /// burn-wgpu (WebGPU, Vulkan, Metal).
    Wgpu,
}

/// What both `eval-*` commands take.
#[derive(clap::Args)]
struct EvalOptions {
    /// A folder with nodules.csv, images/, masks/ (or the shared data root).
    #[arg(long)]
    data: PathBuf,
    /// models/ (manifest.json) or a training output folder.
    #[arg(long, default_value = "models")]
    models: PathBuf,
    /// Which patients: all, or the train/val/test split of the model's seed.
    #[arg(long, default_value = "all")]
    split: String,
    /// Split seed (default: the model's training seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the full report (with per-case predictions) here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the ROC curve and the confusion matrix as PNG into this folder.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Out-of-fold instead: a folder of `fold-K` runs (`train --fold K/N --out DIR/fold-K`),
    /// each scored on its own test fold (`--models` and `--split` are then not used).
    #[arg(long)]
    out_of_fold: Option<PathBuf>,
}

/// Evaluates one model and writes its report.
fn run_eval(
    kind: ModelKind,
    options: EvalOptions,
    cache: PathBuf,
    negatives_per_scan: usize,
) -> anyhow::Result<()> {
    let args = eval::EvalArgs {
        kind,
        data: options.data,
        models: options.models,
        split: data::Split::parse(&options.split)?,
        seed: options.seed,
        cache,
        negatives_per_scan,
    };
    let report = match &options.out_of_fold {
        Some(folds) => eval::evaluate_out_of_fold(&args, folds)?,
        None => eval::evaluate(&args)?,
    };
    write_report(&report, kind, options.json.as_ref(), options.plots.as_ref())
}

#[derive(clap::Args)]
struct ScanArgs {
    /// Where whole scans are unpacked (<cache>/<scan>/dicom).
    #[arg(long, default_value = "target/test-scans")]
    cache: PathBuf,
    /// Whole-scan negatives per scan.
    #[arg(long, default_value_t = 600)]
    negatives_per_scan: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind {
    Nodule,
    Malignancy,
}

impl From<Kind> for ModelKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Nodule => ModelKind::Nodule,
            Kind::Malignancy => ModelKind::Malignancy,
        }
    }
}

/// `LABEL=PATH`.
fn parse_labelled_path(text: &str) -> Result<(String, PathBuf), String> {
    let (label, path) = text
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=PATH, got {text:?}"))?;
    Ok((label.to_owned(), PathBuf::from(path)))
}

fn parse_widths(text: &str) -> Result<[usize; 3], String> {
    let v: Vec<usize> = text
        .split(',')
        .map(|t| t.trim().parse::<usize>().map_err(|e| format!("{t:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match v.as_slice() {
        [a, b, c] if v.iter().all(|w| (1..=512).contains(w)) => Ok([*a, *b, *c]),
        _ => Err("expected three widths in 1..=512, e.g. 16,32,64".into()),
    }
}

fn parse_target(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("{text:?} is not a target in 0..=1, e.g. 0.5")),
    }
}

fn write_report(
    report: &serde_json::Value,
    kind: ModelKind,
    json: Option<&PathBuf>,
    plots: Option<&PathBuf>,
) -> anyhow::Result<()> {
    println!("{}", eval::summary_line(report));
    for line in eval::baseline_lines(report) {
        println!("{line}");
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_string_pretty(report)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(dir) = plots {
        for path in plots::write(report, kind, dir)? {
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

fn parse_spacing(text: &str) -> Result<[f64; 3], String> {
    let values: Vec<f64> = text
        .split(',')
        .map(|t| t.trim().parse::<f64>().map_err(|e| format!("{t:?}: {e}")))
        .collect::<Result<_, _>>()?;
    match values.as_slice() {
        [x, y, z] if values.iter().all(|v| *v > 0.0 && v.is_finite()) => Ok([*x, *y, *z]),
        _ => Err("expected three positive numbers, e.g. 0.7,0.7,2.5".into()),
    }
}

/// A panic inside a dicom-rs codec adapter (corrupt JPEG 2000) is caught by the reader and
/// reported as one clear error line; the default hook would print the panic message first.
fn quiet_contained_codec_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let contained = info.location().is_some_and(|l| {
            ["dicom-transfer-syntax-registry", "openjp2"]
                .iter()
                .any(|codec| l.file().contains(codec))
        });
        if !contained {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    quiet_contained_codec_panics();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nodulens: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info {
            paths,
            json,
            stack_spacing,
        } => {
            let volume = open(&paths, stack_spacing, !json)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info_json(&volume))?);
            } else {
                print_info(&volume);
            }
            Ok(())
        }
        Command::Candidates {
            paths,
            json,
            stack_spacing,
        } => {
            let volume = open(&paths, stack_spacing, true)?;
            candidates::run(&volume, json.as_deref())
        }
        Command::Detect {
            paths,
            json,
            sr,
            threshold,
            models,
            backend,
            stack_spacing,
        } => {
            if let Some(t) = threshold
                && !(0.0..=1.0).contains(&t)
            {
                anyhow::bail!("--threshold {t} is not a probability in [0, 1]");
            }
            let volume = open(&paths, stack_spacing, true)?;
            if sr.is_some() {
                nodulens_detect::check_source(&volume).context("--sr")?;
            }
            let device = detect::device(backend == Backend::Wgpu)?;
            detect::run(
                &volume,
                &models,
                &device,
                threshold,
                detect::Outputs {
                    json: json.as_deref(),
                    sr: sr.as_deref(),
                },
            )
        }
        Command::EvalDetection {
            scans,
            models,
            cache,
            threshold,
            only,
            json,
            plots,
        } => {
            let report = eval_detection::evaluate(&eval_detection::EvalDetectionArgs {
                scans: &scans,
                models: &models,
                cache: &cache,
                threshold,
                only: &only,
            })?;
            let at = &report["sensitivity_at_fp"];
            println!(
                "CPM {:.3}  (sensitivity at 1/8 … 8 FP/scan: {:.2} {:.2} {:.2} {:.2} {:.2} {:.2} {:.2}); at p ≥ {:.3}: sensitivity {:.3}, {:.2} FP/scan",
                report["cpm"].as_f64().unwrap_or(0.0),
                at["0.125"].as_f64().unwrap_or(0.0),
                at["0.25"].as_f64().unwrap_or(0.0),
                at["0.5"].as_f64().unwrap_or(0.0),
                at["1"].as_f64().unwrap_or(0.0),
                at["2"].as_f64().unwrap_or(0.0),
                at["4"].as_f64().unwrap_or(0.0),
                at["8"].as_f64().unwrap_or(0.0),
                report["threshold"].as_f64().unwrap_or(0.0),
                report["sensitivity_at_threshold"].as_f64().unwrap_or(0.0),
                report["fp_per_scan_at_threshold"].as_f64().unwrap_or(0.0),
            );
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(&path, text + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if let Some(dir) = plots {
                println!("wrote {}", plots::write_froc(&report, &dir)?.display());
            }
            Ok(())
        }
        Command::EvalMeasurement { data, json } => eval_measurement::run(&data, json.as_deref()),
        Command::EvalCandidates {
            data,
            cache,
            json,
            skip_crops,
            only,
        } => candidates::run_eval(&data, &cache, json.as_ref(), skip_crops, &only),
        Command::Train {
            kind,
            data,
            out,
            epochs,
            seed,
            batch_size,
            lr,
            weight_decay,
            augmentation,
            widths,
            resume,
            fold,
            aux_weight,
            patch_size,
            spacing_mm,
            indeterminate_target,
            scans,
        } => {
            let config = TrainConfig::new()
                .with_epochs(epochs)
                .with_seed(seed)
                .with_batch_size(batch_size)
                .with_learning_rate(lr)
                .with_weight_decay(weight_decay)
                .with_augmentation(augmentation);
            let state = train::train(&train::TrainArgs {
                kind: kind.into(),
                data,
                out: out.clone(),
                cache: scans.cache,
                config,
                widths,
                resume,
                negatives_per_scan: scans.negatives_per_scan,
                quiet: false,
                fold,
                aux_weight,
                preprocess: PreprocessConfig {
                    patch_size,
                    spacing_mm,
                    ..PreprocessConfig::default()
                },
                indeterminate_target,
            })?;
            println!(
                "best validation AUC {:.4} at epoch {} of {}; {:.0} s; run in {}",
                state.best_val_auc,
                state.best_epoch.unwrap_or(0),
                state.epochs_done,
                state.seconds,
                train::run_dir(&out, kind.into()).display()
            );
            Ok(())
        }
        Command::Tune {
            kind,
            data,
            out,
            trials,
            epochs,
            seed,
            batch_size,
            widths,
            scans,
        } => {
            let results = tune::tune(&tune::TuneArgs {
                kind: kind.into(),
                data,
                out: out.clone(),
                cache: scans.cache,
                trials,
                epochs,
                seed,
                batch_size,
                widths,
                negatives_per_scan: scans.negatives_per_scan,
            })?;
            if let Some(best) = results.first() {
                println!(
                    "best validation AUC {:.4}: trial {} (lr {:.2e}, weight decay {:.2e}, augmentation {:.2}); table in {}",
                    best.val_auc,
                    best.trial,
                    best.params.learning_rate,
                    best.params.weight_decay,
                    best.params.augmentation,
                    out.join("tune.md").display()
                );
            }
            Ok(())
        }
        Command::EvalMalignancy { eval } => {
            // Malignancy is scored on nodules only: no scan negatives.
            run_eval(
                ModelKind::Malignancy,
                eval,
                PathBuf::from("target/test-scans"),
                0,
            )
        }
        Command::FitMalignancy {
            data,
            out_of_fold,
            models,
        } => fit_malignancy::run(
            &data,
            &out_of_fold,
            &models,
            PathBuf::from("target/test-scans"),
        ),
        Command::EvalNodule { eval, scans } => run_eval(
            ModelKind::Nodule,
            eval,
            scans.cache,
            scans.negatives_per_scan,
        ),
        Command::Export {
            runs,
            data,
            out,
            tuning,
            notes,
            detection_threshold,
            detection_reports,
            scans,
        } => {
            let manifest = export::export(&export::ExportArgs {
                runs,
                data,
                out: out.clone(),
                tuning,
                notes,
                cache: scans.cache,
                negatives_per_scan: scans.negatives_per_scan,
                detection_threshold,
                detection_reports,
            })?;
            println!(
                "wrote {} models to {}",
                manifest.models.len(),
                out.display()
            );
            Ok(())
        }
    }
}

/// Opens a scan with a progress bar on stderr (hidden when stderr is not a terminal).
/// `stack_spacing_mm` is the voxel size given to PNG/JPEG stacks (`--stack-spacing`).
fn open(
    paths: &[PathBuf],
    stack_spacing_mm: [f64; 3],
    show_progress: bool,
) -> anyhow::Result<Volume> {
    let options = OpenOptions {
        stack_spacing_mm,
        ..OpenOptions::default()
    };
    let source = DiskFiles::from_paths(paths)?;
    let bar = if show_progress {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:9} [{bar:30}] {pos}/{len}")
            .context("progress template")?,
    );
    let mut on_progress = |p: Progress| {
        bar.set_message(match p.stage {
            Stage::Scanning => "scanning",
            Stage::Decoding => "decoding",
        });
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        true
    };
    let volume = nodulens_core::open(&source, &options, &mut on_progress)?;
    bar.finish_and_clear();
    Ok(volume)
}

/// The `--json` object; its keys are a stable interface (see README).
fn info_json(volume: &Volume) -> serde_json::Value {
    let stats = volume.statistics();
    serde_json::json!({
        "format": volume.format().label(),
        "modality": volume.metadata().modality,
        "dims": volume.dims(),
        "spacing_mm": volume.spacing(),
        "origin_mm": volume.origin(),
        "direction": volume.direction(),
        "units": volume.units(),
        "hu_min": stats.min,
        "hu_max": stats.max,
        "hu_mean": stats.mean,
        "series_uid": volume.metadata().series_uid,
        "series_description": volume.metadata().series_description,
        "kernel": volume.metadata().kernel,
        "slice_thickness_mm": volume.metadata().slice_thickness_mm,
        "other_series": volume.metadata().other_series,
        "warnings": volume.warnings(),
    })
}

fn print_info(volume: &Volume) {
    let stats = volume.statistics();
    let m = &volume.metadata();
    let [x, y, z] = volume.dims();
    println!("format       {}", volume.format().label());
    println!("modality     {}", m.modality.as_deref().unwrap_or("-"));
    println!("series       {}", m.series_uid.as_deref().unwrap_or("-"));
    if let Some(d) = &m.series_description {
        println!("description  {d}");
    }
    if let Some(k) = &m.kernel {
        println!("kernel       {k}");
    }
    println!("size         {x} × {y} × {z} voxels");
    println!(
        "spacing      {:.4} × {:.4} × {:.4} mm",
        volume.spacing()[0],
        volume.spacing()[1],
        volume.spacing()[2]
    );
    println!(
        "origin       ({:.2}, {:.2}, {:.2}) mm LPS",
        volume.origin()[0],
        volume.origin()[1],
        volume.origin()[2]
    );
    let d = volume.direction();
    println!(
        "direction    [{:.3} {:.3} {:.3}; {:.3} {:.3} {:.3}; {:.3} {:.3} {:.3}]",
        d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]
    );
    let unit = match volume.units() {
        nodulens_core::IntensityUnits::Hounsfield => "HU",
        nodulens_core::IntensityUnits::GreyLevels => "grey levels (not HU)",
    };
    println!(
        "values       {} to {}, mean {:.1} ({unit})",
        stats.min, stats.max, stats.mean
    );
    for other in &m.other_series {
        println!("also found   {other}");
    }
    for w in volume.warnings() {
        println!("warning      {w}");
    }
}
