//! `--plots DIR` of the `eval-*` commands: the ROC curve and the confusion matrix as PNG, drawn
//! with plotters on an RGB buffer (text in an embedded DejaVu Sans, so no system font is needed)
//! and encoded by the `image` crate.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use nodulens_model::ModelKind;

const FONT: &str = "sans-serif";
const ROC_SIZE: (u32, u32) = (640, 600);
const CONFUSION_SIZE: (u32, u32) = (600, 500);

/// Registers the embedded font once (plotters' ab_glyph text has no fallback).
fn register_font() -> anyhow::Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded font could not be loaded"))
    }
}

/// The two class names of `kind`: (negative, positive).
fn class_names(kind: ModelKind) -> (&'static str, &'static str) {
    match kind {
        ModelKind::Malignancy => ("benign", "malignant"),
        ModelKind::Nodule => ("non-nodule", "nodule"),
    }
}

/// Writes `<dir>/<kind>-roc.png` and `<dir>/<kind>-confusion.png` from an evaluation report
/// (its `roc`, `auc`, `auc_ci95`, `confusion`, `threshold`, `recall` and `specificity` keys),
/// and `<dir>/<kind>-reliability.png` where it has a `calibration`.
pub fn write(
    report: &serde_json::Value,
    kind: ModelKind,
    dir: &Path,
) -> anyhow::Result<Vec<PathBuf>> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let roc = dir.join(format!("{}-roc.png", kind.name()));
    let confusion = dir.join(format!("{}-confusion.png", kind.name()));
    save(&roc, ROC_SIZE, |buf| draw_roc(buf, ROC_SIZE, report, kind))?;
    save(&confusion, CONFUSION_SIZE, |buf| {
        draw_confusion(buf, CONFUSION_SIZE, report, kind)
    })?;
    let mut written = vec![roc, confusion];
    if report["calibration"].is_object() {
        let reliability = dir.join(format!("{}-reliability.png", kind.name()));
        save(&reliability, ROC_SIZE, |buf| {
            draw_reliability(buf, ROC_SIZE, report, kind)
        })?;
        written.push(reliability);
    }
    Ok(written)
}

/// The reliability diagram: each equal-mass bin's observed rate against its mean probability.
fn draw_reliability(
    buf: &mut [u8],
    size: (u32, u32),
    report: &serde_json::Value,
    kind: ModelKind,
) -> anyhow::Result<()> {
    let c = &report["calibration"];
    let bins: Vec<(f64, f64)> = c["bins"]
        .as_array()
        .context("report has no calibration bins")?
        .iter()
        .filter_map(|b| Some((b["mean_p"].as_f64()?, b["observed"].as_f64()?)))
        .collect();
    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    let caption = format!(
        "{} model: reliability, {} (n = {})",
        kind.name(),
        split_label(report),
        report["n"]
    );
    let mut chart = unit_square_chart(
        &root,
        caption,
        (
            "mean predicted probability (equal-mass bins)",
            "observed fraction positive",
        ),
        "perfectly calibrated",
    )?;
    let blue = RGBColor(33, 102, 172);
    let label = format!(
        "ECE {:.3}, Brier {:.3}, slope {:.2}",
        c["ece"].as_f64().unwrap_or(f64::NAN),
        c["brier"].as_f64().unwrap_or(f64::NAN),
        c["slope"].as_f64().unwrap_or(f64::NAN),
    );
    chart
        .draw_series(LineSeries::new(bins.clone(), blue.stroke_width(2)))
        .map_err(plot_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue.stroke_width(2)));
    chart
        .draw_series(bins.into_iter().map(|p| Circle::new(p, 5, blue.filled())))
        .map_err(plot_err)?;
    legend_and_present(&mut chart, &root)
}

fn save(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&mut [u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut buf = vec![0u8; (w * h * 3) as usize];
    draw(&mut buf).with_context(|| format!("drawing {}", path.display()))?;
    let image = image::RgbImage::from_raw(w, h, buf).context("image buffer size")?;
    image
        .save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("writing {}", path.display()))
}

/// The legend in the lower right corner, then the picture written out.
fn legend_and_present<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// A chart over the unit square with its mesh and the dashed diagonal (`diagonal` labels it),
/// the frame of the ROC and reliability plots.
fn unit_square_chart<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    caption: String,
    (x_desc, y_desc): (&str, &str),
    diagonal: &str,
) -> anyhow::Result<
    ChartContext<
        'a,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
> {
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(caption, (FONT, 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(244, 244, 244))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(plot_err)?;
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            6,
            6,
            RGBColor(150, 150, 150).stroke_width(1),
        ))
        .map_err(plot_err)?
        .label(diagonal)
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RGBColor(150, 150, 150)));
    Ok(chart)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("{e:?}")
}

