#![allow(clippy::unwrap_used)]
//! `tl keygen` and `tl policy` end to end, through the binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const X25519: &str = "x25519:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn tl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tl")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = tl(dir, args);
    assert!(
        o.status.success(),
        "tl {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn fails(dir: &Path, args: &[&str], code: &str) {
    let o = tl(dir, args);
    assert!(!o.status.success(), "tl {args:?} succeeded");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(code), "expected {code} in {err}");
}

fn setup(dir: &Path) {
    ok(dir, &["keygen", "--type", "ed25519", "--out", "owner"]);
    let j = ok(
        dir,
        &["keygen", "--type", "ecdsa-p256", "--out", "lab", "--json"],
    );
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert!(j["public_key"].as_str().unwrap().starts_with("ecdsa-p256:"));
    ok(dir, &["policy", "init", "--out", "order.toml"]);
    let t = std::fs::read_to_string(dir.join("order.toml")).unwrap();
    let pubkey = |n: &str| {
        std::fs::read_to_string(dir.join(n))
            .unwrap()
            .trim()
            .to_string()
    };
    let t = t
        .replace("<paste engine-owner.pub>", &pubkey("owner.pub"))
        .replace("<paste lab.pub>", &pubkey("lab.pub"))
        .replace("<paste engine-owner-x25519.pub>", X25519);
    std::fs::write(dir.join("order.toml"), t).unwrap();
}

#[test]
fn keygen_writes_private_key_0600_and_refuses_overwrite() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["keygen", "--type", "ed25519", "--out", "k"]);
    let mode = std::fs::metadata(d.path().join("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pem = std::fs::read_to_string(d.path().join("k.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let before = std::fs::read(d.path().join("k.key")).unwrap();
    fails(
        d.path(),
        &["keygen", "--type", "ed25519", "--out", "k"],
        "already exists",
    );
    assert_eq!(std::fs::read(d.path().join("k.key")).unwrap(), before);
    ok(
        d.path(),
        &["keygen", "--type", "ed25519", "--out", "k", "--force"],
    );
    assert_ne!(std::fs::read(d.path().join("k.key")).unwrap(), before);
    // Encryption keys: X25519, private key 0600, public key in text form.
    let j = ok(
        d.path(),
        &["keygen", "--type", "x25519", "--out", "x", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["type"], "x25519");
    let public = std::fs::read_to_string(d.path().join("x.pub")).unwrap();
    assert!(public.starts_with("x25519:"), "{public}");
    assert_eq!(v["public_key"].as_str().unwrap(), public.trim());
    let mode = std::fs::metadata(d.path().join("x.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    fails(
        d.path(),
        &["keygen", "--type", "x25519", "--out", "x"],
        "OUTPUT_EXISTS",
    );
}

#[test]
fn init_sign_verify_show() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    setup(p);
    ok(p, &["policy", "show", "order.toml"]);
    let s = ok(
        p,
        &[
            "policy",
            "sign",
            "order.toml",
            "--key",
            "owner.key",
            "--out",
            "env.json",
        ],
    );
    assert!(s.contains("still to sign: lab"), "{s}");
    fails(p, &["policy", "verify", "env.json"], "ORDER_MISSING_SIGNER");
    ok(p, &["policy", "sign", "env.json", "--key", "lab.key"]);
    let v = ok(p, &["policy", "verify", "env.json", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["family"], "demo/lab-training");
    assert_eq!(v["signers"].as_array().unwrap().len(), 2);
    let show = ok(p, &["policy", "show", "env.json", "--json"]);
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["digest"], v["digest"]);
    assert_eq!(show["signatures"], 2);
    assert_eq!(show["order"]["components"][0]["name"], "engine");

    // expiry and rollback
    fails(
        p,
        &["policy", "verify", "env.json", "--at", "99999999999"],
        "ORDER_EXPIRED",
    );
    fails(
        p,
        &["policy", "verify", "env.json", "--version-floor", "2"],
        "ORDER_ROLLBACK",
    );
    ok(p, &["policy", "verify", "env.json", "--version-floor", "1"]);

    // a stranger's key cannot sign
    ok(p, &["keygen", "--type", "ed25519", "--out", "stranger"]);
    fails(
        p,
        &["policy", "sign", "env.json", "--key", "stranger.key"],
        "ORDER_UNKNOWN_SIGNER",
    );

    // tampering with the payload
    let env = std::fs::read_to_string(p.join("env.json")).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&env).unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = String::from_utf8(b64.decode(j["payload"].as_str().unwrap()).unwrap()).unwrap();
    let tampered = payload.replace("memory_mb = 512", "memory_mb = 513");
    assert_ne!(tampered, payload);
    j["payload"] = b64.encode(tampered).into();
    std::fs::write(p.join("bad.json"), serde_json::to_vec(&j).unwrap()).unwrap();
    fails(p, &["policy", "verify", "bad.json"], "ORDER_BAD_SIGNATURE");

    // tampering with a signature
    let mut j: serde_json::Value = serde_json::from_str(&env).unwrap();
    let mut sig = b64
        .decode(j["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    sig[5] ^= 1;
    j["signatures"][0]["sig"] = b64.encode(sig).into();
    std::fs::write(p.join("bad2.json"), serde_json::to_vec(&j).unwrap()).unwrap();
    fails(p, &["policy", "verify", "bad2.json"], "ORDER_BAD_SIGNATURE");

    // garbage
    std::fs::write(p.join("junk.json"), "{not json").unwrap();
    fails(p, &["policy", "verify", "junk.json"], "ORDER_BAD_ENVELOPE");
    fails(p, &["policy", "verify", "missing.json"], "missing.json");
}

#[test]
fn init_template_needs_keys() {
    let d = tempfile::tempdir().unwrap();
    ok(d.path(), &["policy", "init", "--out", "o.toml"]);
    fails(d.path(), &["policy", "show", "o.toml"], "ORDER_TOML");
    let stdout = ok(d.path(), &["policy", "init"]);
    assert!(stdout.contains("[order]"));
}

#[test]
fn help_teaches() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["keygen", "--help"][..],
        &["policy", "sign", "--help"],
        &["policy", "verify", "--help"],
        &["policy", "init", "--help"],
        &["policy", "show", "--help"],
    ] {
        let h = ok(d.path(), args);
        assert!(h.contains("Examples:"), "{args:?}: {h}");
    }
}
