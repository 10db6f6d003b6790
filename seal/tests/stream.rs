//! Sealed component: round trips, tampering, truncation, reordering, extension.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tl_seal::digest::digests_of;
use tl_seal::*;

const HDR: usize = 56;
const TAG: usize = 16;

fn key() -> ContentKey {
    ContentKey::from_bytes([7; 32])
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

fn seal(pt: &[u8], seg: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let s = seal_stream(
        &key(),
        SegmentSize::new(seg).unwrap(),
        pt.len() as u64,
        &mut &pt[..],
        &mut out,
        [9; 32],
        DigestSet::ALL,
        2,
    )
    .unwrap();
    assert_eq!(s.sealed_len, out.len() as u64);
    assert_eq!(s.digests, digests_of(pt, DigestSet::ALL));
    out
}

fn open_with(
    k: &ContentKey,
    sealed: &[u8],
    set: DigestSet,
) -> Result<(Vec<u8>, OpenSummary), SealError> {
    let mut out = Vec::new();
    let s = open_stream(
        k,
        &mut &sealed[..],
        &mut out,
        OpenOptions {
            digests: set,
            hash_threads: 3,
        },
    )?;
    Ok((out, s))
}

/// Open with every digest (the pipeline with tree hashing) and with flat
/// SHA-256 alone (the split read/write and decrypt/hash path): both must
/// come to the same result, error (with its segment) or plaintext.
fn open(sealed: &[u8]) -> Result<(Vec<u8>, OpenSummary), SealError> {
    let all = open_with(&key(), sealed, DigestSet::ALL);
    let flat = open_with(&key(), sealed, DigestSet::SHA256);
    match (&all, &flat) {
        (Ok((a, sa)), Ok((f, sf))) => {
            assert_eq!(a, f);
            assert_eq!(sa.digests.sha256, sf.digests.sha256);
        }
        (Err(a), Err(f)) => assert_eq!(format!("{a:?}"), format!("{f:?}")),
        _ => panic!("the two open paths disagree: {all:?} / {flat:?}"),
    }
    all
}

fn code(r: Result<(Vec<u8>, OpenSummary), SealError>) -> &'static str {
    r.err().map(|e| e.code()).unwrap_or("OK")
}

fn round_trip(n: usize, seg: u32) {
    let pt = data(n, n as u8);
    let sealed = seal(&pt, seg);
    let nseg = n.div_ceil(seg as usize).max(1);
    assert_eq!(sealed.len(), HDR + n + nseg * TAG);
    for set in [
        DigestSet::ALL,
        DigestSet::SHA256,
        DigestSet::TREE,
        DigestSet {
            sha256: false,
            sha384: false,
            tree_sha256: false,
        },
    ] {
        let (out, s) = open_with(&key(), &sealed, set).unwrap();
        assert_eq!(out, pt);
        assert_eq!(s.plaintext_len, n as u64);
        assert_eq!(s.digests, digests_of(&pt, set));
    }
}

#[test]
fn round_trip_boundaries() {
    for seg in [4096u32, 8192] {
        let s = seg as usize;
        for n in [
            0,
            1,
            s - 1,
            s,
            s + 1,
            2 * s - 1,
            2 * s,
            2 * s + 1,
            10 * s + 3,
        ] {
            round_trip(n, seg);
        }
    }
}

#[test]
fn round_trip_many_leaves_small_segments() {
    // Batches of 256 segments (1 MiB); several tree leaves and a partial one.
    round_trip(3 * TREE_LEAF_SIZE + 4097, 4096);
}

#[test]
fn round_trip_more_batches_than_buffers() {
    // Far more 1 MiB batches than pooled buffers: buffers must be recycled.
    round_trip(12 * TREE_LEAF_SIZE + 1, 4096);
    round_trip(20 * TREE_LEAF_SIZE, 1 << 20);
}

#[test]
fn round_trip_segments_larger_than_leaves() {
    // 2 MiB segments: each holds two leaves.
    round_trip(5 * TREE_LEAF_SIZE + 17, 2 << 20);
    round_trip(4 << 20, 2 << 20);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn prop_round_trip(n in prop_oneof![0usize..64, 4090usize..4100, 8185usize..8200, 0usize..70_000], seg in prop_oneof![Just(4096u32), Just(8192), Just(16384)]) {
        round_trip(n, seg);
    }
}

#[test]
fn empty_plaintext_is_one_empty_segment() {
    let sealed = seal(b"", 4096);
    assert_eq!(sealed.len(), HDR + TAG);
    let (out, s) = open(&sealed).unwrap();
    assert!(out.is_empty());
    assert_eq!(s.digests.sha256.unwrap(), sha256(b""));
    // Removing the empty segment is a truncation.
    assert_eq!(code(open(&sealed[..HDR])), "SEALED_TRUNCATED");
}