fn split_label(report: &serde_json::Value) -> String {
    match report["split"].as_str() {
        Some("all") | None => "all patients".into(),
        Some(s) => format!("{s} patients"),
    }
}

fn draw_roc(
    buf: &mut [u8],
    size: (u32, u32),
    report: &serde_json::Value,
    kind: ModelKind,
) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = report["roc"]
        .as_array()
        .context("report has no ROC points")?
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()?)))
        .collect();
    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    let auc = report["auc"].as_f64();
    let ci = &report["auc_ci95"];
    let auc_text = match (auc, ci[0].as_f64(), ci[1].as_f64()) {
        (Some(a), Some(lo), Some(hi)) => format!("AUC {a:.3} [{lo:.3}, {hi:.3}]"),
        (Some(a), _, _) => format!("AUC {a:.3}"),
        _ => "AUC undefined (one class only)".into(),
    };
    let caption = format!(
        "{} model: ROC, {} (n = {})",
        kind.name(),
        split_label(report),
        report["n"]
    );
    let mut chart = unit_square_chart(
        &root,
        caption,
        (
            "1 - specificity (false-positive rate)",
            "sensitivity (true-positive rate)",
        ),
        "chance",
    )?;
    let blue = RGBColor(33, 102, 172);
    chart
        .draw_series(LineSeries::new(points, blue.stroke_width(3)))
        .map_err(plot_err)?
        .label(auc_text)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue.stroke_width(3)));
    if let (Some(sens), Some(spec), Some(t)) = (
        report["recall"].as_f64(),
        report["specificity"].as_f64(),
        report["threshold"].as_f64(),
    ) {
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(std::iter::once(Circle::new(
                (1.0 - spec, sens),
                6,
                red.filled(),
            )))
            .map_err(plot_err)?
            .label(format!(
                "operating point p >= {t:.3}: sens {sens:.2}, spec {spec:.2}"
            ))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, red.filled()));
    }
    legend_and_present(&mut chart, &root)
}

/// Writes `<dir>/froc.png` from an `eval-detection` report (its `froc` points, `cpm`,
/// `sensitivity_at_fp` and operating point): sensitivity against false positives per scan on a
/// log axis, 1/8 to 8.
pub fn write_froc(report: &serde_json::Value, dir: &Path) -> anyhow::Result<PathBuf> {
    register_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("froc.png");
    save(&path, ROC_SIZE, |buf| draw_froc(buf, ROC_SIZE, report))?;
    Ok(path)
}

fn draw_froc(buf: &mut [u8], size: (u32, u32), report: &serde_json::Value) -> anyhow::Result<()> {
    let (lo, hi) = (0.125f64, 8.0f64);
    let points: Vec<(f64, f64)> = report["froc"]
        .as_array()
        .context("report has no FROC points")?
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?.clamp(lo, hi), p[1].as_f64()?)))
        .collect();
    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let caption = format!(
        "FROC: {} scans, {} reference nodules",
        report["n_scans"], report["n_reference"]
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        .build_cartesian_2d(
            (lo..hi)
                .log_scale()
                .with_key_points(vec![0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]),
            0f64..1f64,
        )
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc("false positives per scan")
        .y_desc("sensitivity")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(244, 244, 244))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(plot_err)?;
    let blue = RGBColor(33, 102, 172);
    let cpm = report["cpm"].as_f64().unwrap_or(f64::NAN);
    chart
        .draw_series(LineSeries::new(points, blue.stroke_width(3)))
        .map_err(plot_err)?
        .label(format!("CPM {cpm:.3}"))
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], blue.stroke_width(3)));
    if let (Some(sens), Some(fp), Some(t)) = (
        report["sensitivity_at_threshold"].as_f64(),
        report["fp_per_scan_at_threshold"].as_f64(),
        report["threshold"].as_f64(),
    ) {
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(std::iter::once(Circle::new(
                (fp.clamp(lo, hi), sens),
                6,
                red.filled(),
            )))
            .map_err(plot_err)?
            .label(format!(
                "operating point p >= {t:.3}: sens {sens:.2} at {fp:.2} FP/scan"
            ))
            .legend(move |(x, y)| Circle::new((x + 10, y), 5, red.filled()));
    }
    legend_and_present(&mut chart, &root)
}

