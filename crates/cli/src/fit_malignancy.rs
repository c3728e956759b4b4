//! `nodulens fit-malignancy`: fits the malignancy combination (the CNN's output with our own
//! measurement, `nodulens_detect::malignancy`) on out-of-fold predictions, writes it into
//! `models/manifest.json` and its section of the model card.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nodulens_detect::{MalignancyCombination, malignancy};
use nodulens_model::{Manifest, ModelKind};

use crate::calibration;
use crate::data::{self, BuildOptions, Split};
use crate::eval::{self, EvalArgs};

/// Where the card's section starts and ends (replaced on every fit).
const SECTION_START: &str = "<!-- p_malignant: written by `nodulens fit-malignancy` -->";
const SECTION_END: &str = "<!-- end of p_malignant -->";

pub fn run(data: &Path, folds: &Path, models: &Path, cache: PathBuf) -> anyhow::Result<()> {
    let args = EvalArgs {
        kind: ModelKind::Malignancy,
        data: data.to_path_buf(),
        models: models.to_path_buf(),
        split: None,
        seed: None,
        cache,
        negatives_per_scan: 0,
    };
    let manifest_path = models.join("manifest.json");
    let mut manifest = Manifest::from_json(
        &std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("reading {}", manifest_path.display()))?,
    )?;
    // The shipped model's split seed (its combination, possibly stale, is not read).
    let seed = manifest
        .model(ModelKind::Malignancy)
        .context("the manifest has no malignancy model")?
        .training["train"]["seed"]
        .as_u64()
        .unwrap_or(42);
    let oof = eval::out_of_fold(&args, folds)?;
    // The shipped model's own test patients stay out of the fit, so its test figures remain
    // held out.
    let split = data::build(&BuildOptions {
        kind: ModelKind::Malignancy,
        data,
        seed,
        cache: &args.cache,
        negatives_per_scan: 0,
        only: None,
        fold: None,
        verbose: false,
        indeterminate_target: None,
    })?;
    let split_of: HashMap<&str, Split> = split
        .samples
        .iter()
        .map(|s| (s.name.as_str(), s.split))
        .collect();
    let (rows, labels) = oof.rows(|i| split_of.get(oof.images[i].as_str()) != Some(&Split::Test));
    let mut combination = MalignancyCombination::fit(&rows, &labels, malignancy::DEFAULT_L2)
        .context("the combination could not be fitted (one label only?)")?;
    eprintln!(
        "fitted on {} out-of-fold nodules ({} malignant), the shipped model's test patients left out",
        rows.len(),
        labels.iter().filter(|&&l| l).count()
    );

    let out_of_fold = eval::report_out_of_fold(&oof, ModelKind::Malignancy, folds);
    // Written at once: the evaluations below read the shipped pair from the manifest.
    let write = |manifest: &mut Manifest,
                 combination: &MalignancyCombination,
                 metric: Option<(&str, &serde_json::Value)>|
     -> anyhow::Result<()> {
        let entry = manifest
            .models
            .iter_mut()
            .find(|m| m.kind == ModelKind::Malignancy)
            .context("the manifest has no malignancy model")?;
        entry.combination = Some(serde_json::to_value(combination)?);
        // The entry's metrics describe the CNN alone (export); what ships beside them.
        if let (Some((key, report)), Some(metrics)) = (metric, entry.metrics.as_object_mut()) {
            metrics.insert(key.into(), summary(report));
        }
        std::fs::write(
            &manifest_path,
            serde_json::to_string_pretty(manifest)? + "\n",
        )?;
        Ok(())
    };
    write(
        &mut manifest,
        &combination,
        Some(("p_malignant_out_of_fold", &out_of_fold)),
    )?;
    eprintln!("wrote the combination into {}", manifest_path.display());

    // Carried over to the shipped CNN by a temperature on its validation nodules (the fold
    // CNNs it was fitted on spread their logits otherwise).
    let val = eval::evaluate(&EvalArgs {
        split: Some(Split::Val),
        ..args.clone()
    })?;
    let (val_p, val_labels): (Vec<f32>, Vec<bool>) = val["predictions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["p_malignant"].as_f64().unwrap_or(0.5) as f32,
                v["label"].as_u64() == Some(1),
            )
        })
        .unzip();
    combination.temperature = calibration::fit_temperature(&val_p, &val_labels);
    let val_nodules = val_p.len();
    eprintln!(
        "temperature {:.3} on the shipped model's {val_nodules} validation nodules",
        combination.temperature
    );
    write(&mut manifest, &combination, None)?;

    let test = eval::evaluate(&EvalArgs {
        split: Some(Split::Test),
        ..args
    })?;
    write(
        &mut manifest,
        &combination,
        Some(("p_malignant_test", &test)),
    )?;
    let card_path = models.join("README.md");
    let card = std::fs::read_to_string(&card_path)
        .with_context(|| format!("reading {}", card_path.display()))?;
    let section = card_section(&combination, rows.len(), val_nodules, &out_of_fold, &test);
    std::fs::write(&card_path, with_section(&card, &section))?;
    eprintln!("wrote its section of {}", card_path.display());
    for line in eval::baseline_lines(&out_of_fold) {
        eprintln!("  out of fold: {line}");
    }
    eprintln!("  out of fold: {}", eval::summary_line(&out_of_fold));
    eprintln!("  test: {}", eval::summary_line(&test));
    Ok(())
}