#[test]
fn every_single_byte_flip_is_rejected() {
    let pt = data(9000, 1); // 3 segments of 4 KiB
    let sealed = seal(&pt, 4096);
    for pos in 0..sealed.len() {
        let mut t = sealed.clone();
        t[pos] ^= 0x01;
        let c = code(open(&t));
        let want: &[&str] = match pos {
            0..=7 | 10..=11 => &["SEALED_MALFORMED_HEADER"],
            8 => &["SEALED_UNSUPPORTED_VERSION"],
            9 => &["SEALED_UNSUPPORTED_ALGORITHM"],
            // Segment size / length / salt edits change the derived key and
            // usually the expected file length.
            12..=55 => &[
                "SEALED_AUTH_FAILED",
                "SEALED_MALFORMED_HEADER",
                "SEALED_TRUNCATED",
            ],
            _ => &["SEALED_AUTH_FAILED"],
        };
        assert!(want.contains(&c), "flip at {pos}: got {c}");
        if pos >= HDR {
            let seg = (pos - HDR) / (4096 + TAG);
            match open(&t) {
                Err(SealError::AuthFailed { segment }) => assert_eq!(segment as usize, seg),
                other => panic!("flip at {pos}: {other:?}"),
            }
        }
    }
}

#[test]
fn header_flips_with_high_bits_are_rejected() {
    let sealed = seal(&data(5000, 2), 4096);
    for pos in 0..HDR {
        for bit in 0..8 {
            let mut t = sealed.clone();
            t[pos] ^= 1 << bit;
            assert!(open(&t).is_err(), "flip at {pos} bit {bit}");
        }
    }
}

#[test]
fn truncation_is_detected() {
    let pt = data(3 * 4096 + 100, 3);
    let sealed = seal(&pt, 4096);
    let seg_ct = 4096 + TAG;
    // At every segment boundary (including right after the header).
    for k in 0..4 {
        let cut = HDR + k * seg_ct;
        assert_eq!(
            code(open(&sealed[..cut])),
            "SEALED_TRUNCATED",
            "cut at boundary {k}"
        );
    }
    // Inside every segment, inside the tag, and one byte short.
    for cut in [
        HDR + 1,
        HDR + 4096,
        HDR + seg_ct + 10,
        HDR + 3 * seg_ct + 50,
        sealed.len() - 1,
    ] {
        assert_eq!(
            code(open(&sealed[..cut])),
            "SEALED_TRUNCATED",
            "cut at {cut}"
        );
    }
    // Inside the header.
    assert_eq!(code(open(&sealed[..30])), "SEALED_TRUNCATED");
    assert_eq!(code(open(&sealed[..5])), "SEALED_MALFORMED_HEADER");
    assert_eq!(code(open(b"")), "SEALED_MALFORMED_HEADER");
}

#[test]
fn reordering_and_dropping_segments_is_detected() {
    let pt = data(4 * 4096, 4);
    let sealed = seal(&pt, 4096);
    let seg_ct = 4096 + TAG;
    let segs: Vec<&[u8]> = sealed[HDR..].chunks(seg_ct).collect();
    assert_eq!(segs.len(), 4);
    let build = |order: &[usize]| {
        let mut v = sealed[..HDR].to_vec();
        for &i in order {
            v.extend_from_slice(segs[i]);
        }
        v
    };
    assert!(open(&build(&[0, 1, 2, 3])).is_ok());
    match open(&build(&[1, 0, 2, 3])) {
        Err(SealError::AuthFailed { segment: 0 }) => {}
        other => panic!("{other:?}"),
    }
    match open(&build(&[0, 1, 3, 2])) {
        Err(SealError::AuthFailed { segment: 2 }) => {}
        other => panic!("{other:?}"),
    }
    // A duplicated segment in place of another.
    match open(&build(&[0, 0, 2, 3])) {
        Err(SealError::AuthFailed { segment: 1 }) => {}
        other => panic!("{other:?}"),
    }
    // Dropping a middle segment: segment 3 sits where segment 2 belongs.
    match open(&build(&[0, 1, 3])) {
        Err(SealError::AuthFailed { segment: 2 }) => {}
        other => panic!("{other:?}"),
    }
    // Dropping the last segment.
    assert_eq!(code(open(&build(&[0, 1, 2]))), "SEALED_TRUNCATED");
}

#[test]
fn non_last_segment_cannot_end_the_stream() {
    // A 2-segment file cut after segment 0, with the header re-made for a
    // 1-segment plaintext: the header change alters the key, and segment 0
    // was sealed with last = 0.
    let pt = data(2 * 4096, 5);
    let sealed = seal(&pt, 4096);
    let mut t = sealed[..HDR + 4096 + TAG].to_vec();
    t[16..24].copy_from_slice(&4096u64.to_be_bytes());
    assert_eq!(code(open(&t)), "SEALED_AUTH_FAILED");
}

#[test]
fn extension_is_detected() {
    let pt = data(2 * 4096 + 7, 6);
    let sealed = seal(&pt, 4096);
    let mut t = sealed.clone();
    t.push(0);
    assert_eq!(code(open(&t)), "SEALED_TRAILING_DATA");
    let mut t = sealed.clone();
    t.extend_from_slice(&sealed[HDR..HDR + 4096 + TAG]);
    assert_eq!(code(open(&t)), "SEALED_TRAILING_DATA");
    // Garbage after an empty component.
    let mut e = seal(b"", 4096);
    e.extend_from_slice(b"garbage");
    assert_eq!(code(open(&e)), "SEALED_TRAILING_DATA");
}

