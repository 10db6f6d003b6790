//! OVMF footer table, SEV and TDVF metadata parsing: valid and malformed inputs.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use tl_measured_boot::ovmf::{
    Guid, OvmfImage, SevSectionType, TdvfSectionType, FOOTER_TABLE_GUID, SEV_ES_RESET_BLOCK_GUID,
    SEV_METADATA_GUID, TDVF_METADATA_GUID,
};
use tl_measured_boot::snp::{snp_launch_digest, SnpInputs, VmmType};
use tl_measured_boot::tdx::{mrtd, PageAddOrder};

const AMDSEV: &[u8] = include_bytes!("data/virtee-sev/ovmf_AmdSev_suffix.bin");

/// An image of `size` bytes whose footer table holds `entries` (first entry lowest).
fn image_with(size: usize, entries: &[(Guid, Vec<u8>)]) -> Vec<u8> {
    let mut table = Vec::new();
    for (g, d) in entries {
        table.extend_from_slice(d);
        table.extend_from_slice(&((d.len() + 18) as u16).to_le_bytes());
        table.extend_from_slice(&g.0);
    }
    table.extend_from_slice(&((table.len() + 18) as u16).to_le_bytes());
    table.extend_from_slice(&FOOTER_TABLE_GUID.0);
    let mut img = vec![0xffu8; size];
    let end = size - 32;
    img[end - table.len()..end].copy_from_slice(&table);
    img
}

fn put(img: &mut [u8], at: usize, b: &[u8]) {
    img[at..at + b.len()].copy_from_slice(b);
}

/// A 16 KiB image with SEV metadata at 0x1000 holding `items` {gpa, size, type}.
fn sev_image(items: &[(u32, u32, u32)]) -> Vec<u8> {
    let size = 0x4000;
    let mut img = image_with(
        size,
        &[
            (
                SEV_ES_RESET_BLOCK_GUID,
                0xffff_f000u32.to_le_bytes().to_vec(),
            ),
            (
                SEV_METADATA_GUID,
                ((size - 0x1000) as u32).to_le_bytes().to_vec(),
            ),
        ],
    );
    let mut m = b"ASEV".to_vec();
    m.extend_from_slice(&((16 + 12 * items.len()) as u32).to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (g, s, t) in items {
        for v in [g, s, t] {
            m.extend_from_slice(&v.to_le_bytes());
        }
    }
    put(&mut img, 0x1000, &m);
    img
}

/// {data_offset, raw_size, mem_addr, mem_size, type, attributes}
type Sec = (u32, u32, u64, u64, u32, u32);

/// A 16 KiB image with TDVF metadata at 0x800 holding `secs`.
fn tdvf_image(secs: &[Sec]) -> Vec<u8> {
    let size = 0x4000;
    let mut img = image_with(
        size,
        &[(
            TDVF_METADATA_GUID,
            ((size - 0x800) as u32).to_le_bytes().to_vec(),
        )],
    );
    for (i, b) in img[0x1000..0x3000].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    let mut m = b"TDVF".to_vec();
    m.extend_from_slice(&((16 + 32 * secs.len()) as u32).to_le_bytes());
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&(secs.len() as u32).to_le_bytes());
    for (off, raw, addr, msize, ty, attr) in secs {
        m.extend_from_slice(&off.to_le_bytes());
        m.extend_from_slice(&raw.to_le_bytes());
        m.extend_from_slice(&addr.to_le_bytes());
        m.extend_from_slice(&msize.to_le_bytes());
        m.extend_from_slice(&ty.to_le_bytes());
        m.extend_from_slice(&attr.to_le_bytes());
    }
    put(&mut img, 0x800, &m);
    img
}

const GOOD_TDVF: &[Sec] = &[
    (0x1000, 0x2000, 0xffc0_0000, 0x2000, 0, 1),
    (0, 0, 0x80_0000, 0x3000, 3, 0),
    (0, 0, 0x80_3000, 0x1000, 2, 0),
];

fn sev_err(items: &[(u32, u32, u32)]) -> &'static str {
    let img = sev_image(items);
    OvmfImage::parse(&img)
        .unwrap()
        .sev_metadata()
        .unwrap_err()
        .code()
}

