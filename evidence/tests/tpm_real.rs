//! Real TPM quotes: GCE Shielded VM (pinned AK), Azure vTPM (AK bound by
//! the SNP report or TD quote through the HCL report), trustee TPM evidence.

use std::collections::BTreeMap;

use tl_evidence::claims::TeeKind;
use tl_evidence::tpm::attest::{TPM_ALG_SHA1, TPM_ALG_SHA256};
use tl_evidence::tpm::azure::{HclReport, HclReportType};
use tl_evidence::tpm::{verify_quote, AkPublic, AkTrust, PcrValues, TpmsAttest};
use tl_measured_boot::eventlog::{CompareScope, EventLog, HashAlg, Registers};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tpm-eventlog/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing test data {p}: {e}"))
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(rel)).expect("json")
}

// ---------- GCE (go-attestation windows_gcp_shielded_vm) ----------

fn gce() -> (Vec<u8>, Vec<u8>, PcrValues, AkTrust) {
    let attest = read("go-attestation/windows_gcp_quote.tpms_attest.bin");
    let sig = read("go-attestation/windows_gcp_quote.tpmt_signature.bin");
    let v = json("go-attestation/windows_gcp_pcrs.json");
    let bank: BTreeMap<u32, Vec<u8>> = v["pcrs"]
        .as_object()
        .expect("pcrs")
        .iter()
        .map(|(i, h)| {
            (
                i.parse().expect("idx"),
                hex::decode(h.as_str().expect("s")).expect("hex"),
            )
        })
        .collect();
    let pcrs: PcrValues = [(TPM_ALG_SHA1, bank)].into_iter().collect();
    let ak = AkPublic::from_tpm_public(&read(
        "go-attestation/windows_gcp_ak_public.tpmt_public.bin",
    ))
    .expect("AK public");
    assert!(matches!(ak, AkPublic::Rsa { ref n, .. } if n.len() == 256));
    (attest, sig, pcrs, AkTrust::Pinned(ak))
}

#[test]
fn gce_quote_verifies_and_event_log_replays_to_it() {
    let (attest, sig, pcrs, trust) = gce();
    let v = verify_quote(&attest, &sig, &pcrs, Some(&trust), b"").expect("GCE quote");
    assert_eq!(v.signature_hash, TPM_ALG_SHA1);
    assert_eq!(
        hex::encode(&v.attest.pcr_digest),
        "a610f27bc687ce906243287d832706036e79f6e1"
    );
    assert_eq!(v.attest.pcr_select[0].pcrs, (0..24).collect::<Vec<u32>>());
    let c = v.claims();
    assert_eq!(c.tee, TeeKind::Tpm);
    assert_eq!(c.tpm.as_ref().expect("tpm").pcrs["sha1"].len(), 24);
    assert_eq!(v.ak_trust, "pinned");
    // The event log replays to the quoted (now verified) PCRs it covers.
    let log = EventLog::parse(&read("go-attestation/windows_gcp_eventlog.bin")).expect("log");
    let want: Registers = [(HashAlg::SHA1, v.pcrs[&TPM_ALG_SHA1].clone())]
        .into_iter()
        .collect();
    let r = log.replay();
    r.compare(&want, CompareScope::LoggedRegisters)
        .expect("log matches quote");
    for p in [0u32, 4, 5, 7, 11, 12, 13, 14] {
        assert!(r.sources.contains_key(&p));
    }
}

