//! The shipped models through the CLI: `eval-malignancy` on the held-out test patients of the
//! shared crops (skipped where ../shared/data is absent), and a clean error on a bad folder.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn eval_malignancy_reports_the_issue_keys_on_test_patients() {
    let crops = repo().join("../shared/data/lidc-crops");
    if !crops.join("nodules.csv").is_file() {
        eprintln!("skipped: {} is absent", crops.display());
        return;
    }
    let out = std::env::temp_dir().join(format!("nodulens-eval-{}.json", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_nodulens"))
        .current_dir(repo())
        .args(["eval-malignancy", "--split", "test", "--data"])
        .arg(&crops)
        .arg("--json")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    for key in [
        "n",
        "auc",
        "auc_ci95",
        "accuracy",
        "precision",
        "recall",
        "specificity",
        "f1",
        "confusion",
        "threshold",
        "predictions",
    ] {
        assert!(!report[key].is_null(), "missing {key}");
    }
    let n = report["n"].as_u64().unwrap();
    let c = &report["confusion"];
    let total: u64 = ["tp", "fp", "tn", "fn"]
        .iter()
        .map(|k| c[k].as_u64().unwrap())
        .sum();
    assert_eq!(total, n);
    assert_eq!(report["predictions"].as_array().unwrap().len() as u64, n);
    // No rating-3 nodule is scored, and the model is far better than chance on unseen patients.
    let auc = report["auc"].as_f64().unwrap();
    let ci = report["auc_ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= auc && auc <= ci[1].as_f64().unwrap());
    assert!(auc > 0.85, "test AUC {auc}");
}

#[test]
fn eval_on_a_folder_without_nodules_csv_fails_cleanly() {
    let output = Command::new(env!("CARGO_BIN_EXE_nodulens"))
        .current_dir(repo())
        .args(["eval-malignancy", "--data", "/nonexistent-nodulens-data"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("nodulens: "), "{stderr}");
    assert!(stderr.contains("nodules.csv"), "{stderr}");
}
