//! SEV-SNP reports from real machines (shared test data, see MANIFEST.md),
//! verified with the AMD roots shipped in `roots/amd/`.

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::claims::{TcbStatus, TeeKind};
use tl_evidence::snp::certs::AmdCert;
use tl_evidence::snp::report::{
    build_cert_table, offset, CertKind, SnpReport, TcbLayout, TcbVersion, SIGNED_LEN,
};
use tl_evidence::snp::{
    check_chip_id, check_tcb, verify_snp_evidence, GuestPolicy, LeafExtensions, LeafKind, Product,
    SnpAppraisal, SnpFinding, VcekCacheKey,
};
use tl_evidence::verify::{verify_bundle, AnchorKind, TrustAnchors, VerifyOptions};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/sev-snp/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
}

fn pem_ders(rel: &str) -> Vec<Vec<u8>> {
    use base64::Engine;
    let s = String::from_utf8(read(rel)).expect("PEM is text");
    s.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|b| {
            let body: String = b
                .split("-----END CERTIFICATE-----")
                .next()
                .expect("block")
                .split_whitespace()
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .expect("base64")
        })
        .collect()
}

fn report_milan_hex() -> Vec<u8> {
    let s = String::from_utf8(read("virtee-sev/report_milan.hex")).expect("text");
    let h: String = s.split_whitespace().collect();
    hex::decode(h).expect("hex")
}

/// 2022-09-24T01:00:00Z (go-sev-guest verify_test.go).
const T_GO: u64 = 1_663_981_200;
/// 2025-06-01T00:00:00Z: inside every leaf's validity, before the VLEK expires.
const T_2025: u64 = 1_748_736_000;
/// 2023-05-01T00:00:00Z.
const T_2023: u64 = 1_682_899_200;

fn none() -> TrustAnchors {
    TrustAnchors::default()
}

struct Case {
    name: &'static str,
    report: Vec<u8>,
    chain: Vec<Vec<u8>>,
    now: u64,
    product: Product,
    kind: LeafKind,
    version: u32,
    measurement: &'static str,
    report_data_prefix: &'static str,
    chip_id_prefix: &'static str,
    policy: u64,
    vmpl: u32,
    /// (bootloader, tee, snp, microcode)
    tcb: (u8, u8, u8, u8),
    debug: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "go-sev-guest attestation.bin",
            report: read("go-sev-guest/attestation.bin"),
            chain: vec![read("go-sev-guest/vcek.testcer")],
            now: T_GO,
            product: Product::Milan,
            kind: LeafKind::Vcek,
            version: 2,
            measurement: "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01",
            report_data_prefix: "0102030405000000",
            chip_id_prefix: "3ac3fe21e13fb099",
            policy: 0xb0000,
            vmpl: 0,
            tcb: (2, 0, 5, 68),
            debug: true,
        },
        Case {
            name: "virtee report_milan.hex",
            report: report_milan_hex(),
            chain: vec![read("virtee-sev/vcek_milan.der")],
            now: T_2023,
            product: Product::Milan,
            kind: LeafKind::Vcek,
            version: 2,
            measurement: "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f",
            report_data_prefix: "d447b55d",
            chip_id_prefix: "d49554ec717f4e5b",
            policy: 0x30000,
            vmpl: 0,
            tcb: (3, 0, 8, 115),
            debug: false,
        },
        Case {
            name: "trustee test-report.bin",
            report: read("trustee/test-report.bin"),
            chain: vec![read("trustee/test-vcek.der")],
            now: T_2025,
            product: Product::Milan,
            kind: LeafKind::Vcek,
            version: 2,
            measurement: "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c",
            report_data_prefix: "ec6c52d7533cc2c4",
            chip_id_prefix: "c38427a30d4c7af9",
            policy: 0x3001f,
            vmpl: 0,
            tcb: (3, 0, 8, 115),
            debug: false,
        },
        Case {
            name: "trustee test-vlek-report.bin",
            report: read("trustee/test-vlek-report.bin"),
            chain: vec![read("trustee/test-vlek.der")],
            now: T_2025,
            product: Product::Milan,
            kind: LeafKind::Vlek,
            version: 3,
            measurement: "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0",
            report_data_prefix: "819770b7e6ea6df8",
            chip_id_prefix: "0000000000000000",
            policy: 0x30000,
            vmpl: 1,
            tcb: (4, 0, 24, 217),
            debug: false,
        },
        Case {
            name: "trustee e2e_evidence_report.bin (Genoa)",
            report: read("trustee/e2e_evidence_report.bin"),
            chain: vec![read("trustee/e2e_evidence_vcek.der")],
            now: T_2025 + 86_400 * 30,
            product: Product::Genoa,
            kind: LeafKind::Vcek,
            version: 3,
            measurement: "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e",
            report_data_prefix: "7e7320889600c7ac",
            chip_id_prefix: "371c55d6d15cb50f",
            policy: 0x30000,
            vmpl: 0,
            tcb: (10, 0, 23, 25),
            debug: false,
        },
    ]
}

