//! `tl-demo-engine`: the demo's training engine.
//!
//! `tl-demo-engine --data A.csv --data B.csv --out DIR [--epochs N] [--marker FILE]` first writes
//! `DIR/engine-started`, then reads the CSVs (header line; numeric feature columns and a 0/1
//! column named `label`; every dataset has the same columns), holds out the last 20% of each
//! dataset, standardizes the features with the training rows' mean and deviation, trains a
//! logistic regression by full-batch gradient descent (deterministic: no randomness, fixed
//! order), writes `DIR/model.json` and prints a short summary.
//!
//! `tl-demo-engine --generate-sample lab|clinic` prints the sample dataset shipped in
//! `demo-engine/data/` (fixed-seed generator, so the files can be reproduced byte for byte).

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

const USAGE: &str =
    "usage: tl-demo-engine --data A.csv [--data B.csv ...] --out DIR [--epochs N] [--marker FILE]
       tl-demo-engine --generate-sample lab|clinic";
const LEARNING_RATE: f64 = 0.5;
const MAX_EPOCHS: usize = 100_000;

struct Dataset {
    features: Vec<String>,
    rows: Vec<(Vec<f64>, f64)>,
}

fn parse_csv(name: &str, text: &str) -> Result<Dataset, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or(format!("{name}: empty"))?
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    let label_idx = header
        .iter()
        .position(|h| h == "label")
        .ok_or(format!("{name}: no `label` column"))?;
    let features: Vec<String> = header
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != label_idx)
        .map(|(_, h)| h.clone())
        .collect();
    if features.is_empty() {
        return Err(format!("{name}: no feature columns"));
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != header.len() {
            return Err(format!(
                "{name}: row {}: {} cells, expected {}",
                n + 2,
                cells.len(),
                header.len()
            ));
        }
        let mut x = Vec::with_capacity(features.len());
        let mut y = 0.0;
        for (i, c) in cells.iter().enumerate() {
            let v: f64 = c
                .parse()
                .map_err(|_| format!("{name}: row {}: not a number: {c:?}", n + 2))?;
            if !v.is_finite() {
                return Err(format!("{name}: row {}: not finite", n + 2));
            }
            if i == label_idx {
                if v != 0.0 && v != 1.0 {
                    return Err(format!("{name}: row {}: label must be 0 or 1", n + 2));
                }
                y = v;
            } else {
                x.push(v);
            }
        }
        rows.push((x, y));
    }
    if rows.len() < 5 {
        return Err(format!("{name}: at least 5 rows needed"));
    }
    Ok(Dataset { features, rows })
}

#[derive(Serialize)]
struct Model {
    features: Vec<String>,
    weights: Vec<f64>,
    bias: f64,
    feature_mean: Vec<f64>,
    feature_std: Vec<f64>,
    epochs: usize,
    learning_rate: f64,
    train_rows_per_dataset: Vec<usize>,
    holdout_rows_per_dataset: Vec<usize>,
    accuracy_holdout: f64,
    loss_curve: Vec<f64>,
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn train(datasets: &[Dataset], epochs: usize) -> Result<Model, String> {
    let features = datasets.first().ok_or("no dataset")?.features.clone();
    if datasets.iter().any(|d| d.features != features) {
        return Err("datasets have different columns".into());
    }
    let mut train_rows = Vec::new();
    let mut hold_rows = Vec::new();
    let (mut n_train, mut n_hold) = (Vec::new(), Vec::new());
    for d in datasets {
        let cut = d.rows.len() - d.rows.len() / 5;
        train_rows.extend_from_slice(&d.rows[..cut]);
        hold_rows.extend_from_slice(&d.rows[cut..]);
        n_train.push(cut);
        n_hold.push(d.rows.len() - cut);
    }
    let k = features.len();
    let n = train_rows.len() as f64;
    let mut mean = vec![0.0; k];
    for (x, _) in &train_rows {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += v / n;
        }
    }
    let mut std = vec![0.0; k];
    for (x, _) in &train_rows {
        for ((s, v), m) in std.iter_mut().zip(x).zip(&mean) {
            *s += (v - m) * (v - m) / n;
        }
    }
    for s in &mut std {
        *s = if *s > 0.0 { s.sqrt() } else { 1.0 };
    }
    let z = |x: &[f64]| -> Vec<f64> {
        x.iter()
            .zip(&mean)
            .zip(&std)
            .map(|((v, m), s)| (v - m) / s)
            .collect()
    };
    let train_z: Vec<(Vec<f64>, f64)> = train_rows.iter().map(|(x, y)| (z(x), *y)).collect();
    let (mut w, mut b) = (vec![0.0; k], 0.0);
    let mut loss_curve = Vec::new();
    for epoch in 0..epochs {
        let (mut gw, mut gb, mut loss) = (vec![0.0; k], 0.0, 0.0);
        for (x, y) in &train_z {
            let p = sigmoid(w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + b);
            let e = p - y;
            for (g, v) in gw.iter_mut().zip(x) {
                *g += e * v / n;
            }
            gb += e / n;
            let pc = p.clamp(1e-12, 1.0 - 1e-12);
            loss -= (y * pc.ln() + (1.0 - y) * (1.0 - pc).ln()) / n;
        }
        if epoch % 10 == 0 {
            loss_curve.push((loss * 1e6).round() / 1e6);
        }
        for (wi, g) in w.iter_mut().zip(&gw) {
            *wi -= LEARNING_RATE * g;
        }
        b -= LEARNING_RATE * gb;
    }
    let correct = hold_rows
        .iter()
        .filter(|(x, y)| {
            let p = sigmoid(w.iter().zip(z(x)).map(|(a, b)| a * b).sum::<f64>() + b);
            (p >= 0.5) == (*y == 1.0)
        })
        .count();
    Ok(Model {
        features,
        weights: w,
        bias: b,
        feature_mean: mean,
        feature_std: std,
        epochs,
        learning_rate: LEARNING_RATE,
        train_rows_per_dataset: n_train,
        holdout_rows_per_dataset: n_hold,
        accuracy_holdout: correct as f64 / hold_rows.len().max(1) as f64,
        loss_curve,
    })
}

