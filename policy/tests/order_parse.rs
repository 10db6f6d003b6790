#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use proptest::prelude::*;
use tl_policy::order::RelPath;
use tl_policy::{ObservedComponent, Order, ReasonCode, Role};

fn code_after(replace: &[(&str, &str)]) -> &'static str {
    let k = keys();
    let mut t = order_toml(&k);
    for (from, to) in replace {
        assert!(t.contains(from), "fixture lacks {from:?}");
        t = t.replacen(from, to, 1);
    }
    Order::from_toml(&t).unwrap_err().code()
}

#[test]
fn full_order_parses_with_accessors() {
    let k = keys();
    let o = Order::from_toml(&order_toml(&k)).unwrap();
    assert_eq!(o.family(), "demo/lab-clinic-training");
    assert_eq!(o.version(), 3);
    assert_eq!(o.expires_unix(), EXPIRES);
    assert_eq!(o.engine().name.as_str(), "engine");
    assert_eq!(o.engine().role, Role::Engine);
    assert_eq!(o.engine().mount(), "bin/engine");
    assert_eq!(o.component("lab.csv").unwrap().mount(), "lab.csv");
    assert!(o.component("nope").is_none());
    assert_eq!(o.components().len(), 3);
    assert_eq!(o.outputs()[0].recipients[0].as_str(), "engine-owner");
    assert_eq!(
        o.party("lab").unwrap().signing_key.as_ref(),
        Some(k.lab.public_key())
    );
    assert_eq!(o.signer_keys().len(), 3);
    assert_eq!(
        o.launch().argv_expanded("/c", "/o"),
        vec![
            "/c/bin/engine",
            "--lab",
            "/c/lab.csv",
            "--out",
            "/o/model.json"
        ]
    );
    assert_eq!(o.launch().workdir_expanded("/c", "/o"), "/o");
    let tpm = o.platform().tdx.as_ref().unwrap();
    assert_eq!(tpm.td_attributes.unwrap().0, 0x1000_0000);
    // The model serializes (for `tl policy show --json`).
    let j = serde_json::to_value(&o).unwrap();
    assert_eq!(j["components"][0]["sha256"], h(0x11, 32));
}

#[test]
fn structural_rules_each_have_a_code() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("version = 3", "version = \"3\"")], "ORDER_TOML"),
        (&[("vmpl = 0", "vmpl = 0\nextra = 1")], "ORDER_TOML"),
        (&[("[order]", "[order]\nbogus = true")], "ORDER_TOML"),
        (
            &[("family = \"demo/", "family = \"Demo/")],
            "ORDER_BAD_NAME",
        ),
        (&[("name = \"lab.csv\"", "name = \"Lab\"")], "ORDER_TOML"),
        (&[("[parties.lab]", "[parties.Lab]")], "ORDER_BAD_NAME"),
        (
            &[("name = \"lab.csv\"", "name = \"engine\"")],
            "ORDER_DUPLICATE",
        ),
        (
            &[(
                "signers = [\"engine-owner\", \"lab\", \"clinic\"]",
                "signers = [\"engine-owner\", \"lab\", \"clinic\", \"lab\"]",
            )],
            "ORDER_DUPLICATE",
        ),
        (
            &[("owner = \"lab\"", "owner = \"nobody\"")],
            "ORDER_UNKNOWN_PARTY",
        ),
        (
            &[("recipients = [\"engine-owner\"]", "recipients = [\"x\"]")],
            "ORDER_UNKNOWN_PARTY",
        ),
        (
            &[("role = \"dataset\"", "role = \"engine\"")],
            "ORDER_ENGINE_COUNT",
        ),
        (
            &[("role = \"engine\"", "role = \"model\"")],
            "ORDER_ENGINE_COUNT",
        ),
        // the engine owner must sign
        (
            &[(
                "[\"engine-owner\", \"lab\", \"clinic\"]",
                "[\"lab\", \"clinic\"]",
            )],
            "ORDER_SIGNERS",
        ),
        // every component owner must sign
        (
            &[(
                "[\"engine-owner\", \"lab\", \"clinic\"]",
                "[\"engine-owner\", \"lab\"]",
            )],
            "ORDER_SIGNERS",
        ),
        (
            &[("mount = \"bin/engine\"", "mount = \"../engine\"")],
            "ORDER_TOML",
        ),
        (
            &[("mount = \"bin/engine\"", "mount = \"lab.csv\"")],
            "ORDER_BAD_PATH",
        ),
        (
            &[("mount = \"bin/engine\"", "mount = \"lab.csv/x\"")],
            "ORDER_BAD_PATH",
        ),
        (
            &[("path = \"model.json\"", "path = \"/etc/passwd\"")],
            "ORDER_TOML",
        ),
        (
            &[(
                "td_attributes = \"0000000010000000\"",
                "td_attributes = \"10000000\"",
            )],
            "ORDER_TOML",
        ),
        (
            &[("min_reported_tcb = 100", "min_reported_tcb = -1")],
            "ORDER_TOML",
        ),
        (&[("2030-01-01T00:00:00Z", "2030-01-01")], "ORDER_BAD_TIME"),
        (
            &[("2030-01-01T00:00:00Z", "1960-01-01T00:00:00Z")],
            "ORDER_BAD_TIME",
        ),
        (
            &[("size = 3000\ntree_sha256", "size = 3000\nx_tree_sha256")],
            "ORDER_TOML",
        ),
        (
            &[(
                "argv = [\"{components}/bin/engine\"",
                "argv = [\"{home}/bin/engine\"",
            )],
            "ORDER_INVALID",
        ),
        (&[("memory_mb = 512", "memory_mb = 0")], "ORDER_INVALID"),
        (&[("RUST_LOG =", "\"1BAD\" =")], "ORDER_INVALID"),
        (
            &[(
                "recipients = [\"engine-owner\"]",
                "recipients = [\"clinic\"]",
            )],
            "ORDER_RECIPIENTS",
        ),
        (
            &[("recipients = [\"engine-owner\"]", "recipients = []")],
            "ORDER_RECIPIENTS",
        ),
        (
            &[(
                "encryption_key = \"x25519:AAEC",
                "encryption_key = \"x448:AAEC",
            )],
            "ORDER_TOML",
        ),
        (
            &[("signing_key = \"ed25519:", "signing_key = \"ed25519:A")],
            "ORDER_TOML",
        ),
        (
            &[("tee = [\"tdx\", \"sev-snp\"]", "tee = [\"sgx\"]")],
            "ORDER_TOML",
        ),
        (
            &[(
                "accept_tcb = [\"UpToDate\", \"SWHardeningNeeded\"]",
                "accept_tcb = []",
            )],
            "ORDER_INVALID",
        ),
        (
            &[(
                "accept_tcb = [\"UpToDate\", \"SWHardeningNeeded\"]",
                "accept_tcb = [\"UpToDate\", \"Revoked\"]",
            )],
            "ORDER_INVALID",
        ),
    ];
    for (repl, want) in cases {
        assert_eq!(code_after(repl), *want, "{repl:?}");
    }
}