#[test]
fn gce_tampering_each_has_its_code() {
    let (attest, sig, pcrs, trust) = gce();
    // No AK trust at all.
    let e = verify_quote(&attest, &sig, &pcrs, None, b"").expect_err("untrusted");
    assert_eq!(e.code(), "TPM_AK_UNTRUSTED");
    // Signature byte flipped.
    let mut s = sig.clone();
    let n = s.len();
    s[n - 1] ^= 1;
    assert_eq!(
        verify_quote(&attest, &s, &pcrs, Some(&trust), b"")
            .expect_err("sig")
            .code(),
        "TPM_QUOTE_SIGNATURE"
    );
    // Quote byte flipped (the clock).
    let mut a = attest.clone();
    a[40] ^= 1;
    assert_eq!(
        verify_quote(&a, &sig, &pcrs, Some(&trust), b"")
            .expect_err("attest")
            .code(),
        "TPM_QUOTE_SIGNATURE"
    );
    // A PCR value changed.
    let mut p = pcrs.clone();
    p.get_mut(&TPM_ALG_SHA1)
        .expect("bank")
        .get_mut(&7)
        .expect("pcr7")[0] ^= 1;
    assert_eq!(
        verify_quote(&attest, &sig, &p, Some(&trust), b"")
            .expect_err("pcr")
            .code(),
        "TPM_PCR_DIGEST_MISMATCH"
    );
    // A PCR value missing.
    let mut p = pcrs.clone();
    p.get_mut(&TPM_ALG_SHA1).expect("bank").remove(&23);
    assert_eq!(
        verify_quote(&attest, &sig, &p, Some(&trust), b"")
            .expect_err("missing")
            .code(),
        "TPM_PCR_VALUES"
    );
    // Another nonce expected.
    assert_eq!(
        verify_quote(&attest, &sig, &pcrs, Some(&trust), b"x")
            .expect_err("nonce")
            .code(),
        "TPM_NONCE_MISMATCH"
    );
    // Truncated quote.
    assert_eq!(
        verify_quote(&attest[..attest.len() - 1], &sig, &pcrs, Some(&trust), b"")
            .expect_err("trunc")
            .code(),
        "TPM_ATTEST_MALFORMED"
    );
    // Another AK pinned: the signature does not verify.
    let other = HclReport::parse(&read("trustee-azure-vtpm/az-snp-vtpm/hcl-report.bin"))
        .expect("hcl")
        .ak_public()
        .expect("ak");
    assert_eq!(
        verify_quote(&attest, &sig, &pcrs, Some(&AkTrust::Pinned(other)), b"")
            .expect_err("wrong AK")
            .code(),
        "TPM_QUOTE_SIGNATURE"
    );
}

// ---------- Azure vTPM (trustee az-snp-vtpm, az-tdx-vtpm) ----------

fn azure_quote(dir: &str) -> (Vec<u8>, Vec<u8>, PcrValues) {
    let q = json(&format!("trustee-azure-vtpm/{dir}/tpm-quote-v1.json"));
    let h = |k: &str| hex::decode(q[k].as_str().expect("str")).expect("hex");
    let bank: BTreeMap<u32, Vec<u8>> = q["pcrs"]
        .as_array()
        .expect("pcrs")
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u32, hex::decode(v.as_str().expect("s")).expect("hex")))
        .collect();
    (
        h("message"),
        h("signature"),
        [(TPM_ALG_SHA256, bank)].into_iter().collect(),
    )
}

/// The quote's message is a TPMS_ATTEST; its signature field in the JSON is
/// the raw RSA signature, so wrap it as a TPMT_SIGNATURE (RSASSA, SHA-256).
fn tpmt_rsassa_sha256(raw: &[u8]) -> Vec<u8> {
    let mut s = vec![0x00, 0x14, 0x00, 0x0b];
    s.extend_from_slice(&(raw.len() as u16).to_be_bytes());
    s.extend_from_slice(raw);
    s
}

fn azure_verify(
    hcl_bytes: &[u8],
    report_data: &[u8; 64],
    dir: &str,
    tee: TeeKind,
) -> Result<tl_evidence::tpm::VerifiedTpmQuote, tl_evidence::EvidenceError> {
    let hcl = HclReport::parse(hcl_bytes)?;
    let trust = hcl.bind_ak(report_data, tee)?;
    let (msg, sig, pcrs) = azure_quote(dir);
    verify_quote(
        &msg,
        &tpmt_rsassa_sha256(&sig),
        &pcrs,
        Some(&trust),
        b"challenge",
    )
}

fn snp_report_data(hcl: &[u8]) -> [u8; 64] {
    // The SNP report's REPORT_DATA, as its own verifier (the SNP chain)
    // returns it after checking the VCEK signature.
    HclReport::parse(hcl)
        .expect("hcl")
        .hw_report_data()
        .expect("rd")
}

#[test]
fn azure_snp_chain_report_data_to_pcrs() {
    let hcl = read("trustee-azure-vtpm/az-snp-vtpm/hcl-report.bin");
    let parsed = HclReport::parse(&hcl).expect("hcl");
    assert_eq!(parsed.report_type, HclReportType::Snp);
    let v =
        azure_verify(&hcl, &snp_report_data(&hcl), "az-snp-vtpm", TeeKind::SevSnp).expect("chain");
    assert_eq!(v.ak_trust, "bound-by-cpu-report");
    assert_eq!(v.attest.extra_data, b"challenge");
    let c = v.claims();
    assert_eq!(&c.report_data[..9], b"challenge");
    assert!(c.report_data[9..].iter().all(|&b| b == 0));
    assert_eq!(
        c.tpm.expect("tpm").pcrs["sha256"][&0],
        "f3a7e99a5f819a034386bce753a48a73cfdaa0bea0ecfc124bedbf5a8c4799be"
    );
}