#[test]
fn every_real_report_verifies_with_manifest_fields() {
    for c in cases() {
        let v = verify_snp_evidence(&c.report, &c.chain, &[], &none(), c.now)
            .unwrap_or_else(|e| panic!("{}: {e} ({})", c.name, e.code()));
        let r = &v.report;
        assert_eq!(v.product, c.product, "{}", c.name);
        assert_eq!(v.leaf_kind, c.kind, "{}", c.name);
        assert_eq!(v.anchor, AnchorKind::Amd, "{}", c.name);
        assert_eq!(r.version, c.version, "{}", c.name);
        assert_eq!(hex::encode(r.measurement), c.measurement, "{}", c.name);
        assert!(
            hex::encode(r.report_data).starts_with(c.report_data_prefix),
            "{}",
            c.name
        );
        assert!(
            hex::encode(r.chip_id).starts_with(c.chip_id_prefix),
            "{}",
            c.name
        );
        assert_eq!(r.policy, c.policy, "{}", c.name);
        assert_eq!(r.vmpl, c.vmpl, "{}", c.name);
        let t = r.reported_tcb.parts(TcbLayout::MilanGenoa);
        assert_eq!(
            (t.bootloader, t.tee, t.snp, t.microcode),
            c.tcb,
            "{}",
            c.name
        );
        assert_eq!(GuestPolicy(r.policy).debug(), c.debug, "{}", c.name);

        // Also through verify_bundle, with the full chain supplied.
        let roots = tl_evidence::snp::certs::AmdRoots::get(c.product).expect("roots");
        let signer = roots.signer(c.kind);
        let mut full = c.chain.clone();
        full.push(signer.der().to_vec());
        full.push(roots.ark.der().to_vec());
        let bundle = EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::SnpReport,
            quote: c.report.clone(),
            certificates: full.clone(),
        });
        let ve = verify_bundle(&bundle, &VerifyOptions::new(c.now, none()))
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(ve.claims.tee, TeeKind::SevSnp);
        assert!(!ve.claims.simulated);
        assert_eq!(ve.claims.debug, c.debug);
        assert_eq!(ve.claims.tcb_status, TcbStatus::NotApplicable);
        assert_eq!(ve.claims.report_data, r.report_data);
        let s = ve.claims.snp.as_ref().expect("snp claims");
        assert_eq!(s.measurement, r.measurement);
        assert_eq!(s.reported_tcb, r.reported_tcb.0);
        assert_eq!(s.committed_tcb, r.committed_tcb.0);
        assert_eq!(s.vmpl, c.vmpl);

        // And from an extended-report certificate table instead of the list.
        let leaf_kind = match c.kind {
            LeafKind::Vcek => CertKind::Vcek,
            LeafKind::Vlek => CertKind::Vlek,
        };
        let table = build_cert_table(&[
            (leaf_kind, &full[0]),
            (CertKind::Ask, &full[1]),
            (CertKind::Ark, &full[2]),
        ]);
        let mut ext = c.report.clone();
        ext.extend_from_slice(&table);
        verify_snp_evidence(&ext, &[], &[], &none(), c.now)
            .unwrap_or_else(|e| panic!("{} via table: {e}", c.name));
    }
}

#[test]
fn debug_policy_report_is_rejected_by_default_appraisal() {
    let c = &cases()[0];
    let v = verify_snp_evidence(&c.report, &c.chain, &[], &none(), c.now).expect("verifies");
    let claims = tl_evidence::snp::snp_claims(&v);
    assert!(claims.debug);
    let f = SnpAppraisal::default().appraise(&claims);
    assert!(f.contains(&SnpFinding::Debug), "{f:?}");
    assert_eq!(SnpFinding::Debug.code(), "SNP_POLICY_DEBUG");
    // A non-debug report passes the default appraisal.
    let c = &cases()[1];
    let v = verify_snp_evidence(&c.report, &c.chain, &[], &none(), c.now).expect("verifies");
    assert_eq!(
        SnpAppraisal::default().appraise(&tl_evidence::snp::snp_claims(&v)),
        vec![]
    );
}