#[test]
fn no_digest_is_rejected() {
    let k = keys();
    let t = order_toml(&k).replacen(&format!("tree_sha256 = \"{}\"", h(0x55, 32)), "", 1);
    assert_eq!(Order::from_toml(&t).unwrap_err().code(), "ORDER_NO_DIGEST");
}

#[test]
fn hex_lengths_are_exact() {
    let k = keys();
    let t = order_toml(&k).replacen(&h(0x11, 32), &h(0x11, 31), 1);
    assert_eq!(Order::from_toml(&t).unwrap_err().code(), "ORDER_TOML");
    let t = order_toml(&k).replacen(&h(0x11, 32), &format!("{}zz", h(0x11, 31)), 1);
    assert_eq!(Order::from_toml(&t).unwrap_err().code(), "ORDER_TOML");
}

#[test]
fn shared_signing_key_rejected() {
    let k = keys();
    let t = order_toml(&k).replacen(
        &k.clinic.public_key().to_string(),
        &k.owner.public_key().to_string(),
        1,
    );
    assert_eq!(Order::from_toml(&t).unwrap_err().code(), "ORDER_DUPLICATE");
}

#[test]
fn platform_must_allow_something() {
    let k = keys();
    let t = order_toml(&k)
        .replacen("tee = [\"tdx\", \"sev-snp\"]\n", "", 1)
        .replacen("[platform.tdx]", "[x.tdx]", 1);
    // with [x.tdx] unknown at the top level, the TOML is rejected outright
    assert_eq!(Order::from_toml(&t).unwrap_err().code(), "ORDER_TOML");
}

#[test]
fn rel_paths() {
    for ok in ["a", "a/b", "a.b-c_d", "A/9"] {
        RelPath::new(ok).unwrap();
    }
    for bad in [
        "", "/a", "a/", "a//b", "..", "a/../b", ".", "a/./b", "a b", "a\\b", "é",
    ] {
        assert_eq!(
            RelPath::new(bad).unwrap_err().code(),
            "ORDER_BAD_PATH",
            "{bad:?}"
        );
    }
}

#[test]
fn check_component_lists_every_mismatch() {
    let o = Order::from_toml(&order_toml(&keys())).unwrap();
    let good = ObservedComponent {
        name: "lab.csv".into(),
        size: 2000,
        sha256: [0x22; 32],
        sha384: Some([0x33; 48]),
        tree_sha256: Some([0x44; 32]),
    };
    o.check_component(&good).unwrap();
    let bad = ObservedComponent {
        size: 2001,
        sha256: [0; 32],
        sha384: None,
        tree_sha256: Some([0; 32]),
        ..good.clone()
    };
    let f = o.check_component(&bad).unwrap_err();
    let codes: Vec<_> = f.iter().map(|x| x.code).collect();
    assert_eq!(
        codes,
        vec![
            ReasonCode::ComponentSizeMismatch,
            ReasonCode::ComponentDigestMismatch,
            ReasonCode::ComponentDigestMismatch,
            ReasonCode::ComponentDigestMismatch,
        ]
    );
    let unknown = ObservedComponent {
        name: "x".into(),
        ..good
    };
    assert_eq!(
        o.check_component(&unknown).unwrap_err()[0].code,
        ReasonCode::ComponentUnknown
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn parser_is_total(s in "\\PC{0,400}") {
        let _ = Order::from_toml(&s);
    }

    #[test]
    fn mutated_orders_never_panic(pos in any::<prop::sample::Index>(), b in any::<u8>()) {
        let t = order_toml(&keys()).into_bytes();
        let mut t2 = t.clone();
        let i = pos.index(t2.len());
        t2[i] = b;
        if let Ok(s) = String::from_utf8(t2) {
            let _ = Order::from_toml(&s);
        }
    }
}
