#![allow(clippy::unwrap_used)]
mod common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use tl_policy::dsse::{pae, Envelope};
use tl_policy::{policy_digest, Algorithm, SignedOrder, SigningKey, PAYLOAD_TYPE};

fn fully_signed(k: &Keys) -> (String, Vec<u8>) {
    let toml = order_toml(k);
    let mut s = SignedOrder::sign_new(&toml, &k.owner).unwrap();
    s.add_signature(&k.lab).unwrap();
    s.add_signature(&k.clinic).unwrap();
    (toml, s.to_json())
}

fn err_code(json: &[u8]) -> &'static str {
    SignedOrder::verify(json).unwrap_err().code()
}

#[test]
fn pae_matches_spec() {
    assert_eq!(
        pae("http://example.com/HelloWorld", b"hello world"),
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
    );
    assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
}

#[test]
fn all_signers_verify_and_digest_is_payload_hash() {
    let k = keys();
    let (toml, json) = fully_signed(&k);
    let v = SignedOrder::verify(&json).unwrap();
    assert_eq!(v.digest, policy_digest(toml.as_bytes()));
    assert_eq!(v.order.version(), 3);
    let env: Envelope = serde_json::from_slice(&json).unwrap();
    assert_eq!(env.payload_type, PAYLOAD_TYPE);
    assert_eq!(env.signatures.len(), 3);
    assert_eq!(env.signatures[0].keyid, k.owner.public_key().key_id());
}

#[test]
fn missing_signer_is_named() {
    let k = keys();
    let mut s = SignedOrder::sign_new(&order_toml(&k), &k.owner).unwrap();
    s.add_signature(&k.clinic).unwrap();
    let e = SignedOrder::verify(&s.to_json()).unwrap_err();
    assert_eq!(e.code(), "ORDER_MISSING_SIGNER");
    assert!(e.to_string().contains("lab"), "{e}");
    assert!(!e.to_string().contains("clinic"), "{e}");
}

#[test]
fn unlisted_key_rejected() {
    let k = keys();
    let (_, json) = fully_signed(&k);
    let stranger = SigningKey::generate(Algorithm::Ed25519).unwrap();
    // add_signature refuses a key that is not a signer's
    let mut s = SignedOrder::from_json(&json).unwrap();
    assert_eq!(
        s.add_signature(&stranger).unwrap_err().code(),
        "ORDER_UNKNOWN_SIGNER"
    );
    // a forged envelope carrying the stranger's signature is rejected
    let mut env: Envelope = serde_json::from_slice(&json).unwrap();
    let sig = stranger.sign(&pae(PAYLOAD_TYPE, s.payload())).unwrap();
    env.signatures.push(tl_policy::dsse::Signature {
        keyid: stranger.public_key().key_id(),
        sig: B64.encode(sig),
    });
    assert_eq!(
        err_code(&serde_json::to_vec(&env).unwrap()),
        "ORDER_UNKNOWN_SIGNER"
    );
}

#[test]
fn duplicate_signatures_are_fine_and_keyid_optional() {
    let k = keys();
    let (_, json) = fully_signed(&k);
    let mut env: Envelope = serde_json::from_slice(&json).unwrap();
    let mut dup = env.signatures[1].clone();
    env.signatures.push(dup.clone());
    dup.keyid.clear();
    env.signatures.push(dup);
    env.signatures[0].keyid.clear();
    SignedOrder::verify(&serde_json::to_vec(&env).unwrap()).unwrap();
}

#[test]
fn every_payload_byte_flip_rejected() {
    let k = keys();
    let (_, json) = fully_signed(&k);
    let env: Envelope = serde_json::from_slice(&json).unwrap();
    let payload = B64.decode(&env.payload).unwrap();
    for i in 0..payload.len() {
        for bit in [0x01u8, 0x80] {
            let mut p = payload.clone();
            p[i] ^= bit;
            let mut e = env.clone();
            e.payload = B64.encode(&p);
            let r = SignedOrder::verify(&serde_json::to_vec(&e).unwrap());
            assert!(r.is_err(), "flip at {i} accepted");
        }
    }
}

#[test]
fn every_signature_byte_flip_rejected() {
    let k = keys();
    let (_, json) = fully_signed(&k);
    let env: Envelope = serde_json::from_slice(&json).unwrap();
    for s in 0..env.signatures.len() {
        let sig = B64.decode(&env.signatures[s].sig).unwrap();
        for i in 0..sig.len() {
            let mut b = sig.clone();
            b[i] ^= 0x01;
            let mut e = env.clone();
            e.signatures[s].sig = B64.encode(&b);
            assert_eq!(
                err_code(&serde_json::to_vec(&e).unwrap()),
                "ORDER_BAD_SIGNATURE",
                "signature {s} byte {i}"
            );
        }
        // truncation too
        let mut e = env.clone();
        e.signatures[s].sig = B64.encode(&sig[..sig.len() - 1]);
        assert_eq!(
            err_code(&serde_json::to_vec(&e).unwrap()),
            "ORDER_BAD_SIGNATURE"
        );
    }
}

#[test]
fn envelope_is_parsed_strictly() {
    let k = keys();
    let (_, json) = fully_signed(&k);
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["extra"] = serde_json::json!(1);
    assert_eq!(
        err_code(&serde_json::to_vec(&v).unwrap()),
        "ORDER_BAD_ENVELOPE"
    );

    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["payloadType"] = serde_json::json!("application/vnd.in-toto+json");
    assert_eq!(
        err_code(&serde_json::to_vec(&v).unwrap()),
        "ORDER_PAYLOAD_TYPE"
    );

    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["payload"] = serde_json::json!("!!!");
    assert_eq!(
        err_code(&serde_json::to_vec(&v).unwrap()),
        "ORDER_BAD_ENVELOPE"
    );

    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["signatures"] = serde_json::json!([]);
    assert_eq!(
        err_code(&serde_json::to_vec(&v).unwrap()),
        "ORDER_MISSING_SIGNER"
    );

    for cut in [0, 1, json.len() / 2, json.len() - 3] {
        assert_eq!(err_code(&json[..cut]), "ORDER_BAD_ENVELOPE");
    }
}

#[test]
fn ecdsa_and_ed25519_only_signed_orders() {
    // An order with only the ECDSA signer required for its single component.
    let k = keys();
    let lab = k.lab.public_key().to_string();
    let toml = format!(
        r#"
[order]
family = "f"
version = 1
expires = "2030-01-01T00:00:00Z"
signers = ["lab"]
[parties.lab]
signing_key = "{lab}"
[platform]
tee = ["tpm"]
accept_tcb = ["NotApplicable"]
[[components]]
name = "e"
role = "engine"
owner = "lab"
size = 1
sha256 = "{d}"
[launch]
argv = ["{{components}}/e"]
memory_mb = 1
cpu_seconds = 1
timeout_seconds = 1
"#,
        d = h(0, 32)
    );
    let s = SignedOrder::sign_new(&toml, &k.lab).unwrap();
    let v = SignedOrder::verify(&s.to_json()).unwrap();
    assert!(v.order.outputs().is_empty());
    assert_eq!(
        SignedOrder::sign_new(&toml, &k.owner).unwrap_err().code(),
        "ORDER_UNKNOWN_SIGNER"
    );
}
