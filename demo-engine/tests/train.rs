//! The demo engine as a process, on the shipped sample data.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const ENGINE: &str = env!("CARGO_BIN_EXE_tl-demo-engine");

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn train(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(ENGINE)
        .arg("--data")
        .arg(data("lab.csv"))
        .arg("--data")
        .arg(data("clinic.csv"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .env_clear()
        .output()
        .unwrap()
}

#[test]
fn samples_are_reproducible() {
    for which in ["lab", "clinic"] {
        let o = Command::new(ENGINE)
            .args(["--generate-sample", which])
            .output()
            .unwrap();
        assert!(o.status.success());
        let shipped = std::fs::read(data(&format!("{which}.csv"))).unwrap();
        assert_eq!(o.stdout, shipped, "{which}.csv differs from its generator");
        assert_eq!(String::from_utf8(shipped).unwrap().lines().count(), 401);
    }
}

#[test]
fn trains_a_useful_deterministic_model() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = train(&out, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("engine-started").exists());
    let text = std::fs::read_to_string(out.join("model.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["features"].as_array().unwrap().len(), 4);
    assert_eq!(m["weights"].as_array().unwrap().len(), 4);
    assert_eq!(m["epochs"], 300);
    assert_eq!(m["train_rows_per_dataset"], serde_json::json!([320, 320]));
    assert_eq!(m["loss_curve"].as_array().unwrap().len(), 30);
    let acc = m["accuracy_holdout"].as_f64().unwrap();
    assert!(acc > 0.8, "holdout accuracy {acc}");
    let curve: Vec<f64> = m["loss_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(
        curve.last().unwrap() < &(curve[0] * 0.6),
        "loss did not fall: {curve:?}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("holdout accuracy"));
    // Deterministic: a second run writes the same model.
    let out2 = dir.path().join("out2");
    assert!(train(&out2, &[]).status.success());
    assert_eq!(
        text,
        std::fs::read_to_string(out2.join("model.json")).unwrap()
    );
}

#[test]
fn bad_input_fails_after_the_marker() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "a,b,label\n1,2,0\n1,x,1\n").unwrap();
    let out = dir.path().join("out");
    let o = Command::new(ENGINE)
        .arg("--data")
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a number"));
    assert!(out.join("engine-started").exists());
    assert!(!out.join("model.json").exists());
    // Label outside {0,1}, different columns, and bad epochs are refused.
    std::fs::write(&bad, "a,label\n1,2\n1,0\n1,0\n1,0\n1,0\n").unwrap();
    let o = Command::new(ENGINE)
        .arg("--data")
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("label must be 0 or 1"));
    let o = train(&out, &["--epochs", "0"]);
    assert_eq!(o.status.code(), Some(2));
}
