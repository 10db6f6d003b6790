//! `tl seal | grant | open` end to end through the binary.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

fn tl(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tl"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn fails_with(o: &Output, code: &str) {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(code), "expected {code}, got: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
}

/// Only the expected files exist: no output, no temporary leftovers.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn setup() -> (tempfile::TempDir, Vec<u8>, serde_json::Value) {
    let d = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + (i >> 9)) as u8).collect();
    std::fs::write(d.path().join("data.bin"), &data).unwrap();
    let out = ok(&tl(
        &[
            "seal",
            "data.bin",
            "--out",
            "data.sealed",
            "--segment-size",
            "4K",
            "--json",
        ],
        d.path(),
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    (d, data, v)
}

#[test]
fn seal_open_round_trip() {
    let (d, data, v) = setup();
    assert_eq!(v["size"], 300_000);
    assert_eq!(v["sha256"], hex::encode(tl_seal::sha256(&data)));
    assert_eq!(v["tree_sha256"], hex::encode(tl_seal::tree_sha256(&data)));
    assert_eq!(v["key_handle"], "data.sealed.ck");
    assert!(v["order_snippet"]
        .as_str()
        .unwrap()
        .starts_with("[[components]]"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("data.sealed.ck"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let sha = v["sha256"].as_str().unwrap();
    ok(&tl(
        &[
            "open",
            "data.sealed",
            "--out",
            "plain",
            "--key",
            "data.sealed.ck",
            "--expect-sha256",
            sha,
        ],
        d.path(),
    ));
    assert_eq!(std::fs::read(d.path().join("plain")).unwrap(), data);
    // Refuses to overwrite without --force.
    fails_with(
        &tl(
            &[
                "open",
                "data.sealed",
                "--out",
                "plain",
                "--key",
                "data.sealed.ck",
            ],
            d.path(),
        ),
        "OUTPUT_EXISTS",
    );
}

#[test]
fn wrong_key_leaves_no_output() {
    let (d, _, _) = setup();
    std::fs::write(
        d.path().join("other.ck"),
        tl_seal::ContentKey::from_bytes([1; 32]).to_text().as_str(),
    )
    .unwrap();
    let before = files(d.path());
    fails_with(
        &tl(
            &["open", "data.sealed", "--out", "plain", "--key", "other.ck"],
            d.path(),
        ),
        "SEALED_AUTH_FAILED",
    );
    assert_eq!(files(d.path()), before);
}

#[test]
fn truncated_or_extended_file_leaves_no_output() {
    let (d, _, _) = setup();
    let sealed = std::fs::read(d.path().join("data.sealed")).unwrap();
    // Cut exactly at a segment boundary: every remaining segment authenticates.
    let cut = 56 + 10 * (4096 + 16);
    std::fs::write(d.path().join("cut.sealed"), &sealed[..cut]).unwrap();
    let mut ext = sealed.clone();
    ext.extend_from_slice(b"more");
    std::fs::write(d.path().join("ext.sealed"), &ext).unwrap();
    let before = files(d.path());
    fails_with(
        &tl(
            &[
                "open",
                "cut.sealed",
                "--out",
                "plain",
                "--key",
                "data.sealed.ck",
            ],
            d.path(),
        ),
        "SEALED_TRUNCATED",
    );
    assert_eq!(files(d.path()), before);
    fails_with(
        &tl(
            &[
                "open",
                "ext.sealed",
                "--out",
                "plain",
                "--key",
                "data.sealed.ck",
            ],
            d.path(),
        ),
        "SEALED_TRAILING_DATA",
    );
    assert_eq!(files(d.path()), before);
}

#[test]
fn expect_sha256_mismatch_leaves_no_output() {
    let (d, _, _) = setup();
    let before = files(d.path());
    let wrong = "00".repeat(32);
    fails_with(
        &tl(
            &[
                "open",
                "data.sealed",
                "--out",
                "plain",
                "--key",
                "data.sealed.ck",
                "--expect-sha256",
                &wrong,
            ],
            d.path(),
        ),
        "OPEN_DIGEST_MISMATCH",
    );
    assert_eq!(files(d.path()), before);
}

#[test]
fn grant_then_open_with_recipient_key() {
    let (d, data, v) = setup();
    let sk = tl_seal::RecipientSecretKey::from_seed(&[5; 32]);
    std::fs::write(d.path().join("cvm.key"), sk.to_pem().as_str()).unwrap();
    std::fs::write(d.path().join("cvm.pub"), sk.public_key().to_text()).unwrap();
    let sha = v["sha256"].as_str().unwrap().to_owned();
    let order = "ab".repeat(32);
    let g = ok(&tl(
        &[
            "grant",
            "--key",
            "data.sealed.ck",
            "--to",
            "cvm.pub",
            "--order-digest",
            &order,
            "--component",
            "data",
            "--component-sha256",
            &sha,
            "--out",
            "data.grant",
            "--json",
        ],
        d.path(),
    ));
    let gv: serde_json::Value = serde_json::from_str(&g).unwrap();
    assert_eq!(gv["recipient"], sk.public_key().to_text());
    // The recipient may also be given inline.
    let inline = sk.public_key().to_text();
    ok(&tl(
        &[
            "grant",
            "--key",
            "data.sealed.ck",
            "--to",
            &inline,
            "--order-digest",
            &order,
            "--component",
            "data",
            "--component-sha256",
            &sha,
            "--out",
            "data2.grant",
        ],
        d.path(),
    ));
    let open = |component: &str, order: &str, out: &str| {
        tl(
            &[
                "open",
                "data.sealed",
                "--out",
                out,
                "--grant",
                "data.grant",
                "--recipient-key",
                "cvm.key",
                "--order-digest",
                order,
                "--component",
                component,
                "--component-sha256",
                &sha,
            ],
            d.path(),
        )
    };
    ok(&open("data", &order, "plain"));
    assert_eq!(std::fs::read(d.path().join("plain")).unwrap(), data);
    let before = files(d.path());
    fails_with(&open("other", &order, "x"), "GRANT_WRONG_COMPONENT");
    fails_with(&open("data", &"cd".repeat(32), "x"), "GRANT_WRONG_ORDER");
    let other = tl_seal::RecipientSecretKey::from_seed(&[6; 32]);
    std::fs::write(d.path().join("other.key"), other.to_pem().as_str()).unwrap();
    let o = tl(
        &[
            "open",
            "data.sealed",
            "--out",
            "x",
            "--grant",
            "data.grant",
            "--recipient-key",
            "other.key",
            "--order-digest",
            &order,
            "--component",
            "data",
            "--component-sha256",
            &sha,
        ],
        d.path(),
    );
    fails_with(&o, "GRANT_WRONG_RECIPIENT");
    std::fs::remove_file(d.path().join("other.key")).unwrap();
    assert_eq!(files(d.path()), before);
    // --grant without its companions is a usage error.
    let o = tl(
        &["open", "data.sealed", "--out", "x", "--grant", "data.grant"],
        d.path(),
    );
    assert!(!o.status.success());
}
