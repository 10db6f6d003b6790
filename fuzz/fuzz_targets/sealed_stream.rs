//! The sealed component format and key grants, opened with a fixed key:
//! hostile ciphertext must give an error, never a panic or partial success.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tl_seal::{open_stream, parse_grant, ContentKey, DigestSet, OpenOptions};

fuzz_target!(|data: &[u8]| {
    let key = ContentKey::from_bytes([7u8; 32]);
    let mut out = Vec::new();
    let _ = open_stream(
        &key,
        &mut &data[..],
        &mut out,
        OpenOptions {
            digests: DigestSet {
                sha256: true,
                sha384: true,
                tree_sha256: true,
            },
            hash_threads: 1,
        },
    );
    let _ = parse_grant(data);
});