/// Fixed-seed generator of the sample datasets (64-bit LCG, Knuth's MMIX constants).
struct Lcg(u64);
impl Lcg {
    fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    /// Standard normal by Box-Muller.
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The sample dataset: 400 rows, 4 markers, label from a shared linear rule plus noise.
/// The two owners' populations differ in location and spread; the rule is the same.
fn generate_sample(which: &str) -> Option<String> {
    let (seed, shift, spread) = match which {
        "lab" => (0x6c6162_u64, 0.0, 1.0),
        "clinic" => (0x636c696e6963_u64, 0.7, 1.3),
        _ => return None,
    };
    let mut rng = Lcg(seed);
    let mut out = String::from("marker_a,marker_b,marker_c,marker_d,label\n");
    for _ in 0..400 {
        let a = 50.0 + 10.0 * spread * rng.normal() + 5.0 * shift;
        let b = 3.0 + spread * rng.normal() - shift;
        let c = 120.0 + 15.0 * spread * rng.normal();
        let d = rng.uniform() * 10.0;
        let score = 0.15 * (a - 50.0) - 1.2 * (b - 3.0)
            + 0.05 * (c - 120.0)
            + 0.1 * (d - 5.0)
            + 0.8 * rng.normal();
        let label = u8::from(score > 0.0);
        out.push_str(&format!("{a:.3},{b:.3},{c:.3},{d:.3},{label}\n"));
    }
    Some(out)
}

fn run(args: &[String]) -> Result<(), String> {
    let mut data = Vec::new();
    let mut out = None;
    let mut marker: Option<PathBuf> = None;
    let mut epochs = 300usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or(format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--data" => data.push(PathBuf::from(val()?)),
            "--out" => out = Some(PathBuf::from(val()?)),
            "--marker" => marker = Some(PathBuf::from(val()?)),
            "--epochs" => {
                epochs = val()?
                    .parse()
                    .map_err(|_| "--epochs: not a number".to_owned())?;
                if epochs == 0 || epochs > MAX_EPOCHS {
                    return Err(format!("--epochs must be in 1..={MAX_EPOCHS}"));
                }
            }
            "--generate-sample" => {
                let which = val()?;
                let csv = generate_sample(&which).ok_or(format!("unknown sample {which:?}"))?;
                print!("{csv}");
                return Ok(());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let out = out.ok_or(format!("--out is required\n{USAGE}"))?;
    if data.is_empty() {
        return Err(format!("at least one --data is required\n{USAGE}"));
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out.join("engine-started"), b"started\n").map_err(|e| format!("marker: {e}"))?;
    if let Some(m) = &marker {
        std::fs::write(m, b"started\n").map_err(|e| format!("marker {}: {e}", m.display()))?;
    }
    let mut datasets = Vec::new();
    for p in &data {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        datasets.push(parse_csv(&p.display().to_string(), &text)?);
    }
    let model = train(&datasets, epochs)?;
    let json = serde_json::to_string_pretty(&model).map_err(|e| e.to_string())?;
    std::fs::write(out.join("model.json"), json + "\n").map_err(|e| format!("model: {e}"))?;
    println!(
        "trained logistic regression on {} rows from {} datasets ({} epochs): holdout accuracy {:.3}, final loss {:.4}",
        model.train_rows_per_dataset.iter().sum::<usize>(),
        datasets.len(),
        epochs,
        model.accuracy_holdout,
        model.loss_curve.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tl-demo-engine: {e}");
            ExitCode::from(2)
        }
    }
}
