#![allow(clippy::unwrap_used)]
//! The test vector of docs/formats/order.md, byte for byte.

use tl_policy::{ReasonCode, SignedOrder, SigningKey};

const DOC: &str = include_str!("../../docs/formats/order.md");
const ORDER: &str = include_str!("data/vector-order.toml");
const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f\n-----END PRIVATE KEY-----\n";
const PUBLIC: &str = "ed25519:A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
const KEY_ID: &str = "6368d976ac0bf895e7003b17b2d659e897f89007af7c573b689e6a16b05e4c6b";
const SIG: &str =
    "SQjW1eKlNbhn+s49rgzXAAlo5FEvBf3opHyRvWL6UpH3f8llAxuf4G8OtzrNH/Q/eJCCV5LXkpqnMqfVf4X+Ag==";
const DIGEST: &str = "02e40b76f84fb0d3fdb320d81268fcca181468d64e60746c3152b5d348eb6fd1";

#[test]
fn vector_matches_byte_for_byte() {
    let seed: [u8; 32] = core::array::from_fn(|i| i as u8);
    let k = SigningKey::ed25519_from_seed(&seed).unwrap();
    assert_eq!(k.to_pem().as_str(), PEM);
    let k2 = SigningKey::from_pem(PEM).unwrap();
    assert_eq!(k2.public_key().to_string(), PUBLIC);
    assert_eq!(k2.public_key().key_id(), KEY_ID);

    let s = SignedOrder::sign_new(ORDER, &k2).unwrap();
    let env = s.envelope();
    assert_eq!(env.signatures.len(), 1);
    assert_eq!(env.signatures[0].keyid, KEY_ID);
    assert_eq!(env.signatures[0].sig, SIG);
    assert_eq!(hex::encode(s.digest()), DIGEST);

    let v = SignedOrder::verify(&s.to_json()).unwrap();
    assert_eq!(hex::encode(v.digest), DIGEST);
}

#[test]
fn doc_carries_the_vector_and_every_code() {
    for needle in [PUBLIC, KEY_ID, SIG, DIGEST, ORDER, PEM] {
        assert!(DOC.contains(needle), "doc lacks {needle:?}");
    }
    assert!(DOC.contains(&format!("{} bytes", ORDER.len())));
    for c in ReasonCode::ALL {
        assert!(DOC.contains(&format!("`{}`", c.as_str())), "doc lacks {c}");
    }
}