#[test]
fn virtee_bit_flip_is_rejected() {
    let c = &cases()[1];
    let mut r = c.report.clone();
    r[21] ^= 0x80;
    let e = verify_snp_evidence(&r, &c.chain, &[], &none(), c.now).expect_err("flip");
    assert_eq!(e.code(), "SNP_REPORT_SIGNATURE");
}

#[test]
fn flipping_any_signed_byte_is_rejected() {
    let c = &cases()[2];
    for i in 0..SIGNED_LEN {
        let mut r = c.report.clone();
        r[i] ^= 0x01;
        let e = verify_snp_evidence(&r, &c.chain, &[], &none(), c.now).expect_err("flip");
        // Flips in the version or key-selector words may make the report
        // unparseable or redirect it to another key kind first; every other
        // flip must break the signature.
        let ok = match i {
            // Version 3 makes the (zero) CPUID bytes count.
            0..=3 => ["EVIDENCE_UNSUPPORTED", "SNP_UNKNOWN_PRODUCT"].contains(&e.code()),
            0x48..=0x4b => [
                "SNP_REPORT_SIGNATURE",
                "SNP_REPORT_MALFORMED",
                "SNP_REPORT_UNSIGNED",
                "SNP_VLEK_VCEK_MISMATCH",
            ]
            .contains(&e.code()),
            0x34..=0x37 => e.code() == "SNP_REPORT_MALFORMED",
            _ => e.code() == "SNP_REPORT_SIGNATURE",
        };
        assert!(ok, "byte {i:#x}: {} ({e})", e.code());
    }
    // Flipping the signature itself.
    let mut r = c.report.clone();
    r[offset::SIGNATURE_R] ^= 1;
    assert_eq!(
        verify_snp_evidence(&r, &c.chain, &[], &none(), c.now)
            .expect_err("sig")
            .code(),
        "SNP_REPORT_SIGNATURE"
    );
    // Trustee's corruptions at 42 and 384.
    for i in [42, 384] {
        let mut r = c.report.clone();
        r[i] = r[i].wrapping_add(1);
        assert!(verify_snp_evidence(&r, &c.chain, &[], &none(), c.now).is_err());
    }
}

#[test]
fn wrong_product_chain_is_rejected() {
    let milan_vcek = read("trustee/test-vcek.der");
    let genoa = pem_ders("go-sev-guest/ask_ark_genoa.pem");
    let r = read("trustee/test-report.bin");
    // Milan VCEK presented with Genoa's ASK and ARK.
    let chain = vec![milan_vcek.clone(), genoa[0].clone(), genoa[1].clone()];
    let e = verify_snp_evidence(&r, &chain, &[], &none(), T_2025).expect_err("wrong chain");
    assert_eq!(e.code(), "SNP_WRONG_PRODUCT_CHAIN");
    // A Genoa (CPUID) report presented with a Milan VCEK.
    let g = read("trustee/e2e_evidence_report.bin");
    let e = verify_snp_evidence(&g, &[milan_vcek], &[], &none(), T_2025).expect_err("wrong");
    assert_eq!(e.code(), "SNP_WRONG_PRODUCT_CHAIN");
    // A Milan v2 report (no CPUID) with the Genoa VCEK: the signature fails.
    let e = verify_snp_evidence(
        &r,
        &[read("trustee/e2e_evidence_vcek.der")],
        &[],
        &none(),
        T_2025 + 86_400 * 30,
    )
    .expect_err("wrong key");
    assert_eq!(e.code(), "SNP_REPORT_SIGNATURE");
}

