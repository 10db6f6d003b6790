//! Test vectors published in docs/formats/sealed.md, checked byte for byte.
#![allow(clippy::unwrap_used)]

use rand_chacha::rand_core::SeedableRng;
use tl_seal::*;

fn seq(start: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| start.wrapping_add(i as u8)).collect()
}
fn arr32(v: &[u8]) -> [u8; 32] {
    v.try_into().unwrap()
}
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

pub fn vector_key() -> ContentKey {
    ContentKey::from_bytes(arr32(&seq(0x00, 32)))
}
pub fn vector_salt() -> [u8; 32] {
    arr32(&seq(0x20, 32))
}

fn seal_vec(pt: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    seal_stream(
        &vector_key(),
        SegmentSize::new(4096).unwrap(),
        pt.len() as u64,
        &mut &pt[..],
        &mut out,
        vector_salt(),
        DigestSet::ALL,
        2,
    )
    .unwrap();
    out
}

fn grant_vec() -> (RecipientSecretKey, GrantContext, Vec<u8>) {
    let sk = RecipientSecretKey::from_seed(&arr32(&seq(0x40, 32)));
    let ctx = GrantContext {
        order_digest: [0x11; 32],
        component_name: "dataset-a".into(),
        component_sha256: [0x22; 32],
    };
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([0x07; 32]);
    let g = seal_grant(sk.public_key(), &vector_key(), &ctx, &mut rng).unwrap();
    (sk, ctx, g)
}

#[test]
fn sealed_vector_small() {
    let want = "544c5345414c45440101000000001000000000000000001c202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3fe3f12019718f7023aae3f7f432394ef4d29d728ebcf1cd3ac65ecfac485e4d2a2c827a1fbf3690811338669b";
    assert_eq!(hex::encode(seal_vec(b"trusted-loader sealed vector")), want);
    let mut out = Vec::new();
    let s = open_stream(
        &vector_key(),
        &mut &hex::decode(want).unwrap()[..],
        &mut out,
        OpenOptions::default(),
    )
    .unwrap();
    assert_eq!(out, b"trusted-loader sealed vector");
    assert_eq!(s.plaintext_len, 28);
}

#[test]
fn sealed_vector_three_segments() {
    let sealed = seal_vec(&pattern(4096 * 2 + 5));
    assert_eq!(sealed.len(), 56 + 4096 * 2 + 5 + 3 * 16);
    assert_eq!(
        hex::encode(sha256(&sealed)),
        "6ff2dbcf2baee5c4403b0219a5c2e86627a00787c330ccbbbd54dd8973b9e3af"
    );
}

#[test]
fn sealed_vector_empty() {
    assert_eq!(hex::encode(seal_vec(b"")), "544c5345414c454401010000000010000000000000000000202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f546fa013e9c539c7a0647af698f528b1");
}

#[test]
fn tree_vectors() {
    let cases: [(Vec<u8>, &str); 5] = [
        (
            Vec::new(),
            "f0c1e0b4cd1983b9c92909f8145cc102993e4c797489c0ba98639fd93056b82f",
        ),
        (
            b"abc".to_vec(),
            "5c170547d40533fb44a0c4874b2977285d519c9e8129f7733c364d97cf2cabd6",
        ),
        (
            vec![0u8; TREE_LEAF_SIZE],
            "18b288b943964a110938dee7fadde7c8865830a409371a5b54c3443aa84b40f1",
        ),
        (
            pattern(3 * TREE_LEAF_SIZE + 5),
            "1f0fb20f8ebbfff9e54cd8e92284bc8bb15b84a925511b90612b99af04dd5f77",
        ),
        (
            pattern(5 * TREE_LEAF_SIZE),
            "4c9df17be52087297ca8fcb8bef7fa4375a6146568bf3781c040f15616477550",
        ),
    ];
    for (data, want) in cases {
        assert_eq!(hex::encode(tree_sha256(&data)), want, "len {}", data.len());
    }
}

#[test]
fn grant_vector() {
    let (sk, ctx, g) = grant_vec();
    assert_eq!(
        hex::encode(sk.as_bytes()),
        "5f661a2f70e4407ce264c6ec792b13faf122b0731108afe887d2a7994387d421"
    );
    assert_eq!(
        sk.public_key().to_text(),
        "x25519:sln27pLcugERhQsTs/bczIJ3JvmwgjWrYpIraz8/Khk="
    );
    assert_eq!(hex::encode(&g), "544c4752414e5431002000010002111111111111111111111111111111111111111111111111111111111111111109646174617365742d612222222222222222222222222222222222222222222222222222222222222222b259f6ee92dcba0111850b13b3f6dccc827726f9b08235ab62922b6b3f3f2a190020e6baf1c66739169e2a993107a026167dcb02acec87fcee36be8eaab51244217b0030384264d648066b08ac1236180051014fbfe9d074250f0be9e8c23898bcd458f4fff7834fdf37af36ee0b62f9aa8a2b4d");
    let k = open_grant(&g, &sk, &ctx).unwrap();
    assert_eq!(k, vector_key());
}

/// RFC 9180 appendix A.1.1 (DHKEM(X25519, HKDF-SHA256)): DeriveKeyPair(ikmR).
#[test]
fn derive_keypair_matches_rfc9180() {
    let ikm =
        hex::decode("6db9df30aa07dd42ee5e8181afdb977e538f5e1fec8a06223f33f7013e525037").unwrap();
    let sk = RecipientSecretKey::from_seed(&arr32(&ikm));
    assert_eq!(
        hex::encode(sk.as_bytes()),
        "4612c550263fc8ad58375df3f557aac531d26850903e55a9f23f21d8534e8ac8"
    );
    assert_eq!(
        hex::encode(sk.public_key().as_bytes()),
        "3948cfe0ad1ddb695d780e59077195da6c56506b027329794ab02bca80815c4d"
    );
}

#[test]
#[ignore = "prints the vectors for the spec"]
fn print_vectors() {
    println!(
        "V1 {}",
        hex::encode(seal_vec(b"trusted-loader sealed vector"))
    );
    println!(
        "V2 {}",
        hex::encode(sha256(&seal_vec(&pattern(4096 * 2 + 5))))
    );
    println!("V3 {}", hex::encode(seal_vec(b"")));
    for (name, d) in [
        ("empty", Vec::new()),
        ("abc", b"abc".to_vec()),
        ("zero1m", vec![0u8; TREE_LEAF_SIZE]),
        ("pat3m5", pattern(3 * TREE_LEAF_SIZE + 5)),
    ] {
        println!("T {name} {}", hex::encode(tree_sha256(&d)));
    }
    let (sk, _ctx, g) = grant_vec();
    println!("SK {}", hex::encode(sk.as_bytes()));
    println!("PK {}", sk.public_key().to_text());
    println!("G {}", hex::encode(g));
}