/// A report without its per-case parts, for the manifest.
fn summary(report: &serde_json::Value) -> serde_json::Value {
    let mut summary = report.clone();
    if let Some(o) = summary.as_object_mut() {
        for key in ["predictions", "roc", "model"] {
            o.remove(key);
        }
    }
    summary
}

/// `card` with its combination section replaced, or inserted before the limits.
fn with_section(card: &str, section: &str) -> String {
    if let (Some(a), Some(b)) = (card.find(SECTION_START), card.find(SECTION_END))
        && a < b
    {
        // Through the end marker's own line break, which the new section brings again.
        let rest = &card[b + SECTION_END.len()..];
        return format!(
            "{}{section}{}",
            &card[..a],
            rest.strip_prefix('\n').unwrap_or(rest)
        );
    }
    match card.find("\n## Limits") {
        // `at` is the line break before the heading: one blank line on either side.
        Some(at) => format!("{}\n{section}{}", &card[..at], &card[at..]),
        None => format!("{}\n{section}\n", card.trim_end()),
    }
}

fn card_section(
    c: &MalignancyCombination,
    fitted_rows: usize,
    val_nodules: usize,
    oof: &serde_json::Value,
    test: &serde_json::Value,
) -> String {
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let mut s = String::new();
    let _ = writeln!(s, "{SECTION_START}");
    let _ = writeln!(s, "## p_malignant: the CNN combined with our measurement\n");
    let _ = writeln!(
        s,
        "`p_malignant` as the CLI, the page and reports give it is a logistic combination \
(`nodulens_detect::malignancy`, weights in `manifest.json`) of the malignancy CNN's logit with what \
our own segmentation of the finding measures: size (mean diameter, volume), density (mean HU, solid \
share, calcium share, HU spread), shape (compactness, the largest slice's solidity, short over long \
axis) and margin (contrast across the surface, dense strands within 3 mm of it). It is the chance \
that LIDC radiologists rate the nodule 4–5 rather than 1–2 (about 40 % of rated nodules are 4–5), \
not a cancer risk. Fitted by `nodulens fit-malignancy` (L2 {}) on the out-of-fold CNN outputs of \
{fitted_rows} rated nodules (5 folds by patient; the shipped model's test patients left out). Never \
an input: the readers' masks, `diameter_mm` or ratings.\n",
        c.l2
    );
    let _ = writeln!(s, "| input | weight (per standard deviation) |\n|---|---|");
    for (name, w) in c.inputs.iter().zip(&c.weights) {
        let _ = writeln!(s, "| {name} | {w:+.2} |");
    }
    let _ = writeln!(s, "| (bias) | {:+.2} |\n", c.bias);
    let _ = writeln!(
        s,
        "The shipped CNN is not the fold CNNs the weights were fitted on: the combination's logit \
is divided by a temperature of {:.3}, fitted on the shipped model's {val_nodules} validation nodules. \
The out-of-fold figures below are without it (each fold's own CNN); the test figures are with it.\n",
        c.temperature
    );
    for (label, r) in [
        (
            "Out of fold over all rated nodules (each fold's combination fitted on the other folds' nodules; `eval-malignancy --out-of-fold`)",
            oof,
        ),
        (
            "The shipped CNN and combination on the shipped model's test patients (`eval-malignancy --split test`)",
            test,
        ),
    ] {
        let ci = &r["auc_ci95"];
        let _ = writeln!(
            s,
            "{label}: n {} ({} patients), AUC {:.3} [{:.3}, {:.3}].\n",
            r["n"],
            r["patients"],
            f(&r["auc"]),
            f(&ci[0]),
            f(&ci[1]),
        );
        for line in eval::baseline_lines(r) {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "The issue's goal (AUC ≥ 0.93 and ≥ 0.03 above the readers' diameter on unseen patients, \
out-of-fold ECE ≤ 0.05) is judged on the out-of-fold figures above."
    );
    let _ = writeln!(s, "{SECTION_END}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_goes_before_the_limits_then_is_replaced() {
        let card = "# Card\n\n## Metrics\n\nx\n\n## Limits\n\n- y\n";
        let first = with_section(card, &format!("{SECTION_START}\none\n{SECTION_END}\n"));
        assert!(first.find("one").unwrap() < first.find("## Limits").unwrap());
        // One blank line on either side, as between the card's other sections.
        assert!(first.contains(&format!(
            "x\n\n{SECTION_START}\none\n{SECTION_END}\n\n## Limits"
        )));
        let second = with_section(&first, &format!("{SECTION_START}\ntwo\n{SECTION_END}\n"));
        assert!(!second.contains("one") && second.contains("two"));
        assert_eq!(second.matches(SECTION_START).count(), 1);
        assert!(second.ends_with("## Limits\n\n- y\n"));
        // Replacing again does not grow the card.
        let third = with_section(&second, &format!("{SECTION_START}\ntwo\n{SECTION_END}\n"));
        assert_eq!(third, second);
    }
}