#[test]
fn azure_snp_negatives_each_have_their_code() {
    let hcl = read("trustee-azure-vtpm/az-snp-vtpm/hcl-report.bin");
    let rd = snp_report_data(&hcl);
    // Byte 0x6e0 + 1 (inside the variable data): the digest no longer matches.
    let mut t = hcl.clone();
    t[0x6e0] = t[0x6e0].wrapping_add(1);
    let e =
        azure_verify(&t, &snp_report_data(&t), "az-snp-vtpm", TeeKind::SevSnp).expect_err("digest");
    assert_eq!(e.code(), "TPM_HCL_VAR_DATA_MISMATCH");
    // AKpub byte 0x540 zeroed: the digest check catches it first ...
    let mut t = hcl.clone();
    t[0x540] = 0;
    assert_eq!(
        azure_verify(&t, &rd, "az-snp-vtpm", TeeKind::SevSnp)
            .expect_err("digest")
            .code(),
        "TPM_HCL_VAR_DATA_MISMATCH"
    );
    // ... and with report data that did bind the altered data, the AK
    // itself fails: it no longer decodes.
    let digest = HclReport::parse(&t).expect("hcl").var_data_digest();
    let mut forged = rd;
    forged[..32].copy_from_slice(&digest);
    assert_eq!(
        azure_verify(&t, &forged, "az-snp-vtpm", TeeKind::SevSnp)
            .expect_err("ak")
            .code(),
        "TPM_AK_MALFORMED"
    );
    // A modulus character changed to another valid one: another key, so the
    // quote's signature fails.
    let mut t = hcl.clone();
    t[0x540] = if t[0x540] == b'A' { b'B' } else { b'A' };
    let digest = HclReport::parse(&t).expect("hcl").var_data_digest();
    let mut forged = rd;
    forged[..32].copy_from_slice(&digest);
    assert_eq!(
        azure_verify(&t, &forged, "az-snp-vtpm", TeeKind::SevSnp)
            .expect_err("ak")
            .code(),
        "TPM_QUOTE_SIGNATURE"
    );
    // pcrs[0][0] ^= 1.
    let h = HclReport::parse(&hcl).expect("hcl");
    let trust = h.bind_ak(&rd, TeeKind::SevSnp).expect("bind");
    let (msg, sig, mut pcrs) = azure_quote("az-snp-vtpm");
    pcrs.get_mut(&TPM_ALG_SHA256)
        .expect("bank")
        .get_mut(&0)
        .expect("pcr0")[0] ^= 1;
    assert_eq!(
        verify_quote(
            &msg,
            &tpmt_rsassa_sha256(&sig),
            &pcrs,
            Some(&trust),
            b"challenge"
        )
        .expect_err("pcr")
        .code(),
        "TPM_PCR_DIGEST_MISMATCH"
    );
    // Signature byte 0 flipped.
    let (msg, mut sig, pcrs) = azure_quote("az-snp-vtpm");
    sig[0] ^= 1;
    assert_eq!(
        verify_quote(
            &msg,
            &tpmt_rsassa_sha256(&sig),
            &pcrs,
            Some(&trust),
            b"challenge"
        )
        .expect_err("sig")
        .code(),
        "TPM_QUOTE_SIGNATURE"
    );
    // Wrong nonce.
    let (msg, sig, pcrs) = azure_quote("az-snp-vtpm");
    assert_eq!(
        verify_quote(
            &msg,
            &tpmt_rsassa_sha256(&sig),
            &pcrs,
            Some(&trust),
            b"challengf"
        )
        .expect_err("nonce")
        .code(),
        "TPM_NONCE_MISMATCH"
    );
    // Not an HCL report.
    let mut t = hcl.clone();
    t[0] = b'X';
    assert_eq!(
        HclReport::parse(&t).expect_err("magic").code(),
        "TPM_HCL_REPORT_MALFORMED"
    );
}