fn tdvf_err(secs: &[Sec]) -> &'static str {
    let img = tdvf_image(secs);
    OvmfImage::parse(&img)
        .unwrap()
        .tdvf_metadata()
        .unwrap_err()
        .code()
}

#[test]
fn valid_sev_metadata() {
    let img = sev_image(&[
        (0x80_0000, 0x9000, 1),
        (0x80_9000, 0x1000, 2),
        (0x80_a000, 0x1000, 3),
    ]);
    let o = OvmfImage::parse(&img).unwrap();
    assert_eq!(o.footer().entries().len(), 2);
    assert_eq!(o.sev_es_reset_eip().unwrap(), Some(0xffff_f000));
    let m = o.sev_metadata().unwrap().unwrap();
    let kinds: Vec<_> = m.sections.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            SevSectionType::SnpSecMem,
            SevSectionType::SnpSecrets,
            SevSectionType::Cpuid
        ]
    );
    assert!(o.tdvf_metadata().unwrap().is_none());
}

#[test]
fn amdsev_suffix_has_expected_metadata() {
    let o = OvmfImage::parse(AMDSEV).unwrap();
    let m = o.sev_metadata().unwrap().unwrap();
    assert!(m.has(SevSectionType::SnpKernelHashes));
    assert!(o.sev_hashes_table_gpa().unwrap().is_some());
}

#[test]
fn footer_errors() {
    assert_eq!(
        OvmfImage::parse(&[0u8; 49]).unwrap_err().code(),
        "OVMF_TRUNCATED"
    );
    assert_eq!(
        OvmfImage::parse(&[0u8; 4096]).unwrap_err().code(),
        "OVMF_NO_FOOTER_TABLE"
    );
    // Truncating the tail moves the footer: no table any more.
    assert_eq!(
        OvmfImage::parse(&AMDSEV[..AMDSEV.len() - 16])
            .unwrap_err()
            .code(),
        "OVMF_NO_FOOTER_TABLE"
    );
    // Footer length reaching before the image.
    let mut img = image_with(256, &[]);
    put(&mut img, 256 - 32 - 18, &0xfff0u16.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img).unwrap_err().code(),
        "OVMF_BAD_FOOTER_LENGTH"
    );
    // Footer length shorter than its own header.
    put(&mut img, 256 - 32 - 18, &3u16.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img).unwrap_err().code(),
        "OVMF_BAD_FOOTER_LENGTH"
    );
    // Entry length larger than the table.
    let mut img = image_with(512, &[(SEV_METADATA_GUID, vec![0; 4])]);
    put(&mut img, 512 - 32 - 18 - 18, &200u16.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img).unwrap_err().code(),
        "OVMF_BAD_ENTRY_LENGTH"
    );
    // Duplicate entry.
    let img = image_with(
        512,
        &[
            (SEV_METADATA_GUID, vec![0; 4]),
            (SEV_METADATA_GUID, vec![1; 4]),
        ],
    );
    assert_eq!(
        OvmfImage::parse(&img).unwrap_err().code(),
        "OVMF_DUPLICATE_ENTRY"
    );
    // Entry too short for the u32 read from it.
    let img = image_with(512, &[(SEV_ES_RESET_BLOCK_GUID, vec![0; 2])]);
    let o = OvmfImage::parse(&img).unwrap();
    assert_eq!(
        o.sev_es_reset_eip().unwrap_err().code(),
        "OVMF_ENTRY_TOO_SHORT"
    );
}

