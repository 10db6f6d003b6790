//! Key grants: round trips, binding to order/component/recipient, tampering.
#![allow(clippy::unwrap_used)]

use rand_chacha::rand_core::SeedableRng;
use tl_seal::*;

fn ctx() -> GrantContext {
    GrantContext {
        order_digest: [0xaa; 32],
        component_name: "model".into(),
        component_sha256: [0xbb; 32],
    }
}

fn setup() -> (RecipientSecretKey, ContentKey, Vec<u8>) {
    let sk = RecipientSecretKey::from_seed(&[3; 32]);
    let ck = ContentKey::from_bytes([5; 32]);
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([1; 32]);
    let g = seal_grant(sk.public_key(), &ck, &ctx(), &mut rng).unwrap();
    (sk, ck, g)
}

fn code(r: Result<ContentKey, GrantError>) -> &'static str {
    r.err().map(|e| e.code()).unwrap_or("OK")
}

#[test]
fn round_trip() {
    let (sk, ck, g) = setup();
    assert_eq!(g.len(), 8 + 6 + 32 + 1 + 5 + 32 + 32 + 2 + 32 + 2 + 48);
    assert_eq!(open_grant(&g, &sk, &ctx()).unwrap(), ck);
    let p = parse_grant(&g).unwrap();
    assert_eq!(p.context, ctx());
    assert_eq!(&p.recipient, sk.public_key().as_bytes());
    // Fresh randomness: two grants differ, both open.
    let g2 = seal_grant(sk.public_key(), &ck, &ctx(), &mut SystemRng).unwrap();
    assert_ne!(g, g2);
    assert_eq!(open_grant(&g2, &sk, &ctx()).unwrap(), ck);
}

#[test]
fn wrong_order_component_recipient() {
    let (sk, _, g) = setup();
    let mut c = ctx();
    c.order_digest[0] ^= 1;
    assert_eq!(code(open_grant(&g, &sk, &c)), "GRANT_WRONG_ORDER");
    let mut c = ctx();
    c.component_name = "model2".into();
    assert_eq!(code(open_grant(&g, &sk, &c)), "GRANT_WRONG_COMPONENT");
    let mut c = ctx();
    c.component_sha256[31] ^= 1;
    assert_eq!(code(open_grant(&g, &sk, &c)), "GRANT_WRONG_COMPONENT");
    let other = RecipientSecretKey::from_seed(&[4; 32]);
    assert_eq!(
        code(open_grant(&g, &other, &ctx())),
        "GRANT_WRONG_RECIPIENT"
    );
}

#[test]
fn recipient_field_swapped_to_another_key_fails_decryption() {
    let (_, _, mut g) = setup();
    let other = RecipientSecretKey::from_seed(&[4; 32]);
    let off = 8 + 6 + 32 + 1 + 5 + 32;
    g[off..off + 32].copy_from_slice(other.public_key().as_bytes());
    assert_eq!(code(open_grant(&g, &other, &ctx())), "GRANT_DECRYPT_FAILED");
}

#[test]
fn context_rewritten_in_grant_fails_decryption() {
    // Rewriting the order digest in the grant to the one the victim expects
    // makes the context check pass but breaks the AAD.
    let (sk, _, mut g) = setup();
    g[14] ^= 0xff;
    let mut c = ctx();
    c.order_digest[0] ^= 0xff;
    assert_eq!(code(open_grant(&g, &sk, &c)), "GRANT_DECRYPT_FAILED");
}

#[test]
fn every_single_byte_flip_is_rejected() {
    let (sk, _, g) = setup();
    let name_end = 8 + 6 + 32 + 1 + 5;
    for pos in 0..g.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut t = g.clone();
            t[pos] ^= mask;
            let c = code(open_grant(&t, &sk, &ctx()));
            let want: &[&str] = match pos {
                0..=7 => &["GRANT_MALFORMED"],
                8..=13 => &["GRANT_UNSUPPORTED_SUITE"],
                14..=45 => &["GRANT_WRONG_ORDER"],
                46 => &["GRANT_MALFORMED", "GRANT_WRONG_COMPONENT"],
                p if p < name_end + 32 => &["GRANT_MALFORMED", "GRANT_WRONG_COMPONENT"],
                p if p < name_end + 64 => &["GRANT_WRONG_RECIPIENT"],
                p if p < name_end + 66 => &["GRANT_MALFORMED"],
                p if p < name_end + 98 => &["GRANT_DECRYPT_FAILED"],
                p if p < name_end + 100 => &["GRANT_MALFORMED"],
                _ => &["GRANT_DECRYPT_FAILED"],
            };
            assert!(want.contains(&c), "flip {mask:#x} at {pos}: {c}");
        }
    }
}