#[test]
fn wrong_key_fails_first_segment() {
    let sealed = seal(&data(10_000, 7), 4096);
    match open_with(&ContentKey::from_bytes([8; 32]), &sealed, DigestSet::ALL) {
        Err(SealError::AuthFailed { segment: 0 }) => {}
        other => panic!("{other:?}"),
    }
    let mut out = Vec::new();
    let r = open_stream(
        &ContentKey::from_bytes([8; 32]),
        &mut &sealed[..],
        &mut out,
        OpenOptions::default(),
    );
    assert!(r.is_err());
    assert!(
        out.is_empty(),
        "nothing written when the first segment fails"
    );
}

#[test]
fn seal_rejects_length_mismatch() {
    let pt = data(5000, 8);
    for announced in [4999u64, 5001, 0] {
        let mut out = Vec::new();
        let r = seal_stream(
            &key(),
            SegmentSize::new(4096).unwrap(),
            announced,
            &mut &pt[..],
            &mut out,
            [0; 32],
            DigestSet::SHA256,
            1,
        );
        assert_eq!(
            r.unwrap_err().code(),
            "SEALED_INPUT_LENGTH_MISMATCH",
            "announced {announced}"
        );
    }
}

#[test]
fn header_fields_are_checked() {
    let sealed = seal(&data(100, 9), 4096);
    let mut t = sealed.clone();
    t[8] = 2;
    assert_eq!(code(open(&t)), "SEALED_UNSUPPORTED_VERSION");
    let mut t = sealed.clone();
    t[9] = 2;
    assert_eq!(code(open(&t)), "SEALED_UNSUPPORTED_ALGORITHM");
    for bad in [0u32, 4095, 2048, 5000, 32 << 20, u32::MAX] {
        let mut t = sealed.clone();
        t[12..16].copy_from_slice(&bad.to_be_bytes());
        assert_eq!(
            code(open(&t)),
            "SEALED_MALFORMED_HEADER",
            "segment size {bad}"
        );
    }
    // A length needing more than 2^32 segments.
    let mut t = sealed.clone();
    t[16..24].copy_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(code(open(&t)), "SEALED_MALFORMED_HEADER");
    // A huge but valid length: the key changes, nothing is allocated from it.
    let mut t = sealed.clone();
    t[16..24].copy_from_slice(&(1u64 << 40).to_be_bytes());
    assert!(open(&t).is_err());
}

#[test]
fn segment_size_parsing() {
    assert_eq!("1M".parse::<SegmentSize>().unwrap().get(), 1 << 20);
    assert_eq!("64KiB".parse::<SegmentSize>().unwrap().get(), 64 << 10);
    assert_eq!("4096".parse::<SegmentSize>().unwrap().get(), 4096);
    assert_eq!("16MiB".parse::<SegmentSize>().unwrap().get(), 16 << 20);
    for bad in ["3K", "2K", "32M", "x", "", "1G", "99999999999999999999"] {
        assert_eq!(
            bad.parse::<SegmentSize>().unwrap_err().code(),
            "SEALED_BAD_SEGMENT_SIZE",
            "{bad}"
        );
    }
}

#[test]
fn content_key_text() {
    let k = ContentKey::generate().unwrap();
    let t = k.to_text();
    assert!(t.starts_with("ck:"));
    assert_eq!(
        ContentKey::from_text(&format!("{}\n", t.as_str())).unwrap(),
        k
    );
    for bad in [
        "",
        "ck:",
        "ck:AAAA",
        "xx:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "ck:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
    ] {
        assert_eq!(
            ContentKey::from_text(bad).unwrap_err().code(),
            "SEALED_MALFORMED_KEY",
            "{bad}"
        );
    }
    assert!(ContentKey::from_text("ck:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").is_ok());
    assert_eq!(format!("{k:?}"), "ContentKey(..)");
}

/// A writer that fails after `left` bytes.
struct FailingWriter {
    left: usize,
}
impl std::io::Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::other("disk full"));
        }
        let n = buf.len().min(self.left);
        self.left -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_failure_is_reported_not_hung() {
    // Many batches, so the failure happens while buffers are in flight.
    let pt = data(16 * TREE_LEAF_SIZE, 10);
    let sealed = seal(&pt, 1 << 20);
    for set in [DigestSet::SHA256, DigestSet::TREE, DigestSet::ALL] {
        for left in [0usize, 1, 3 * TREE_LEAF_SIZE + 5] {
            let mut w = FailingWriter { left };
            let r = open_stream(
                &key(),
                &mut &sealed[..],
                &mut w,
                OpenOptions {
                    digests: set,
                    hash_threads: 2,
                },
            );
            assert_eq!(r.unwrap_err().code(), "SEALED_WRITE_FAILED", "left {left}");
        }
    }
}