#[test]
fn vlek_and_vcek_are_not_interchangeable() {
    let vlek_report = read("trustee/test-vlek-report.bin");
    let e = verify_snp_evidence(
        &vlek_report,
        &[read("trustee/test-vcek.der")],
        &[],
        &none(),
        T_2025,
    )
    .expect_err("VLEK report, VCEK chain");
    assert_eq!(e.code(), "SNP_VLEK_VCEK_MISMATCH");
    let vcek_report = read("trustee/test-report.bin");
    let e = verify_snp_evidence(
        &vcek_report,
        &[read("trustee/test-vlek.der")],
        &[],
        &none(),
        T_2025,
    )
    .expect_err("VCEK report, VLEK chain");
    assert_eq!(e.code(), "SNP_VLEK_VCEK_MISMATCH");
    // A VLEK presented with the ASK (not the ASVK).
    let milan = pem_ders("go-sev-guest/ask_ark_milan.pem");
    let e = verify_snp_evidence(
        &vlek_report,
        &[read("trustee/test-vlek.der"), milan[0].clone()],
        &[],
        &none(),
        T_2025,
    )
    .expect_err("VLEK with ASK");
    assert_eq!(e.code(), "SNP_VLEK_VCEK_MISMATCH");
}

#[test]
fn tcb_and_chip_id_comparisons() {
    let vcek = AmdCert::parse(&read("trustee/test-vcek.der")).expect("parses");
    let ext = LeafExtensions::parse(&vcek).expect("extensions");
    let r = SnpReport::parse(&read("trustee/test-report.bin")).expect("report");
    check_tcb(r.reported_tcb, Product::Milan, &ext).expect("matches");
    // CURRENT_TCB (ucode 206) is not the VCEK's TCB.
    assert_eq!(
        check_tcb(r.current_tcb, Product::Milan, &ext)
            .expect_err("current")
            .code(),
        "SNP_TCB_MISMATCH"
    );
    for byte in [0usize, 1, 6, 7] {
        let mut b = r.reported_tcb.0.to_le_bytes();
        b[byte] ^= 1;
        let e = check_tcb(TcbVersion(u64::from_le_bytes(b)), Product::Milan, &ext)
            .expect_err("changed");
        assert_eq!(e.code(), "SNP_TCB_MISMATCH");
    }
    check_chip_id(&r.chip_id, Product::Milan, &ext).expect("chip id");
    let mut other = r.chip_id;
    other[63] ^= 1;
    assert_eq!(
        check_chip_id(&other, Product::Milan, &ext)
            .expect_err("chip")
            .code(),
        "SNP_CHIP_ID_MISMATCH"
    );
    // Through the verifier: another chip's VCEK for the same TCB.
    let key = VcekCacheKey::new(Product::Milan, &r.chip_id, r.reported_tcb);
    assert_eq!(
        key.kds_path(),
        "vcek/v1/Milan/c38427a30d4c7af9d96f7a15b97269825a64cb76a2352ffd5d18115d89ad473f8e8c0bcd9a5d9286612bad4aadfb4426205a3b9e4fea82301135a170e477524e?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115"
    );
    assert!(key.file_name().starts_with("vcek-milan-c38427a3"));
}

#[test]
fn turin_vcek_chains_and_has_fmc_and_short_hwid() {
    let turin = read("virtee-sev/vcek_turin.der");
    let chain_pem = pem_ders("virtee-sev/cert_chain_turin");
    let now = 1_748_736_000;
    let mut chain = vec![turin.clone()];
    chain.extend(chain_pem);
    let leaf = tl_evidence::snp::verify_leaf_chain(&chain, &[], &none(), now).expect("Turin chain");
    assert_eq!(leaf.product, Product::Turin);
    assert_eq!(leaf.kind, LeafKind::Vcek);
    let e = &leaf.extensions;
    assert_eq!(e.fmc_spl, Some(0));
    assert_eq!(e.ucode_spl, Some(9));
    assert_eq!(e.hw_id.as_deref().map(<[u8]>::len), Some(8));
    assert_eq!(e.product_name.as_deref(), Some("Turin"));
    // TCB comparison uses Turin's layout.
    let tcb = TcbVersion::from_parts(
        tl_evidence::snp::TcbParts {
            fmc: Some(0),
            bootloader: e.bl_spl.expect("bl"),
            tee: e.tee_spl.expect("tee"),
            snp: e.snp_spl.expect("snp"),
            microcode: 9,
        },
        TcbLayout::Turin,
    );
    check_tcb(tcb, Product::Turin, e).expect("Turin layout");
    // The SNP SPL sits in byte 3 on Turin (byte 6 on Milan/Genoa).
    let moved = TcbVersion(tcb.0 | 1 << 48);
    assert_eq!(
        check_tcb(moved, Product::Turin, e)
            .expect_err("byte 6 reserved on Turin")
            .code(),
        "SNP_TCB_MISMATCH"
    );
    let mut no_fmc = e.clone();
    no_fmc.fmc_spl = None;
    assert_eq!(
        check_tcb(tcb, Product::Turin, &no_fmc)
            .expect_err("fmc")
            .code(),
        "SNP_CERT_EXTENSION"
    );
    let mut chip = [0u8; 64];
    chip[..8].copy_from_slice(e.hw_id.as_deref().expect("hwid"));
    check_chip_id(&chip, Product::Turin, e).expect("8-byte hwID");
    assert!(VcekCacheKey::new(Product::Turin, &chip, tcb)
        .kds_path()
        .contains("fmcSPL=0&blSPL="));
}