#[test]
fn sev_metadata_errors() {
    assert_eq!(
        sev_err(&[(0x80_0000, 0x1000, 7)]),
        "SEV_METADATA_UNKNOWN_SECTION_TYPE"
    );
    assert_eq!(
        sev_err(&[(0x80_0800, 0x1000, 1)]),
        "SEV_METADATA_BAD_SECTION"
    );
    assert_eq!(
        sev_err(&[(0x80_0000, 0x800, 1)]),
        "SEV_METADATA_BAD_SECTION"
    );
    assert_eq!(
        sev_err(&[(0xffff_f000, 0x2000, 1)]),
        "SEV_METADATA_BAD_SECTION"
    );
    assert_eq!(
        sev_err(&[
            (0, 0x0800_0000, 1),
            (0x1000_0000, 0x0800_0000, 1),
            (0x2000_0000, 0x1000, 4)
        ]),
        "SEV_METADATA_TOO_LARGE"
    );
    let mut img = sev_image(&[(0x80_0000, 0x1000, 1)]);
    put(&mut img, 0x1000, b"XSEV");
    assert_eq!(
        OvmfImage::parse(&img)
            .unwrap()
            .sev_metadata()
            .unwrap_err()
            .code(),
        "SEV_METADATA_BAD_SIGNATURE"
    );
    let mut img = sev_image(&[(0x80_0000, 0x1000, 1)]);
    put(&mut img, 0x1008, &2u32.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img)
            .unwrap()
            .sev_metadata()
            .unwrap_err()
            .code(),
        "SEV_METADATA_BAD_VERSION"
    );
    // Item count larger than the header size allows.
    let mut img = sev_image(&[(0x80_0000, 0x1000, 1)]);
    put(&mut img, 0x100c, &1000u32.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img)
            .unwrap()
            .sev_metadata()
            .unwrap_err()
            .code(),
        "SEV_METADATA_OUT_OF_BOUNDS"
    );
    // Offset from the end larger than the image.
    let img = image_with(
        0x1000,
        &[(SEV_METADATA_GUID, 0x2000u32.to_le_bytes().to_vec())],
    );
    assert_eq!(
        OvmfImage::parse(&img)
            .unwrap()
            .sev_metadata()
            .unwrap_err()
            .code(),
        "SEV_METADATA_OUT_OF_BOUNDS"
    );
    // Unknown SEV section types also fail the launch digest.
    let img = sev_image(&[(0x80_0000, 0x1000, 9)]);
    let e = snp_launch_digest(&SnpInputs {
        ovmf: &img,
        kernel: None,
        initrd: None,
        append: None,
        vcpus: 1,
        vcpu_sig: 0x800f12,
        guest_features: 1,
        vmm: VmmType::Qemu,
        ovmf_hash: None,
    })
    .unwrap_err();
    assert_eq!(e.code(), "SEV_METADATA_UNKNOWN_SECTION_TYPE");
}

#[test]
fn valid_tdvf_and_both_orders() {
    let img = tdvf_image(GOOD_TDVF);
    let m = OvmfImage::parse(&img)
        .unwrap()
        .tdvf_metadata()
        .unwrap()
        .unwrap();
    assert_eq!(m.sections.len(), 3);
    assert_eq!(m.sections[0].kind, TdvfSectionType::Bfv);
    assert!(m.sections[0].mr_extend());
    let single = mrtd(&img, PageAddOrder::SinglePass).unwrap();
    let two = mrtd(&img, PageAddOrder::TwoPass).unwrap();
    // Two extended pages: the orders differ.
    assert_ne!(single.mrtd, two.mrtd);
    // With one extended page the orders coincide.
    let one_page = tdvf_image(&[(0x1000, 0x1000, 0xffc0_0000, 0x1000, 0, 1)]);
    assert_eq!(
        mrtd(&one_page, PageAddOrder::SinglePass).unwrap().mrtd,
        mrtd(&one_page, PageAddOrder::TwoPass).unwrap().mrtd
    );
    // Changing one measured byte changes MRTD; changing an unmeasured one does not.
    let mut flipped = img.clone();
    flipped[0x1800] ^= 1;
    assert_ne!(
        mrtd(&flipped, PageAddOrder::SinglePass).unwrap().mrtd,
        single.mrtd
    );
    let mut outside = img.clone();
    outside[0x3800] ^= 1;
    assert_eq!(
        mrtd(&outside, PageAddOrder::SinglePass).unwrap().mrtd,
        single.mrtd
    );
}

