//! Locating the workspace binaries and running them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/<profile>/`, where cargo puts the workspace binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf();
    for b in ["tl", "trusted-loader", "tl-ca", "tl-demo-engine"] {
        assert!(
            dir.join(b).is_file(),
            "{} is missing: build the workspace binaries first (cargo build --workspace --bins; ./scripts/test does)",
            dir.join(b).display()
        );
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Run `tl demo` with `args` in `dir` (kept), returning the JSON outcome and the stderr text.
pub fn demo(dir: &Path, args: &[&str]) -> (serde_json::Value, String, Output) {
    let out = Command::new(bin("tl"))
        .arg("demo")
        .arg("--json")
        .arg("--keep")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .expect("running tl demo");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("tl demo printed no JSON ({e}); stderr:\n{stderr}"));
    (json, stderr, out)
}

/// Every regular file below `dir`.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// True when `needle` occurs in any file below `dir`.
pub fn any_file_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    files_below(dir).into_iter().find(|p| {
        std::fs::read(p)
            .map(|b| b.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}