#[test]
fn truncation_and_trailing_bytes() {
    let (sk, _, g) = setup();
    for len in 0..g.len() {
        assert_eq!(
            code(open_grant(&g[..len], &sk, &ctx())),
            "GRANT_MALFORMED",
            "len {len}"
        );
    }
    let mut t = g.clone();
    t.push(0);
    assert_eq!(code(open_grant(&t, &sk, &ctx())), "GRANT_MALFORMED");
}

#[test]
fn component_name_bounds() {
    let sk = RecipientSecretKey::from_seed(&[3; 32]);
    let ck = ContentKey::from_bytes([5; 32]);
    for (name, ok) in [
        ("", false),
        ("a", true),
        (&"x".repeat(64)[..], true),
        (&"x".repeat(65)[..], false),
    ] {
        let mut c = ctx();
        c.component_name = name.into();
        let r = seal_grant(sk.public_key(), &ck, &c, &mut SystemRng);
        assert_eq!(r.is_ok(), ok, "{name:?}");
        if let Ok(g) = r {
            assert_eq!(open_grant(&g, &sk, &c).unwrap(), ck);
        } else {
            assert_eq!(r.unwrap_err().code(), "GRANT_BAD_COMPONENT_NAME");
        }
    }
}

#[test]
fn key_text_and_pem() {
    let sk = RecipientSecretKey::generate().unwrap();
    let pem = sk.to_pem();
    assert!(pem.starts_with("-----BEGIN TL X25519 PRIVATE KEY-----\n"));
    let back = RecipientSecretKey::from_pem(&pem).unwrap();
    assert_eq!(back.as_bytes(), sk.as_bytes());
    assert_eq!(back.public_key(), sk.public_key());
    let t = sk.public_key().to_text();
    assert!(t.starts_with("x25519:"));
    assert_eq!(
        &RecipientPublicKey::from_text(&format!(" {t}\n")).unwrap(),
        sk.public_key()
    );
    for bad in [
        "",
        "x25519:",
        "x25519:AAAA",
        "p256:AAAA",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ] {
        assert_eq!(
            RecipientPublicKey::from_text(bad).unwrap_err().code(),
            "KEY_MALFORMED",
            "{bad}"
        );
    }
    let wrong_label = pem.replace("TL X25519", "EC");
    assert!(RecipientSecretKey::from_pem(&wrong_label).is_err());
    let short =
        "-----BEGIN TL X25519 PRIVATE KEY-----\nAAAA\n-----END TL X25519 PRIVATE KEY-----\n";
    assert!(RecipientSecretKey::from_pem(short).is_err());
    let trailing = format!("{}junk\n", pem.as_str());
    assert!(RecipientSecretKey::from_pem(&trailing).is_err());
    assert!(!format!("{sk:?}").contains(&hex::encode(sk.as_bytes())));
}

#[test]
fn from_seed_is_deterministic() {
    let a = RecipientSecretKey::from_seed(&[9; 32]);
    let b = RecipientSecretKey::from_seed(&[9; 32]);
    let c = RecipientSecretKey::from_seed(&[10; 32]);
    assert_eq!(a.public_key(), b.public_key());
    assert_ne!(a.public_key(), c.public_key());
}

#[test]
fn outputs_to_several_recipients() {
    let a = RecipientSecretKey::from_seed(&[1; 32]);
    let b = RecipientSecretKey::from_seed(&[2; 32]);
    let pt: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
    let mut sealed = Vec::new();
    let so = seal_to_recipients(
        &[a.public_key().clone(), b.public_key().clone()],
        [0x33; 32],
        "result.bin",
        pt.len() as u64,
        &mut &pt[..],
        &mut sealed,
        &mut SystemRng,
    )
    .unwrap();
    assert_eq!(so.context.component_name, "output:result.bin");
    assert_eq!(so.context.component_sha256, sha256(&pt));
    assert_eq!(so.grants.len(), 2);
    for (sk, (pk, g)) in [&a, &b].into_iter().zip(&so.grants) {
        assert_eq!(pk, sk.public_key());
        let ck = open_grant(g, sk, &so.context).unwrap();
        let mut out = Vec::new();
        let s = open_stream(&ck, &mut &sealed[..], &mut out, OpenOptions::default()).unwrap();
        assert_eq!(out, pt);
        assert_eq!(s.digests.sha256, Some(sha256(&pt)));
    }
    // Each grant is for its own recipient only.
    assert_eq!(
        code(open_grant(&so.grants[0].1, &b, &so.context)),
        "GRANT_WRONG_RECIPIENT"
    );
    let r = seal_to_recipients(
        &[],
        [0; 32],
        "x",
        0,
        &mut &b""[..],
        &mut Vec::new(),
        &mut SystemRng,
    );
    assert!(r.is_err());
}