#[test]
fn trustee_invalid_vceks_parse_but_do_not_chain() {
    for (f, ucode) in [
        ("trustee/test-vcek-invalid-legacy.der", 169),
        ("trustee/test-vcek-invalid-new.der", 30),
    ] {
        let c = AmdCert::parse(&read(f)).expect("parses");
        let ext = LeafExtensions::parse(&c).expect("extensions parse");
        assert_eq!(ext.ucode_spl, Some(ucode), "{f}");
        let hw: Vec<u8> = (0u8..64).collect();
        assert_eq!(ext.hw_id.as_deref(), Some(hw.as_slice()), "{f}");
        let e = tl_evidence::snp::verify_leaf_chain(&[read(f)], &[], &none(), T_2025)
            .expect_err("altered VCEK");
        assert_eq!(e.code(), "SNP_VCEK_CHAIN", "{f}");
        // Against the report of the real chip: hwID and TCB differ.
        let r = SnpReport::parse(&read("trustee/test-report.bin")).expect("report");
        assert_eq!(
            check_chip_id(&r.chip_id, Product::Milan, &ext)
                .expect_err("hwid")
                .code(),
            "SNP_CHIP_ID_MISMATCH"
        );
        assert_eq!(
            check_tcb(r.reported_tcb, Product::Milan, &ext)
                .expect_err("tcb")
                .code(),
            "SNP_TCB_MISMATCH"
        );
    }
}

#[test]
fn validity_is_checked_at_now() {
    let c = &cases()[3]; // VLEK, expires 2025-12-10
    let e =
        verify_snp_evidence(&c.report, &c.chain, &[], &none(), 1_767_225_600).expect_err("2026");
    assert_eq!(e.code(), "CERT_EXPIRED");
    let e =
        verify_snp_evidence(&c.report, &c.chain, &[], &none(), 1_700_000_000).expect_err("2023");
    assert_eq!(e.code(), "CERT_NOT_YET_VALID");
}

#[test]
fn shipped_roots_match_the_test_data() {
    for (p, f) in [
        (Product::Milan, "go-sev-guest/ask_ark_milan.pem"),
        (Product::Genoa, "go-sev-guest/ask_ark_genoa.pem"),
        (Product::Turin, "go-sev-guest/ask_ark_turin_vcek.pem"),
    ] {
        let r = tl_evidence::snp::certs::AmdRoots::get(p).expect("roots load");
        let d = pem_ders(f);
        assert_eq!(d[0], r.ask.der(), "{f}");
        assert_eq!(d[1], r.ark.der(), "{f}");
    }
    for (p, f) in [
        (Product::Milan, "go-sev-guest/ask_ark_milan_vlek.pem"),
        (Product::Genoa, "go-sev-guest/ask_ark_genoa_vlek.pem"),
        (Product::Turin, "go-sev-guest/ask_ark_turin_vlek.pem"),
    ] {
        let r = tl_evidence::snp::certs::AmdRoots::get(p).expect("roots load");
        let d = pem_ders(f);
        assert_eq!(d[0], r.asvk.der(), "{f}");
        assert_eq!(d[1], r.ark.der(), "{f}");
    }
}

#[test]
fn azure_hcl_report_embeds_a_verifiable_milan_report() {
    let hcl = std::fs::read(format!(
        "{DATA}../tpm-eventlog/trustee-azure-vtpm/az-snp-vtpm/hcl-report.bin"
    ))
    .expect("hcl-report.bin");
    let report = &hcl[0x20..0x20 + 1184];
    let vcek = pem_ders("../tpm-eventlog/trustee-azure-vtpm/az-snp-vtpm/vcek.pem");
    let v = verify_snp_evidence(report, &vcek, &[], &none(), T_2025).expect("verifies");
    assert!(hex::encode(v.report.measurement).starts_with("9ac48fca"));
}
