//! `nodulens`: the native command-line half of Nodulens. It opens scans with the same
//! core code as the browser app.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use nodulens_core::{DiskFiles, OpenOptions, Progress, Stage, Volume};

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

fn main() -> ExitCode {
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
            let options = OpenOptions {
                stack_spacing_mm: stack_spacing,
                ..OpenOptions::default()
            };
            let volume = open(&paths, &options, !json)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info_json(&volume))?);
            } else {
                print_info(&volume);
            }
            Ok(())
        }
    }
}

/// Opens a scan with a progress bar on stderr (hidden when stderr is not a terminal).
fn open(paths: &[PathBuf], options: &OpenOptions, show_progress: bool) -> anyhow::Result<Volume> {
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
    let volume = nodulens_core::open(&source, options, &mut on_progress)?;
    bar.finish_and_clear();
    Ok(volume)
}

/// The `--json` object; its keys are a stable interface (see README).
fn info_json(volume: &Volume) -> serde_json::Value {
    let stats = volume.statistics();
    serde_json::json!({
        "format": volume.format.label(),
        "modality": volume.metadata.modality,
        "dims": volume.dims,
        "spacing_mm": volume.spacing,
        "origin_mm": volume.origin,
        "direction": volume.direction,
        "units": volume.units,
        "hu_min": stats.min,
        "hu_max": stats.max,
        "hu_mean": stats.mean,
        "series_uid": volume.metadata.series_uid,
        "series_description": volume.metadata.series_description,
        "kernel": volume.metadata.kernel,
        "slice_thickness_mm": volume.metadata.slice_thickness_mm,
        "other_series": volume.metadata.other_series,
        "warnings": volume.warnings,
    })
}

fn print_info(volume: &Volume) {
    let stats = volume.statistics();
    let m = &volume.metadata;
    let [x, y, z] = volume.dims;
    println!("format       {}", volume.format.label());
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
        volume.spacing[0], volume.spacing[1], volume.spacing[2]
    );
    println!(
        "origin       ({:.2}, {:.2}, {:.2}) mm LPS",
        volume.origin[0], volume.origin[1], volume.origin[2]
    );
    let d = volume.direction;
    println!(
        "direction    [{:.3} {:.3} {:.3}; {:.3} {:.3} {:.3}; {:.3} {:.3} {:.3}]",
        d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8]
    );
    let unit = match volume.units {
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
    for w in &volume.warnings {
        println!("warning      {w}");
    }
}
