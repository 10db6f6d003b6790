//! Real TDX quotes from the shared test data: parsing against the manifest
//! and cross-check values, and signature/chain verification at the
//! manifest's times. The files are read at run time from `shared/testdata`
//! beside the repository; a missing file fails the test.

use tl_evidence::tdx::verify::verify_quote_signatures;
use tl_evidence::tdx::{BodyKind, Quote};
use tl_evidence::verify::{verify_bundle, AnchorKind, TrustAnchors, VerifyOptions};

fn data(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("test data {path}: {e}"));
    if rel.ends_with(".hex") || rel.ends_with(".txt") {
        let s = String::from_utf8(raw).expect("hex text");
        let s = s.trim().trim_start_matches("0x");
        hex::decode(s).expect("hex")
    } else {
        raw
    }
}

fn intel() -> TrustAnchors {
    TrustAnchors::intel(data("tdx/dcap-qvl/TrustedRootCA.der"))
}

fn h(b: &[u8]) -> String {
    hex::encode(b)
}

struct Expect {
    file: &'static str,
    version: u16,
    kind: BodyKind,
    mrtd: &'static str,
    tee_tcb_svn: &'static str,
    fmspc: &'static str,
    /// A time at which the chain is valid (from the manifest where it gives one).
    now: u64,
}

const CASES: &[Expect] = &[
    Expect {
        file: "tdx/dcap-qvl/tdx_quote",
        version: 4,
        kind: BodyKind::Td10,
        mrtd: "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7",
        tee_tcb_svn: "06010300000000000000000000000000",
        fmspc: "b0c06f000000",
        now: 1_752_919_234,
    },
    Expect {
        file: "tdx/go-tdx-guest/quote_v5_sample.dat",
        version: 5,
        kind: BodyKind::Td15,
        mrtd: "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f876",
        tee_tcb_svn: "0b010400000000000000000000000000",
        fmspc: "90c06f000000",
        now: 1_770_080_400, // 2026-02-03T01:00:00Z
    },
];

#[test]
fn real_quotes_parse_to_crosscheck_values() {
    for c in CASES {
        let q = Quote::parse(&data(c.file)).unwrap_or_else(|e| panic!("{}: {e}", c.file));
        assert_eq!(q.header.version, c.version, "{}", c.file);
        assert_eq!(q.body.kind, c.kind, "{}", c.file);
        assert_eq!(h(&q.body.mrtd), c.mrtd, "{}", c.file);
        assert_eq!(h(&q.body.tee_tcb_svn), c.tee_tcb_svn, "{}", c.file);
        assert_eq!(
            h(&q.header.qe_vendor_id),
            "939a7233f79c4ca9940a0db3957f0607"
        );
    }
}

#[test]
fn real_quotes_verify_signatures_and_chain() {
    for c in CASES {
        let v = verify_quote_signatures(&data(c.file), &intel(), c.now)
            .unwrap_or_else(|e| panic!("{}: {} {e}", c.file, e.code()));
        assert_eq!(v.anchor, AnchorKind::Intel);
        let pck = v.pck.as_ref().expect("PCK SGX extension");
        assert_eq!(h(&pck.fmspc), c.fmspc, "{}", c.file);
    }
}

#[test]
fn real_quote_without_collateral_is_refused() {
    let b = tl_evidence::bundle::EvidenceBundle::new(tl_evidence::bundle::CpuEvidence {
        kind: tl_evidence::bundle::CpuEvidenceKind::TdxQuote,
        quote: data("tdx/dcap-qvl/tdx_quote"),
        certificates: vec![],
    });
    let e = verify_bundle(&b, &VerifyOptions::new(1_752_919_234, intel()))
        .expect_err("must be rejected");
    assert_eq!(e.code(), "EVIDENCE_COLLATERAL_MISSING");
}

/// "YYYY-MM-DD HH:MM:SS+00:00" to seconds since the Unix epoch.
fn unix(s: &str) -> u64 {
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().expect("digits") };
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19))
        .expect("after 1970")
}

fn quote_file(rel: &str) -> Vec<u8> {
    data(rel)
}