#[test]
fn tdvf_errors() {
    let with = |i: usize, f: &dyn Fn(&mut Sec)| {
        let mut v = GOOD_TDVF.to_vec();
        f(&mut v[i]);
        tdvf_err(&v)
    };
    assert_eq!(with(0, &|s| s.0 = 0x3800), "TDVF_SECTION_OUT_OF_FILE");
    assert_eq!(with(0, &|s| s.1 = 0x3000), "TDVF_MEMORY_SMALLER_THAN_RAW");
    assert_eq!(with(1, &|s| s.2 = 0x80_0800), "TDVF_SECTION_UNALIGNED");
    assert_eq!(with(1, &|s| s.3 = 0x1800), "TDVF_SECTION_UNALIGNED");
    assert_eq!(
        with(1, &|s| s.2 = u64::MAX - 0xfff),
        "TDVF_SECTION_UNALIGNED"
    );
    assert_eq!(with(2, &|s| s.2 = 0x80_2000), "TDVF_SECTION_OVERLAP");
    assert_eq!(with(2, &|s| s.4 = 9), "TDVF_UNKNOWN_SECTION_TYPE");
    assert_eq!(with(2, &|s| s.5 = 4), "TDVF_UNKNOWN_ATTRIBUTES");
    let mut img = tdvf_image(GOOD_TDVF);
    put(&mut img, 0x808, &2u32.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img)
            .unwrap()
            .tdvf_metadata()
            .unwrap_err()
            .code(),
        "TDVF_BAD_VERSION"
    );
    let mut img = tdvf_image(GOOD_TDVF);
    put(&mut img, 0x800, b"TDVX");
    assert_eq!(
        OvmfImage::parse(&img)
            .unwrap()
            .tdvf_metadata()
            .unwrap_err()
            .code(),
        "TDVF_BAD_SIGNATURE"
    );
    let mut img = tdvf_image(GOOD_TDVF);
    put(&mut img, 0x804, &0x10_0000u32.to_le_bytes());
    assert_eq!(
        OvmfImage::parse(&img)
            .unwrap()
            .tdvf_metadata()
            .unwrap_err()
            .code(),
        "TDVF_METADATA_OUT_OF_BOUNDS"
    );
    // A huge non-AUG section is refused before any hashing.
    let huge = tdvf_image(&[(0, 0, 0, 1 << 40, 4, 0)]);
    assert_eq!(
        mrtd(&huge, PageAddOrder::SinglePass).unwrap_err().code(),
        "TDX_TOO_MANY_PAGES"
    );
    // No TDVF metadata at all.
    let sev_only = sev_image(&[(0x80_0000, 0x1000, 1)]);
    assert_eq!(
        mrtd(&sev_only, PageAddOrder::SinglePass)
            .unwrap_err()
            .code(),
        "TDX_NO_TDVF_METADATA"
    );
    // The AmdSev suffix carries TDVF metadata whose raw data lies in the part of the
    // image that the 4 KiB suffix cut off.
    assert_eq!(
        mrtd(AMDSEV, PageAddOrder::SinglePass).unwrap_err().code(),
        "TDVF_SECTION_OUT_OF_FILE"
    );
}

fn exercise(img: &[u8]) {
    if let Ok(o) = OvmfImage::parse(img) {
        let _ = o.sev_metadata();
        let _ = o.tdvf_metadata();
        let _ = o.sev_es_reset_eip();
        let _ = o.sev_hashes_table_gpa();
    }
    let _ = snp_launch_digest(&SnpInputs {
        ovmf: img,
        kernel: Some(b"k"),
        initrd: None,
        append: None,
        vcpus: 2,
        vcpu_sig: 0x800f12,
        guest_features: 1,
        vmm: VmmType::Qemu,
        ovmf_hash: Some([0; 48]),
    });
    let _ = mrtd(img, PageAddOrder::TwoPass);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&data);
    }

    #[test]
    fn truncated_suffix_never_panics(cut in 0usize..4096, front in any::<bool>()) {
        let img = if front { &AMDSEV[cut..] } else { &AMDSEV[..cut] };
        exercise(img);
    }

    #[test]
    fn flipped_bytes_never_panic(at in 3500usize..4096, v in any::<u8>(), tdvf in any::<bool>()) {
        let mut img = if tdvf { tdvf_image(GOOD_TDVF) } else { AMDSEV.to_vec() };
        let at = at % img.len();
        let at = if tdvf { 0x800 + at % 0x80 } else { at };
        img[at] = v;
        exercise(&img);
    }

    #[test]
    fn random_tdvf_sections_never_panic(
        secs in proptest::collection::vec(
            (0u32..0x5000, 0u32..0x5000, any::<u64>(), 0u64..0x10_0000, 0u32..10, 0u32..4), 0..5)
    ) {
        let v: Vec<Sec> = secs;
        let img = tdvf_image(&v);
        exercise(&img);
    }
}