/// Centred text of `px` pixels.
fn style(px: u32, color: &'static RGBColor) -> TextStyle<'static> {
    TextStyle::from((FONT, px).into_font())
        .color(color)
        .pos(Pos::new(HPos::Center, VPos::Center))
}

fn draw_confusion(
    buf: &mut [u8],
    size: (u32, u32),
    report: &serde_json::Value,
    kind: ModelKind,
) -> anyhow::Result<()> {
    let c = &report["confusion"];
    let get = |k: &str| {
        c[k].as_u64()
            .with_context(|| format!("confusion has no {k}"))
    };
    // Rows: actual negative, actual positive; columns: predicted negative, predicted positive.
    let cells = [[get("tn")?, get("fp")?], [get("fn")?, get("tp")?]];
    let (neg, pos) = class_names(kind);
    let names = [neg, pos];
    let threshold = report["threshold"].as_f64().unwrap_or(f64::NAN);

    let root = BitMapBackend::with_buffer(buf, size).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (w, _) = size;
    let title = format!(
        "{} model: confusion at p >= {threshold:.3}, {} (n = {})",
        kind.name(),
        split_label(report),
        report["n"]
    );
    root.draw_text(&title, &style(18, &BLACK), (w as i32 / 2, 22))
        .map_err(plot_err)?;

    let cell = 160i32;
    let (x0, y0) = (200i32, 110i32);
    root.draw_text("predicted", &style(16, &BLACK), (x0 + cell, y0 - 52))
        .map_err(plot_err)?;
    root.draw_text(
        "actual",
        &style(16, &BLACK).transform(FontTransform::Rotate270),
        (40, y0 + cell),
    )
    .map_err(plot_err)?;
    let blue = (33.0, 102.0, 172.0);
    for (r, row) in cells.iter().enumerate() {
        let row_total: u64 = row.iter().sum();
        let (ri, ci) = (r as i32, 0i32);
        root.draw_text(
            names[r],
            &style(16, &BLACK),
            (x0 - 62, y0 + ri * cell + cell / 2),
        )
        .map_err(plot_err)?;
        for (col, &count) in row.iter().enumerate() {
            let ci = ci + col as i32;
            if r == 0 {
                root.draw_text(
                    names[col],
                    &style(16, &BLACK),
                    (x0 + ci * cell + cell / 2, y0 - 22),
                )
                .map_err(plot_err)?;
            }
            // Shade by the fraction of the actual class (the row).
            let f = if row_total == 0 {
                0.0
            } else {
                count as f64 / row_total as f64
            };
            let mix = |c: f64| (255.0 - f * (255.0 - c)).round() as u8;
            let fill = RGBColor(mix(blue.0), mix(blue.1), mix(blue.2));
            let (cx, cy) = (x0 + ci * cell, y0 + ri * cell);
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + cell, cy + cell)],
                fill.filled(),
            ))
            .map_err(plot_err)?;
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + cell, cy + cell)],
                BLACK.stroke_width(1),
            ))
            .map_err(plot_err)?;
            let ink: &'static RGBColor = if f > 0.5 { &WHITE } else { &BLACK };
            let tag = match (r, col) {
                (0, 0) => "TN",
                (0, 1) => "FP",
                (1, 0) => "FN",
                _ => "TP",
            };
            root.draw_text(
                &count.to_string(),
                &style(34, ink),
                (cx + cell / 2, cy + cell / 2 - 14),
            )
            .map_err(plot_err)?;
            root.draw_text(
                &format!("{tag}  {:.1} %", 100.0 * f),
                &style(15, ink),
                (cx + cell / 2, cy + cell / 2 + 24),
            )
            .map_err(plot_err)?;
        }
    }
    let f = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    let footer = format!(
        "sensitivity {:.3}   specificity {:.3}   precision {:.3}   F1 {:.3}",
        f("recall"),
        f("specificity"),
        f("precision"),
        f("f1")
    );
    root.draw_text(
        &footer,
        &style(15, &BLACK),
        (w as i32 / 2, y0 + 2 * cell + 36),
    )
    .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_written_and_not_blank() {
        let report = serde_json::json!({
            "n": 6, "split": "test", "auc": 0.889, "auc_ci95": [0.5, 1.0],
            "roc": [[0.0, 0.0], [0.0, 0.667], [0.333, 0.667], [0.333, 1.0], [1.0, 1.0]],
            "confusion": {"tp": 2, "fp": 1, "tn": 2, "fn": 1},
            "threshold": 0.5, "recall": 0.667, "specificity": 0.667, "precision": 0.667,
            "f1": 0.667,
        });
        let dir = std::env::temp_dir().join(format!("nodulens-plots-{}", std::process::id()));
        let paths = write(&report, ModelKind::Malignancy, &dir).unwrap();
        for p in &paths {
            let img = image::open(p).unwrap().to_rgb8();
            let non_white = img.pixels().filter(|px| px.0 != [255, 255, 255]).count();
            assert!(
                non_white > 1000,
                "{}: {non_white} non-white pixels",
                p.display()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