#[test]
fn every_crosscheck_quote_parses_and_verifies() {
    let cc: serde_json::Value =
        serde_json::from_slice(&data("CROSSCHECK-PARSE.json")).expect("CROSSCHECK JSON");
    let mut tdx_seen = 0;
    for (file, v) in cc.as_object().expect("object") {
        let Some(tee) = v.get("tee_type").and_then(|t| t.as_str()) else {
            continue;
        };
        let raw = quote_file(file);
        if tee != "0x81" {
            let e = Quote::parse(&raw).expect_err("SGX quote is not TDX");
            assert_eq!(e.code(), "EVIDENCE_UNSUPPORTED", "{file}");
            continue;
        }
        tdx_seen += 1;
        let q = Quote::parse(&raw).unwrap_or_else(|e| panic!("{file}: {e}"));
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{file}: {k}"))
                .to_string()
        };
        let u = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{file}: {k}"));
        assert_eq!(u64::from(q.header.version), u("version"), "{file}");
        assert_eq!(
            u64::from(q.header.att_key_type),
            u("att_key_type"),
            "{file}"
        );
        assert_eq!(u64::from(q.header.qe_svn), u("qe_svn"), "{file}");
        assert_eq!(u64::from(q.header.pce_svn), u("pce_svn"), "{file}");
        assert_eq!(h(&q.header.qe_vendor_id), s("qe_vendor_id"), "{file}");
        assert_eq!(h(&q.header.user_data), s("user_data"), "{file}");
        assert_eq!(h(&q.qe_auth_data), s("qe_auth_data"), "{file}");
        let b = &v["body"];
        let bs = |k: &str| b[k].as_str().unwrap_or_else(|| panic!("{file}: body.{k}"));
        let body = &q.body;
        assert_eq!(h(&body.tee_tcb_svn), bs("tee_tcb_svn"), "{file}");
        assert_eq!(h(&body.mrseam), bs("mrseam"), "{file}");
        assert_eq!(h(&body.mrsignerseam), bs("mrsignerseam"), "{file}");
        assert_eq!(h(&body.seam_attributes), bs("seam_attributes"), "{file}");
        assert_eq!(h(&body.td_attributes), bs("td_attributes"), "{file}");
        assert_eq!(h(&body.xfam), bs("xfam"), "{file}");
        assert_eq!(h(&body.mrtd), bs("mrtd"), "{file}");
        assert_eq!(h(&body.mrconfigid), bs("mrconfigid"), "{file}");
        assert_eq!(h(&body.mrowner), bs("mrowner"), "{file}");
        assert_eq!(h(&body.mrownerconfig), bs("mrownerconfig"), "{file}");
        for (i, r) in body.rtmr.iter().enumerate() {
            assert_eq!(h(r), bs(&format!("rtmr{i}")), "{file}");
        }
        assert_eq!(h(&body.report_data), bs("reportdata"), "{file}");
        if v.get("body_type").and_then(|t| t.as_u64()) == Some(3) {
            assert_eq!(body.kind, BodyKind::Td15, "{file}");
            assert_eq!(
                h(&body.tee_tcb_svn2.expect("TD 1.5")),
                bs("tee_tcb_svn2"),
                "{file}"
            );
            assert_eq!(
                h(&body.mrservicetd.expect("TD 1.5")),
                bs("mrservicetd"),
                "{file}"
            );
        } else {
            assert_eq!(body.kind, BodyKind::Td10, "{file}");
            assert_eq!(body.tee_tcb_svn2, None);
        }
        let qr = &v["qe_report"];
        let qs = |k: &str| {
            qr[k]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: qe_report.{k}"))
        };
        assert_eq!(h(&q.qe_report.mrenclave), qs("mrenclave"), "{file}");
        assert_eq!(h(&q.qe_report.mrsigner), qs("mrsigner"), "{file}");
        assert_eq!(h(&q.qe_report.isv_prod_id.to_le_bytes()), qs("isvprodid"));
        assert_eq!(h(&q.qe_report.isv_svn.to_le_bytes()), qs("isvsvn"));
        assert_eq!(h(&q.qe_report.misc_select.to_le_bytes()), qs("miscselect"));
        assert_eq!(h(&q.qe_report.attributes), qs("attributes"), "{file}");

        // Signatures and chain, inside and outside the leaf's validity.
        let leaf = &v["pck_chain"][0];
        let nb = unix(leaf["not_before"].as_str().expect("not_before"));
        let na = unix(leaf["not_after"].as_str().expect("not_after"));
        let ok = verify_quote_signatures(&raw, &intel(), nb + 86_400)
            .unwrap_or_else(|e| panic!("{file}: {} {e}", e.code()));
        assert_eq!(ok.anchor, AnchorKind::Intel);
        assert_eq!(ok.pck_chain_der.len(), 3, "{file}");
        assert_eq!(
            h(&ok.pck.expect("SGX extension").fmspc),
            s("fmspc"),
            "{file}"
        );
        let code = |t| {
            verify_quote_signatures(&raw, &intel(), t)
                .map(|_| ())
                .map_err(|e| e.code())
        };
        assert_eq!(code(nb - 1), Err("CERT_NOT_YET_VALID"), "{file}");
        // Another QE vendor than Intel's under Intel's chain: refused before
        // any signature is looked at.
        let mut other_vendor = raw.clone();
        other_vendor[12] ^= 0x01;
        assert_eq!(
            verify_quote_signatures(&other_vendor, &intel(), nb + 86_400)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("unsupported evidence: QE vendor ID is not Intel's".to_string()),
            "{file}"
        );
        assert_eq!(code(na + 1), Err("CERT_EXPIRED"), "{file}");
        // The simulated root alone does not vouch for a real quote.
        let sim = tl_evidence::sim::SimTee::from_seed([1; 32]);
        let only_sim = TrustAnchors::simulated(sim.root_certificate_der());
        assert_eq!(
            verify_quote_signatures(&raw, &only_sim, nb + 86_400)
                .map(|_| ())
                .map_err(|e| e.code()),
            Err("CERT_UNTRUSTED_ROOT"),
            "{file}"
        );
    }
    assert_eq!(
        tdx_seen, 12,
        "every TDX quote of the cross-check was tested"
    );
}

