//! PE parsing, Authenticode and UKI section reading without external tools.
#![allow(clippy::unwrap_used)]

mod common;

use common::build_uki;
use sha2::{Digest, Sha256};
use tl_measured_boot::pe::PeImage;
use tl_measured_boot::uki::{predict_pcr11, predict_uki, uki_sections};

fn sample() -> Vec<u8> {
    build_uki(&[
        (".linux", b"kernel bytes".as_slice()),
        (".osrel", b"ID=debian\n".as_slice()),
        (".cmdline", b"console=ttyS0".as_slice()),
        (".pcrsig", b"{}".as_slice()),
    ])
}

#[test]
fn reads_sections_without_padding() {
    let f = sample();
    let pe = PeImage::parse(&f).unwrap();
    let secs = uki_sections(&pe).unwrap();
    let names: Vec<&str> = secs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, [".linux", ".osrel", ".cmdline"]);
    assert_eq!(secs[0].1, b"kernel bytes");
    let p = predict_uki(&f).unwrap();
    let direct = predict_pcr11(&[
        (".cmdline", b"console=ttyS0".as_slice()),
        (".linux", b"kernel bytes".as_slice()),
        (".osrel", b"ID=debian\n".as_slice()),
    ])
    .unwrap();
    assert_eq!(p.pcr11.phases[3].sha256, direct.phases[3].sha256);
    assert_eq!(p.pcr11.phases[0].phase, "enter-initrd");
}

#[test]
fn pcr11_by_hand() {
    // PCR = H(PCR || H(data)) from zero, for ".linux\0", data, then "enter-initrd".
    let ext = |pcr: [u8; 32], d: &[u8]| -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(pcr);
        h.update(Sha256::digest(d));
        h.finalize().into()
    };
    let mut pcr = [0u8; 32];
    for d in [b".linux\0".as_slice(), b"K", b"enter-initrd"] {
        pcr = ext(pcr, d);
    }
    let p = predict_pcr11(&[(".linux", b"K")]).unwrap();
    assert_eq!(p.phases[0].sha256.0, pcr);
}

#[test]
fn authenticode_skips_checksum_and_covers_sections() {
    let f = sample();
    let base = PeImage::parse(&f).unwrap().authenticode_sha256().unwrap();
    // The CheckSum field is excluded.
    let mut c = f.clone();
    let opt = 0x44 + 20;
    c[opt + 64] ^= 0xff;
    assert_eq!(
        PeImage::parse(&c).unwrap().authenticode_sha256().unwrap(),
        base
    );
    // Section data is included.
    let mut d = f.clone();
    let last = d.len() - 0x200;
    d[last] ^= 1;
    assert_ne!(
        PeImage::parse(&d).unwrap().authenticode_sha256().unwrap(),
        base
    );
    // Trailing data after the sections is included.
    let mut t = f.clone();
    t.extend_from_slice(b"trailer");
    assert_ne!(
        PeImage::parse(&t).unwrap().authenticode_sha256().unwrap(),
        base
    );
}

#[test]
fn malformed_pe() {
    let f = sample();
    assert_eq!(PeImage::parse(b"XX").unwrap_err().code(), "PE_NO_MZ");
    assert_eq!(
        PeImage::parse(&f[..0x50]).unwrap_err().code(),
        "PE_TRUNCATED"
    );
    let mut m = f.clone();
    m[0x40] = b'X';
    assert_eq!(PeImage::parse(&m).unwrap_err().code(), "PE_NO_SIGNATURE");
    let mut m = f.clone();
    m[0x44 + 20] = 0x99;
    assert_eq!(PeImage::parse(&m).unwrap_err().code(), "PE_BAD_MAGIC");
    // A section pointing past the end of the file.
    assert_eq!(
        PeImage::parse(&f[..f.len() - 0x200]).unwrap_err().code(),
        "PE_SECTION_OUT_OF_FILE"
    );
    assert_eq!(
        predict_pcr11(&[(".text", b"x".as_slice())])
            .unwrap_err()
            .code(),
        "UKI_UNKNOWN_SECTION"
    );
    assert_eq!(
        predict_pcr11(&[(".linux", b"x".as_slice()), (".linux", b"y".as_slice())])
            .unwrap_err()
            .code(),
        "UKI_DUPLICATE_SECTION"
    );
}

proptest::proptest! {
    #[test]
    fn random_pe_bytes_never_panic(at in 0usize..0x400, v in proptest::prelude::any::<u8>(), cut in 0usize..0x1200) {
        let mut f = sample();
        let at = at % f.len();
        f[at] = v;
        f.truncate(cut.min(f.len()));
        if let Ok(pe) = PeImage::parse(&f) {
            let _ = pe.authenticode_sha384();
            let _ = uki_sections(&pe);
        }
        let _ = predict_uki(&f);
    }
}