#[test]
fn azure_tdx_chain_td_quote_to_pcrs() {
    let hcl = read("trustee-azure-vtpm/az-tdx-vtpm/hcl-report.bin");
    let parsed = HclReport::parse(&hcl).expect("hcl");
    assert_eq!(parsed.report_type, HclReportType::Tdx);
    // The TD quote's REPORTDATA (its signatures are the TDX verifier's job)
    // equals the TDREPORT's and binds the variable data.
    let q = tl_evidence::tdx::Quote::parse(&read("trustee-azure-vtpm/az-tdx-vtpm/td-quote.bin"))
        .expect("td quote");
    assert_eq!(q.body.report_data, parsed.hw_report_data().expect("rd"));
    let v = azure_verify(&hcl, &q.body.report_data, "az-tdx-vtpm", TeeKind::Tdx).expect("chain");
    assert_eq!(
        v.claims().tpm.expect("tpm").pcrs["sha256"][&0],
        "782b20b10f55cc46e2142cc2145d548698073e5beb82752c8d7f9279f0d8a273"
    );
    // pcrs[0][0] ^= 1 fails.
    let trust = parsed
        .bind_ak(&q.body.report_data, TeeKind::Tdx)
        .expect("bind");
    let (msg, sig, mut pcrs) = azure_quote("az-tdx-vtpm");
    pcrs.get_mut(&TPM_ALG_SHA256)
        .expect("bank")
        .get_mut(&0)
        .expect("pcr0")[0] ^= 1;
    assert_eq!(
        verify_quote(
            &msg,
            &tpmt_rsassa_sha256(&sig),
            &pcrs,
            Some(&trust),
            b"challenge"
        )
        .expect_err("pcr")
        .code(),
        "TPM_PCR_DIGEST_MISMATCH"
    );
    // The SNP report's data does not bind the TDX HCL's variable data.
    let snp = snp_report_data(&read("trustee-azure-vtpm/az-snp-vtpm/hcl-report.bin"));
    assert_eq!(
        parsed
            .bind_ak(&snp, TeeKind::Tdx)
            .expect_err("other")
            .code(),
        "TPM_HCL_VAR_DATA_MISMATCH"
    );
}

// ---------- trustee TPM evidence (SPKI AK), through verify_bundle ----------

fn trustee_evidence() -> tl_evidence::tpm::TpmQuoteEvidence {
    use base64::Engine;
    let b64 = |s: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().expect("str"))
            .expect("b64")
    };
    let v = json("trustee-tpm/tpm_evidence.json");
    let q = &v["tpm_quote"];
    let pcrs: BTreeMap<u32, String> = q["pcrs"]
        .as_array()
        .expect("pcrs")
        .iter()
        .enumerate()
        .map(|(i, h)| (i as u32, h.as_str().expect("hex").to_string()))
        .collect();
    let sig = b64(&q["signature"]);
    let sig = if sig.len() == 256 {
        tpmt_rsassa_sha256(&sig)
    } else {
        sig
    };
    tl_evidence::tpm::TpmQuoteEvidence {
        attest: b64(&q["message"]),
        signature: sig,
        ak_public: b64(&v["ak_public"]),
        pcrs: [("sha256".to_string(), pcrs)].into_iter().collect(),
    }
}

#[test]
fn trustee_tpm_evidence_through_verify_bundle() {
    use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
    use tl_evidence::{verify_bundle, TrustAnchors, VerifyOptions};
    let ev = trustee_evidence();
    let attest = TpmsAttest::parse(&ev.attest).expect("attest");
    assert_eq!(attest.extra_data.len(), 64);
    let bundle = |ev: &tl_evidence::tpm::TpmQuoteEvidence| {
        EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::TpmQuote,
            quote: ev.to_json(),
            certificates: vec![],
        })
    };
    // Without a pinned AK or an AK root: untrusted, never accepted silently.
    let e = verify_bundle(
        &bundle(&ev),
        &VerifyOptions::new(0, TrustAnchors::default()),
    )
    .expect_err("untrusted");
    assert_eq!(e.code(), "TPM_AK_UNTRUSTED");
    let anchors = TrustAnchors {
        tpm_pinned_aks: vec![ev.ak_public.clone()],
        ..TrustAnchors::default()
    };
    let opts = VerifyOptions::new(0, anchors);
    let v = verify_bundle(&bundle(&ev), &opts).expect("verifies");
    assert_eq!(v.claims.tee, TeeKind::Tpm);
    assert_eq!(
        v.claims.report_data.as_slice(),
        attest.extra_data.as_slice()
    );
    assert_eq!(v.claims.tpm.as_ref().expect("tpm").pcrs["sha256"].len(), 24);
    // A PCR changed in the bundle.
    let mut bad = ev.clone();
    let p = bad
        .pcrs
        .get_mut("sha256")
        .expect("bank")
        .get_mut(&3)
        .expect("pcr3");
    *p = format!("{:0>64}", "1");
    assert_eq!(
        verify_bundle(&bundle(&bad), &opts).expect_err("pcr").code(),
        "TPM_PCR_DIGEST_MISMATCH"
    );
    // An AK certificate without a configured AK root.
    let b = EvidenceBundle {
        cpu: CpuEvidence {
            certificates: vec![vec![0x30, 0]],
            ..bundle(&ev).cpu
        },
        ..bundle(&ev)
    };
    assert_eq!(
        verify_bundle(&b, &opts).expect_err("no root").code(),
        "TPM_AK_UNTRUSTED"
    );
}