#[test]
fn debug_td_is_reported_in_claims() {
    use tl_evidence::claims::TcbStatus;
    let raw = data("tdx/trustee/tdx_quote_4.dat");
    let v = verify_quote_signatures(&raw, &intel(), unix("2024-01-01 00:00:00+00:00"))
        .expect("verifies");
    let c = tl_evidence::verify::tdx_claims(&v, TcbStatus::OutOfDate);
    assert!(c.debug, "trustee tdx_quote_4 is a debug TD");
    assert!(!c.simulated);
    let t = c.tdx.expect("tdx");
    assert_eq!(t.td_attributes & 1, 1);
    assert_eq!(t.xfam, 0x0000_0000_0006_42e7);
    let raw = data("tdx/dcap-qvl/tdx_quote");
    let v = verify_quote_signatures(&raw, &intel(), 1_752_919_234).expect("verifies");
    assert!(!tl_evidence::verify::tdx_claims(&v, TcbStatus::UpToDate).debug);
}

#[test]
fn real_quote_tampering() {
    let raw = data("tdx/dcap-qvl/tdx_quote");
    let now = 1_752_919_234;
    let code = |q: &[u8]| {
        verify_quote_signatures(q, &intel(), now)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(code(&raw), Ok(()));
    // A byte of MRTD, of REPORTDATA, of the header's user data.
    for i in [48 + 136, 48 + 584 - 1, 40] {
        let mut t = raw.clone();
        t[i] ^= 0x80;
        assert_eq!(code(&t), Err("TDX_QUOTE_SIGNATURE"), "byte {i}");
    }
    // Truncations anywhere before the end of the signature data.
    let sig_end = raw.len() - 70;
    for n in (0..sig_end).step_by(13) {
        assert_eq!(code(&raw[..n]), Err("EVIDENCE_MALFORMED"), "len {n}");
    }
}

/// `q` (a v4 quote) with its PCK chain replaced by `chain` and every length
/// in front of it fixed up. Nothing of it is signed by the attestation key.
fn with_pck_chain(q: &[u8], chain: &[u8]) -> Vec<u8> {
    let begin = b"-----BEGIN CERTIFICATE-----";
    let start = q
        .windows(begin.len())
        .position(|w| w == begin)
        .expect("PEM chain");
    let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
    let old = le32(&q[start - 4..start]);
    let mut out = q[..start].to_vec();
    out.extend_from_slice(chain);
    out.extend_from_slice(&q[start + old..]);
    let fix = |out: &mut Vec<u8>, at: usize| {
        let v = le32(&out[at..at + 4]) + chain.len() - old;
        out[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
    };
    // Inner (PCK chain) length, outer certification data length (after
    // signature, attestation key and type), signature data length.
    let sig_at = 48 + 584;
    out[start - 4..start].copy_from_slice(&(chain.len() as u32).to_le_bytes());
    fix(&mut out, sig_at + 4 + 64 + 64 + 2);
    fix(&mut out, sig_at);
    out
}

/// Intel's QVL takes a PCK chain of exactly leaf, PCK CA and root.
#[test]
fn pck_chain_is_exactly_three_certificates() {
    let raw = data("tdx/dcap-qvl/tdx_quote");
    let now = 1_752_919_234;
    let q = Quote::parse(&raw).expect("parses");
    let pem = String::from_utf8(q.pck_chain_pem.clone()).expect("PEM");
    let end = "-----END CERTIFICATE-----";
    let certs: Vec<&str> = pem
        .split_inclusive(end)
        .filter(|c| c.contains(end))
        .collect();
    assert_eq!(certs.len(), 3);
    let code = |chain: String| {
        verify_quote_signatures(&with_pck_chain(&raw, chain.as_bytes()), &intel(), now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // The helper itself: the same chain gives the same quote, which verifies.
    assert_eq!(with_pck_chain(&raw, &q.pck_chain_pem), raw);
    assert_eq!(code(certs.concat()), Ok(()));
    let want = Err(
        "TDX PCK certificate chain invalid: not a leaf, PCK CA and root (3 certificates)".into(),
    );
    assert_eq!(code(certs[..2].concat()), want, "root left out");
    assert_eq!(
        code(format!("{}{}", certs.concat(), certs[2])),
        want,
        "root twice"
    );
}
