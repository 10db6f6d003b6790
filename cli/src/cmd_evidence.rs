//! `tl evidence verify`: verify a TDX quote, an SGX quote, an SEV-SNP
//! report or an evidence bundle (against Intel's root and DCAP collateral,
//! or AMD's roots and the VCEK/VLEK chain), and apply an acceptance policy.
//! Reads files; every decision is made by `tl-evidence`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde::Serialize;
use tl_evidence::accept::{parse_acceptable_tcb_status, AcceptPolicy, Rejection};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::dcap::sgx::{verify_sgx_quote, TEE_TYPE_SGX};
use tl_evidence::dcap::time::{format_rfc3339_utc, parse_rfc3339_utc};
use tl_evidence::dcap::{CollateralParts, TdxCollateral};
use tl_evidence::snp::report::{
    TcbLayout, TcbVersion, REPORT_LEN, SIG_ALGO_ECDSA_P384_SHA384, SUPPORTED_VERSIONS,
};
use tl_evidence::snp::{GuestPolicy, SnpAppraisal, SnpFinding, VerifiedSnp};
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};
use tl_evidence::{EvidenceError, PlatformClaims, INTEL_SGX_ROOT_CA_DER};

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Verify a TDX/SGX quote, an SEV-SNP report or an evidence bundle and appraise it.
    Verify(VerifyArgs),
}

/// Verify attestation evidence offline and decide whether to accept it.
///
/// FILE may be a raw TDX quote (v4/v5, as read from configfs-tsm
/// `outblob`), a raw SGX quote (v3), a raw SEV-SNP attestation report
/// (1184 bytes, optionally followed by the extended report's certificate
/// table), any of these as hex text (optionally 0x-prefixed), or an
/// evidence bundle JSON produced by the loader. The kind is detected from
/// the content.
///
/// SEV-SNP: the report is verified with its VCEK or VLEK (from --certs, the
/// bundle or the certificate table) up to AMD's ARK for Milan, Genoa or
/// Turin (built in), then appraised: debug, a migration agent and VMPL > 0
/// are refused (--allow-debug lifts the first).
///
/// Verification checks the quote's signatures and PCK chain up to the Intel
/// SGX Root CA (built in; replace it with --root-der), then appraises the
/// platform's TCB with DCAP collateral: the CRLs, the signed TCB info and QE
/// identity for the platform's FMSPC. The result is a TCB status (UpToDate,
/// SWHardeningNeeded, ConfigurationNeeded, OutOfDate, ...) and Intel
/// security advisory IDs. Acceptance is a separate policy: by default only
/// UpToDate, and never a debug TD/enclave.
///
/// The exit status is 0 only when verification succeeds AND the policy
/// accepts the result. Every failure prints a stable reason code (for
/// example TDX_TCB_LEVEL_NOT_FOUND, TDX_COLLATERAL_EXPIRED,
/// TCB_STATUS_NOT_ACCEPTED).
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = concat!(
        "Collateral (--collateral PATH):\n",
        "  a file       a QuoteCollateralV3 JSON document (keys pck_crl_issuer_chain,\n",
        "               root_ca_crl, pck_crl, tcb_info_issuer_chain, tcb_info,\n",
        "               tcb_info_signature, qe_identity_issuer_chain, qe_identity,\n",
        "               qe_identity_signature), as PCCS clients such as dcap-qvl write it;\n",
        "  a directory  Intel PCS responses as separate files:\n",
        "                 tcb_info.json     {\"tcbInfo\": {...}, \"signature\": \"...\"}\n",
        "                 qe_identity.json  {\"enclaveIdentity\": {...}, \"signature\": \"...\"}\n",
        "                 tcb_info_issuer_chain.pem, pck_crl_issuer_chain.pem,\n",
        "                 qe_identity_issuer_chain.pem (optional: defaults to the TCB info chain),\n",
        "                 pck_crl.der, root_ca_crl.der (DER or hex).\n",
        "Without collateral a real quote is rejected (EVIDENCE_COLLATERAL_MISSING);\n",
        "simulated evidence needs none.\n\n",
        "Examples:\n\n",
        "  tl evidence verify quote.bin --collateral collateral.json\n\n",
        "  tl evidence verify tdx-quote.hex --collateral pcs/ --at 2025-07-19T10:00:00Z --json\n\n",
        "  tl evidence verify quote.bin --collateral c.json --accept-tcb UpToDate,SWHardeningNeeded\n\n",
        "  tl evidence verify quote.bin --collateral c.json --reference   # dcap-qvl's verdict beside tl's\n\n",
        "  tl evidence verify bundle.json --simulated-root sim-root.der\n\n",
        "  tl evidence verify publish/evidence.json --nonce $(cat publish/nonce) \\\n",
        "      --certificate publish/certificate.pem --ca-root ca-root.pem\n\n",
        "  tl evidence verify report.bin --certs vcek.der --at 2023-05-01T00:00:00Z\n\n",
        "  tl evidence verify gpu-report.hex --gpu-certs gpu-chain.pem --gpu-nonce <64 hex>\n\n",
        "  tl evidence verify switch-report.bin --nvswitch --gpu-certs switch-chain.pem --gpu-nonce <64 hex>"
    )
)]
pub struct VerifyArgs {
    /// Evidence: raw quote or SNP report, hex text, or evidence bundle JSON.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// DCAP collateral: a QuoteCollateralV3 JSON file or a directory of PCS files.
    #[arg(long, value_name = "PATH")]
    collateral: Option<PathBuf>,
    /// Verification time, RFC 3339 UTC (e.g. 2025-07-19T10:00:34Z) or Unix
    /// seconds. Default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Intel SGX Root CA certificate (DER) to trust instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    root_der: Option<PathBuf>,
    /// Also trust this simulated-TEE root certificate (DER). Test setups only.
    #[arg(long, value_name = "PATH")]
    simulated_root: Option<PathBuf>,
    /// Accepted TCB statuses, comma-separated. Default: UpToDate. Names:
    /// UpToDate, SWHardeningNeeded, ConfigurationNeeded,
    /// ConfigurationAndSWHardeningNeeded, OutOfDate,
    /// OutOfDateConfigurationNeeded, TDRelaunchAdvised,
    /// TDRelaunchAdvisedConfigurationNeeded (TD 1.5). Revoked is never
    /// accepted: a revoked TCB fails verification (TDX_TCB_REVOKED).
    #[arg(long, value_name = "STATUS,...", value_delimiter = ',')]
    accept_tcb: Vec<String>,
    /// Accept a TD, enclave or SNP guest in debug mode (never do this in production).
    #[arg(long)]
    allow_debug: bool,
    /// SEV-SNP: the VCEK or VLEK chain, leaf first: a PEM file (one or more
    /// certificates) or a DER VCEK/VLEK. Replaces any chain in the evidence.
    #[arg(long, value_name = "FILE")]
    certs: Option<PathBuf>,
    /// NVIDIA GPU: FILE is an SPDM attestation report (hex text or binary, as
    /// NVML returns it) and this is its device certificate chain (PEM). The
    /// report is checked against NVIDIA's device root shipped with tl.
    #[arg(long, value_name = "PEM", requires = "gpu_nonce")]
    gpu_certs: Option<PathBuf>,
    /// NVIDIA GPU: the 32-byte nonce (64 hex digits) the report must answer.
    #[arg(long, value_name = "HEX")]
    gpu_nonce: Option<String>,
    /// NVIDIA NVSwitch: with --gpu-certs and --gpu-nonce, FILE is an
    /// NVSwitch's report (from NSCQ). Checked the same way, except that a
    /// report without an FWID field is accepted (as NVIDIA's verifier does).
    #[arg(long, requires = "gpu_certs")]
    nvswitch: bool,
    /// NVIDIA GPU/NVSwitch: trust this device root (PEM or DER) instead of
    /// NVIDIA's, e.g. the simulated one. Test setups only.
    #[arg(long, value_name = "FILE")]
    gpu_root: Option<PathBuf>,
    /// Evidence bundle: the CA's enrollment nonce it answers (hex; the loader
    /// publishes it as `nonce` beside evidence.json). GPU and NVSwitch
    /// reports in the bundle must answer the nonces derived from it; without
    /// it such a bundle fails with GPU_NONCE_MISSING.
    #[arg(long, value_name = "HEX", conflicts_with = "gpu_certs")]
    nonce: Option<String>,
    /// Evidence bundle: the CVM certificate the CA issued for it (PEM, leaf
    /// first; the loader publishes `certificate.pem`). Checked against
    /// --ca-root at the verification time; then the certificate must have
    /// been issued for exactly this bundle (its evidence digest), and the
    /// quote's report data must bind --nonce, the certificate's signing key,
    /// its encryption key and the bundle's GPU, NVSwitch and vTPM evidence.
    #[arg(long, value_name = "PEM", requires_all = ["nonce", "ca_root"])]
    certificate: Option<PathBuf>,
    /// The CA's root certificate (PEM or DER) for --certificate.
    #[arg(long, value_name = "FILE", requires = "certificate")]
    ca_root: Option<PathBuf>,
    /// NVIDIA GPU: a signed reference integrity manifest (SWID tag) to compare
    /// the report's measurements with, index by index (repeatable: driver and
    /// VBIOS RIMs). Every mismatch is listed; any mismatch fails.
    #[arg(long, value_name = "SWIDTAG")]
    rim: Vec<PathBuf>,
    /// NVIDIA GPU: measurement indices (SPDM numbering) whose RIM mismatch
    /// policy tolerates; still reported. Default: none.
    #[arg(long, value_name = "INDEX,...", value_delimiter = ',')]
    tolerate_index: Vec<u32>,
    /// TDX and SGX quotes: also verify with dcap-qvl's whole verifier (run
    /// on tl's crypto, trusting the same root: --simulated-root if given,
    /// else --root-der or Intel's) and print its verdict beside tl's. The
    /// exit status is 0 only if tl accepts the quote and dcap-qvl agrees:
    /// same TCB status, same advisories.
    #[arg(long, requires = "collateral", conflicts_with = "gpu_certs")]
    reference: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What `tl evidence verify --gpu-certs` found.
#[derive(Serialize)]
struct GpuReport {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// `gpu` or `nvswitch`.
    device: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<tl_evidence::GpuClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nvswitch_claims: Option<tl_evidence::NvSwitchClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fwid: Option<String>,
    rim_compared: Vec<u32>,
    rim_mismatches: Vec<GpuRimMismatch>,
    rim_tolerated: Vec<GpuRimMismatch>,
}

#[derive(Serialize)]
struct GpuRimMismatch {
    index: u32,
    expected: Vec<String>,
    actual: Option<String>,
    rim: String,
}

/// NVIDIA's device root, or the one `--gpu-root` names instead.
fn gpu_anchors(a: &VerifyArgs) -> anyhow::Result<tl_evidence::nvidia::GpuAnchors> {
    use tl_evidence::nvidia::{certs, GpuAnchors};
    let Some(p) = &a.gpu_root else {
        return Ok(GpuAnchors::nvidia());
    };
    let raw = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    let der = if raw.starts_with(b"-----BEGIN") {
        certs::pem_certificates(&raw, certs::ChainKind::Device)
            .map_err(|e| anyhow!("{}: {}: {e}", p.display(), e.code()))?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("{}: no certificate", p.display()))?
    } else {
        raw
    };
    GpuAnchors::from_der(&[der.as_slice()])
        .map_err(|e| anyhow!("{}: {}: {e}", p.display(), e.code()))
}

fn verify_gpu(a: &VerifyArgs, chain_path: &std::path::Path) -> anyhow::Result<()> {
    use tl_evidence::nvidia::{certs, rim, spdm};
    let raw = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let now = match &a.at {
        Some(t) => parse_time(t)?,
        None => crate::cmd_report::now_unix(),
    };
    let nonce: [u8; 32] = hex::decode(a.gpu_nonce.as_deref().unwrap_or_default().trim())
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("--gpu-nonce: expected 64 hex digits"))?;
    let bytes = if raw
        .iter()
        .all(|c| c.is_ascii_hexdigit() || c.is_ascii_whitespace())
    {
        spdm::decode_hex_report(&raw).map_err(|e| anyhow!("{}: {e}", e.code()))?
    } else {
        raw
    };
    let pem =
        std::fs::read(chain_path).with_context(|| format!("reading {}", chain_path.display()))?;
    let chain = certs::pem_certificates(&pem, certs::ChainKind::Device)
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    let mut out = GpuReport {
        ok: false,
        code: None,
        error: None,
        device: if a.nvswitch { "nvswitch" } else { "gpu" },
        claims: None,
        nvswitch_claims: None,
        fwid: None,
        rim_compared: vec![],
        rim_mismatches: vec![],
        rim_tolerated: vec![],
    };
    let verify = if a.nvswitch {
        tl_evidence::nvidia::verify_switch_report
    } else {
        tl_evidence::nvidia::verify_report
    };
    let anchors = gpu_anchors(a)?;
    match verify(&bytes, &chain, &nonce, &anchors, now) {
        Err(e) => {
            out.code = Some(e.code());
            out.error = Some(e.to_string());
        }
        Ok(v) => {
            out.fwid = v.info.fwid.map(hex::encode);
            // CC mode (GPU) and TNVL mode (switch) are not signed by the
            // device; the loader asserts them (see docs/formats/gpu.md).
            if a.nvswitch {
                out.nvswitch_claims = Some(v.switch_claims(0, true, true));
            } else {
                out.claims = Some(v.claims(0, true, false));
            }
            let measurements = v.measurements();
            let mut rims = Vec::new();
            for p in &a.rim {
                let xml = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
                rims.push(
                    rim::verify_rim(&xml, &rim::RimAnchors::nvidia(), now)
                        .map_err(|e| anyhow!("{}: {}: {e}", p.display(), e.code()))?,
                );
            }
            let refs: Vec<&rim::Rim> = rims.iter().collect();
            let tolerate = a.tolerate_index.iter().copied().collect();
            let c = rim::compare(&measurements, &refs, &tolerate);
            let conv = |m: &rim::RimMismatch| GpuRimMismatch {
                index: m.index,
                expected: m.expected.clone(),
                actual: m.actual.clone(),
                rim: m.rim.clone(),
            };
            out.rim_compared = c.compared.iter().copied().collect();
            out.rim_mismatches = c.mismatches.iter().map(conv).collect();
            out.rim_tolerated = c.tolerated.iter().map(conv).collect();
            if !c.ok() {
                out.code = Some("GPU_RIM_MISMATCH");
            }
            out.ok = c.ok();
        }
    }
    crate::output::emit(a.json, &out, |r| {
        let verified = if let Some(c) = &r.nvswitch_claims {
            println!(
                "NVSwitch report: signature, device chain to NVIDIA's root and nonce verified"
            );
            println!("  firmware        {}", c.vbios_version);
            match &r.fwid {
                Some(f) => println!("  fwid            {f}"),
                None => println!("  fwid            (none in the report)"),
            }
            for (i, m) in &c.measurements {
                println!("  measurement {i:>3} {m}");
            }
            true
        } else if let Some(c) = &r.claims {
            println!("GPU report: signature, device chain to NVIDIA's root and nonce verified");
            println!("  driver          {}", c.driver_version);
            println!("  vbios           {}", c.vbios_version);
            if let Some(f) = &r.fwid {
                println!("  fwid            {f}");
            }
            for (i, m) in &c.measurements {
                println!("  measurement {i:>3} {m}");
            }
            true
        } else {
            false
        };
        if verified {
            if !r.rim_compared.is_empty() {
                println!("  RIM indices compared: {}", r.rim_compared.len());
            }
            for m in &r.rim_mismatches {
                println!(
                    "  RIM MISMATCH index {} ({}): expected one of {:?}, got {:?}",
                    m.index, m.rim, m.expected, m.actual
                );
            }
            for m in &r.rim_tolerated {
                println!(
                    "  RIM mismatch tolerated by policy: index {} ({})",
                    m.index, m.rim
                );
            }
        } else if let Some(code) = r.code {
            println!(
                "{} report: REJECTED ({code}): {}",
                if r.device == "nvswitch" {
                    "NVSwitch"
                } else {
                    "GPU"
                },
                r.error.as_deref().unwrap_or("")
            );
        }
        println!(
            "verdict: {}",
            if r.ok {
                "ok"
            } else {
                r.code.unwrap_or("rejected")
            }
        );
    })?;
    if out.ok {
        Ok(())
    } else {
        Err(anyhow!(
            "verification failed: {}",
            out.code.unwrap_or("GPU_REJECTED")
        ))
    }
}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Verify(a) => verify(a),
    }
}

#[derive(Serialize)]
struct Report {
    /// Verified and accepted.
    ok: bool,
    verified: bool,
    /// The reason code when verification failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    evidence: &'static str,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcb_status: Option<tl_evidence::TcbStatus>,
    advisory_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<PlatformClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sgx: Option<SgxReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snp: Option<SnpOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate: Option<CertificateOut>,
    /// dcap-qvl's verdict on the same quote (`--reference`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<ReferenceOut>,
    rejections: Vec<RejectionOut>,
}

/// What `--reference` found: dcap-qvl's verdict and whether it agrees.
#[derive(Serialize)]
struct ReferenceOut {
    verifier: String,
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcb_status: Option<String>,
    advisory_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// `accepted alike`, `rejected by both` or `DISAGREE: ...`.
    agreement: String,
    agrees: bool,
}

/// What `--certificate` found: the CVM certificate and how it ties to the
/// evidence.
#[derive(Serialize)]
struct CertificateOut {
    /// Signed by the CA root and valid at the verification time.
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_public_key: Option<String>,
    /// The certificate names this bundle's digest.
    evidence_matches: bool,
    /// The report data binds the nonce, the certificate's keys and the
    /// bundle's device evidence.
    binding: bool,
}

/// Reason codes of `--certificate` (beside the certificate's own `CERT_*`).
const CERTIFICATE_EVIDENCE_MISMATCH: &str = "CERTIFICATE_EVIDENCE_MISMATCH";
const BINDING_MISMATCH: &str = "BINDING_MISMATCH";

/// Check the CVM certificate against the CA root, the bundle and the
/// verified report data; every failure is a rejection.
fn check_certificate(
    cert_path: &Path,
    ca_root: &Path,
    nonce: &[u8],
    bundle: &EvidenceBundle,
    report_data: &[u8; 64],
    now: u64,
) -> anyhow::Result<(CertificateOut, Vec<RejectionOut>)> {
    let pem = std::fs::read_to_string(cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let root = read_cert(ca_root)?;
    let mut out = CertificateOut {
        valid: false,
        serial: None,
        not_after: None,
        encryption_public_key: None,
        evidence_matches: false,
        binding: false,
    };
    let leaf = match tl_ca::certs::verify_leaf_pem(&pem, &root, now) {
        Ok(l) => l,
        Err(e) => {
            let r = RejectionOut {
                code: e.code(),
                detail: format!("CVM certificate {}: {e}", cert_path.display()),
            };
            return Ok((out, vec![r]));
        }
    };
    out.valid = true;
    out.serial = Some(leaf.serial_hex.clone());
    out.not_after = Some(format_rfc3339_utc(leaf.not_after));
    out.encryption_public_key = Some(leaf.claims.encryption_public_key.clone());
    let mut rejections = Vec::new();
    let digest = bundle.digest();
    out.evidence_matches = leaf.claims.evidence_digest == digest;
    if !out.evidence_matches {
        rejections.push(RejectionOut {
            code: CERTIFICATE_EVIDENCE_MISMATCH,
            detail: format!(
                "the certificate was issued for evidence {}, this bundle is {}",
                hex::encode(leaf.claims.evidence_digest),
                hex::encode(digest)
            ),
        });
    }
    match leaf.claims.encryption_key_bytes() {
        Err(e) => rejections.push(RejectionOut {
            code: e.code(),
            detail: format!("the certificate's encryption key: {e}"),
        }),
        Ok(enc) => {
            let expected = bundle.expected_report_data(nonce, &leaf.spki_der, &enc);
            out.binding = &expected == report_data;
            if !out.binding {
                rejections.push(RejectionOut {
                    code: BINDING_MISMATCH,
                    detail: "the report data does not bind this nonce, the certificate's signing \
                             and encryption keys and the bundle's device evidence"
                        .into(),
                });
            }
        }
    }
    Ok((out, rejections))
}

/// The claims of a verified SEV-SNP report, decoded.
#[derive(Serialize)]
struct SnpOut {
    product: String,
    signing_key: String,
    version: u32,
    measurement: String,
    host_data: String,
    report_data: String,
    id_key_digest: String,
    author_key_digest: String,
    family_id: String,
    image_id: String,
    guest_svn: u32,
    policy: String,
    policy_bits: SnpPolicyOut,
    vmpl: u32,
    platform_info: String,
    chip_id: String,
    reported_tcb: SnpTcbOut,
    committed_tcb: SnpTcbOut,
    current_tcb: SnpTcbOut,
    launch_tcb: SnpTcbOut,
    firmware: String,
}

#[derive(Serialize)]
struct SnpPolicyOut {
    abi: String,
    debug: bool,
    migration_agent: bool,
    smt: bool,
    single_socket: bool,
    cxl: bool,
    aes_256_xts: bool,
    rapl_disabled: bool,
    ciphertext_hiding: bool,
    page_swap_disabled: bool,
}

#[derive(Serialize)]
struct SnpTcbOut {
    raw: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fmc: Option<u8>,
    bootloader: u8,
    tee: u8,
    snp: u8,
    microcode: u8,
}

impl SnpTcbOut {
    fn new(t: TcbVersion, layout: TcbLayout) -> Self {
        let p = t.parts(layout);
        SnpTcbOut {
            raw: format!("{:016x}", t.0),
            fmc: p.fmc,
            bootloader: p.bootloader,
            tee: p.tee,
            snp: p.snp,
            microcode: p.microcode,
        }
    }

    fn line(&self) -> String {
        let fmc = self.fmc.map(|f| format!("fmc {f}, ")).unwrap_or_default();
        format!(
            "{} ({fmc}bootloader {}, tee {}, snp {}, microcode {})",
            self.raw, self.bootloader, self.tee, self.snp, self.microcode
        )
    }
}

impl SnpOut {
    fn new(v: &VerifiedSnp) -> Self {
        let r = &v.report;
        let layout = v.product.tcb_layout();
        let p = GuestPolicy(r.policy);
        SnpOut {
            product: v.product.name().to_owned(),
            signing_key: format!("{:?}", v.leaf_kind),
            version: r.version,
            measurement: hex::encode(r.measurement),
            host_data: hex::encode(r.host_data),
            report_data: hex::encode(r.report_data),
            id_key_digest: hex::encode(r.id_key_digest),
            author_key_digest: hex::encode(r.author_key_digest),
            family_id: hex::encode(r.family_id),
            image_id: hex::encode(r.image_id),
            guest_svn: r.guest_svn,
            policy: format!("{:#x}", r.policy),
            policy_bits: SnpPolicyOut {
                abi: format!("{}.{}", p.abi_major(), p.abi_minor()),
                debug: p.debug(),
                migration_agent: p.migrate_ma_allowed(),
                smt: p.smt_allowed(),
                single_socket: p.single_socket(),
                cxl: p.cxl_allowed(),
                aes_256_xts: p.mem_aes_256_xts(),
                rapl_disabled: p.rapl_disabled(),
                ciphertext_hiding: p.ciphertext_hiding(),
                page_swap_disabled: p.page_swap_disabled(),
            },
            vmpl: r.vmpl,
            platform_info: platform_info_text(r.platform_info),
            chip_id: hex::encode(r.chip_id),
            reported_tcb: SnpTcbOut::new(r.reported_tcb, layout),
            committed_tcb: SnpTcbOut::new(r.committed_tcb, layout),
            current_tcb: SnpTcbOut::new(r.current_tcb, layout),
            launch_tcb: SnpTcbOut::new(r.launch_tcb, layout),
            firmware: format!(
                "{}.{} build {}",
                r.current_version.major, r.current_version.minor, r.current_version.build
            ),
        }
    }
}

#[derive(Serialize)]
struct SgxReport {
    mrenclave: String,
    mrsigner: String,
    isv_prod_id: u16,
    isv_svn: u16,
    attributes: String,
    debug: bool,
    report_data: String,
}

#[derive(Serialize)]
struct RejectionOut {
    code: &'static str,
    detail: String,
}

enum Evidence {
    Tdx(EvidenceBundle),
    Sgx(Vec<u8>),
    Snp(EvidenceBundle),
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    if let Some(chain) = &a.gpu_certs {
        return verify_gpu(&a, chain);
    }
    let report = evaluate(&a)?;
    crate::output::emit(a.json, &report, print_human)?;
    if report.ok {
        Ok(())
    } else if let Some(code) = report.code {
        Err(anyhow!("verification failed: {code}"))
    } else {
        let codes: Vec<_> = report.rejections.iter().map(|r| r.code).collect();
        Err(anyhow!("not accepted: {}", codes.join(", ")))
    }
}

/// Verify and appraise; the report says whether it is ok.
fn evaluate(a: &VerifyArgs) -> anyhow::Result<Report> {
    let raw = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let mut evidence = detect(&raw)?;
    if let Some(p) = &a.certs {
        let chain = read_chain(p)?;
        match &mut evidence {
            Evidence::Snp(b) => b.cpu.certificates = chain,
            _ => bail!("--certs applies to SEV-SNP evidence only"),
        }
    }
    let now = match &a.at {
        Some(t) => parse_time(t)?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs(),
    };
    let intel_root = match &a.root_der {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => INTEL_SGX_ROOT_CA_DER.to_vec(),
    };
    let simulated_root = a.simulated_root.as_deref().map(read_cert).transpose()?;
    let anchors = TrustAnchors {
        intel_root_der: Some(intel_root),
        simulated_root_der: simulated_root,
        ..TrustAnchors::default()
    };
    // Shared by the verification and `--reference`: parsed once.
    let collateral = a
        .collateral
        .as_deref()
        .map(read_collateral)
        .transpose()?
        .map(std::sync::Arc::new);
    let policy = policy(a)?;
    let expected_nonce = a
        .nonce
        .as_deref()
        .map(|n| hex::decode(n.trim()).map_err(|_| anyhow!("--nonce: expected hex")))
        .transpose()?;
    let gpu_anchors = gpu_anchors(a)?;
    if a.certificate.is_some() && matches!(evidence, Evidence::Sgx(_)) {
        bail!("--certificate applies to TDX and SEV-SNP evidence (a bundle or a quote), not SGX quotes");
    }

    let mut report = Report {
        ok: false,
        verified: false,
        code: None,
        error: None,
        evidence: "",
        at: format_rfc3339_utc(now),
        tcb_status: None,
        advisory_ids: Vec::new(),
        claims: None,
        sgx: None,
        snp: None,
        certificate: None,
        reference: None,
        rejections: Vec::new(),
    };
    let outcome: Result<PlatformClaimsOrSgx, EvidenceError> = match &evidence {
        Evidence::Tdx(bundle) => {
            report.evidence = "tdx-quote";
            let opts = VerifyOptions {
                now_unix: now,
                anchors,
                collateral: collateral.clone().map(Collateral::Tdx),
                expected_nonce: expected_nonce.clone(),
                gpu_anchors: gpu_anchors.clone(),
            };
            verify_bundle(bundle, &opts).map(|v| PlatformClaimsOrSgx::Claims(Box::new(v.claims)))
        }
        Evidence::Snp(bundle) => {
            report.evidence = "snp-report";
            let opts = VerifyOptions {
                now_unix: now,
                anchors,
                collateral: None,
                expected_nonce: expected_nonce.clone(),
                gpu_anchors: gpu_anchors.clone(),
            };
            verify_bundle(bundle, &opts).and_then(|v| match v.snp {
                Some(snp) => Ok(PlatformClaimsOrSgx::Snp(Box::new(v.claims), Box::new(snp))),
                None => Err(EvidenceError::SnpReportMalformed("no SEV-SNP report")),
            })
        }
        Evidence::Sgx(q) => {
            report.evidence = "sgx-quote";
            match &collateral {
                None => Err(EvidenceError::CollateralMissing),
                Some(c) => verify_sgx_quote(q, &anchors, c, now).map(|v| {
                    let r = &v.quote.report;
                    PlatformClaimsOrSgx::Sgx {
                        status: v.tcb.status,
                        advisories: v.tcb.advisory_ids.clone(),
                        debug: v.debug(),
                        report: SgxReport {
                            mrenclave: hex::encode(r.mrenclave),
                            mrsigner: hex::encode(r.mrsigner),
                            isv_prod_id: r.isv_prod_id,
                            isv_svn: r.isv_svn,
                            attributes: hex::encode(r.attributes),
                            debug: v.debug(),
                            report_data: hex::encode(r.report_data),
                        },
                    }
                }),
            }
        }
    };
    match outcome {
        Err(e) => {
            report.code = Some(e.code());
            report.error = Some(e.to_string());
        }
        Ok(PlatformClaimsOrSgx::Claims(claims)) => {
            report.verified = true;
            report.tcb_status = Some(claims.tcb_status);
            report.advisory_ids = claims.advisory_ids.clone();
            report.rejections = rejections(policy.evaluate(&claims));
            report.claims = Some(*claims);
        }
        Ok(PlatformClaimsOrSgx::Snp(claims, snp)) => {
            report.verified = true;
            report.tcb_status = Some(claims.tcb_status);
            let appraisal = SnpAppraisal {
                allow_debug: a.allow_debug,
                layout: snp.product.tcb_layout(),
                ..SnpAppraisal::default()
            };
            report.rejections = appraisal
                .appraise(&claims)
                .into_iter()
                .map(|f| RejectionOut {
                    code: f.code(),
                    detail: snp_finding_detail(f, &snp),
                })
                .collect();
            report.snp = Some(SnpOut::new(&snp));
            report.claims = Some(*claims);
        }
        Ok(PlatformClaimsOrSgx::Sgx {
            status,
            advisories,
            debug,
            report: sgx,
        }) => {
            report.verified = true;
            report.tcb_status = Some(status);
            report.advisory_ids = advisories;
            if !policy.accept.contains(&status) {
                report.rejections.push(RejectionOut {
                    code: tl_evidence::accept::TCB_STATUS_NOT_ACCEPTED,
                    detail: format!("TCB status {status:?} is not accepted"),
                });
            }
            if debug && !policy.allow_debug {
                report.rejections.push(RejectionOut {
                    code: tl_evidence::accept::DEBUG_NOT_ALLOWED,
                    detail: "the enclave runs in debug mode".into(),
                });
            }
            report.sgx = Some(sgx);
        }
    }
    let bundle = match &evidence {
        Evidence::Tdx(b) | Evidence::Snp(b) => Some(b),
        Evidence::Sgx(_) => None,
    };
    if let (Some(cert), Some(root), Some(nonce), Some(b), Some(claims)) = (
        &a.certificate,
        &a.ca_root,
        &expected_nonce,
        bundle,
        &report.claims,
    ) {
        let (out, mut rej) = check_certificate(cert, root, nonce, b, &claims.report_data, now)?;
        report.certificate = Some(out);
        report.rejections.append(&mut rej);
    }
    if a.reference {
        reference_check(a, &evidence, collateral.as_deref(), now, &mut report)?;
    }
    report.ok = report.verified && report.rejections.is_empty();
    Ok(report)
}

/// `--reference`: dcap-qvl's verdict on the same quote, and a rejection
/// (`REFERENCE_DISAGREES`) where it differs from tl's.
fn reference_check(
    a: &VerifyArgs,
    evidence: &Evidence,
    collateral: Option<&TdxCollateral>,
    now: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    use tl_evidence::dcap::reference::{
        compare, verify_with_dcap_qvl, Agreement, DCAP_QVL_VERSION, REFERENCE_DISAGREES,
    };
    let quote = match evidence {
        Evidence::Tdx(b) => b.cpu.quote.as_slice(),
        Evidence::Sgx(q) => q.as_slice(),
        Evidence::Snp(_) => bail!("--reference applies to TDX and SGX quotes"),
    };
    let Some(col) = collateral else {
        bail!("--reference needs --collateral");
    };
    // Debug is an acceptance question on tl's side (DEBUG_NOT_ALLOWED), so
    // the verdicts compare with dcap-qvl verifying debug quotes too.
    let r = verify_with_dcap_qvl(quote, col, &reference_root(a)?, now, true);
    let ours = match (report.verified, report.tcb_status) {
        (true, Some(st)) => Some((st, report.advisory_ids.as_slice())),
        _ => None,
    };
    let (agreement, agrees) = match compare(ours, &r) {
        Agreement::AcceptedAlike => ("accepted alike".to_string(), true),
        Agreement::RejectedByBoth => ("rejected by both".to_string(), true),
        Agreement::Disagree(d) => (format!("DISAGREE: {d}"), false),
        other => (format!("DISAGREE: {other:?}"), false),
    };
    if !agrees && report.verified {
        report.rejections.push(RejectionOut {
            code: REFERENCE_DISAGREES,
            detail: agreement.trim_start_matches("DISAGREE: ").to_string(),
        });
    }
    report.reference = Some(ReferenceOut {
        verifier: format!("dcap-qvl {DCAP_QVL_VERSION}"),
        verified: r.is_ok(),
        tcb_status: r.as_ref().ok().map(|v| v.status.clone()),
        advisory_ids: r
            .as_ref()
            .map(|v| v.advisory_ids.clone())
            .unwrap_or_default(),
        error: r.err(),
        agreement,
        agrees,
    });
    Ok(())
}

/// The root `--reference` trusts: the one tl was told the quote chains to.
fn reference_root(a: &VerifyArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(p) = &a.simulated_root {
        return read_cert(p);
    }
    match &a.root_der {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display())),
        None => Ok(INTEL_SGX_ROOT_CA_DER.to_vec()),
    }
}

/// PLATFORM_INFO: bit 0 SMT enabled, 1 TSME enabled, 2 ECC memory, 3 RAPL
/// disabled, 4 ciphertext hiding enabled, 5 alias check complete.
fn platform_info_text(v: u64) -> String {
    const BITS: [&str; 6] = [
        "SMT enabled",
        "TSME enabled",
        "ECC memory",
        "RAPL disabled",
        "ciphertext hiding",
        "alias check complete",
    ];
    let set: Vec<&str> = BITS
        .iter()
        .enumerate()
        .filter(|(i, _)| v >> i & 1 == 1)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        format!("{v:#x}")
    } else {
        format!("{v:#x} ({})", set.join(", "))
    }
}

fn snp_finding_detail(f: SnpFinding, v: &VerifiedSnp) -> String {
    let r = &v.report;
    match f {
        SnpFinding::Debug => format!("guest policy {:#x} allows debugging (bit 19)", r.policy),
        SnpFinding::MigrationAgent => {
            format!(
                "guest policy {:#x} allows a migration agent (bit 18)",
                r.policy
            )
        }
        SnpFinding::Vmpl => format!("report is from VMPL {}, not VMPL 0", r.vmpl),
        other => format!("{other:?}"),
    }
}

enum PlatformClaimsOrSgx {
    Claims(Box<PlatformClaims>),
    Snp(Box<PlatformClaims>, Box<VerifiedSnp>),
    Sgx {
        status: tl_evidence::TcbStatus,
        advisories: Vec<String>,
        debug: bool,
        report: SgxReport,
    },
}

fn rejections(r: Result<(), Vec<Rejection>>) -> Vec<RejectionOut> {
    r.err()
        .unwrap_or_default()
        .into_iter()
        .map(|r| RejectionOut {
            code: r.code,
            detail: r.detail,
        })
        .collect()
}

fn policy(a: &VerifyArgs) -> anyhow::Result<AcceptPolicy> {
    let mut p = AcceptPolicy::default();
    if !a.accept_tcb.is_empty() {
        p.accept.clear();
        for s in &a.accept_tcb {
            let st = parse_acceptable_tcb_status(s).map_err(|e| anyhow!("--accept-tcb: {e}"))?;
            p.accept.insert(st);
        }
    }
    p.allow_debug = a.allow_debug;
    Ok(p)
}

fn print_human(r: &Report) {
    match (r.ok, r.code) {
        (true, _) => println!("verdict: ok"),
        (false, Some(code)) => println!(
            "verdict: FAILED {code}: {}",
            r.error.as_deref().unwrap_or_default()
        ),
        (false, None) => {
            let codes: Vec<_> = r.rejections.iter().map(|x| x.code).collect();
            println!("verdict: REJECTED ({})", codes.join(", "));
            for x in &r.rejections {
                println!("  {}: {}", x.code, x.detail);
            }
        }
    }
    println!("evidence:    {}", r.evidence);
    println!("time:        {}", r.at);
    if let Some(x) = &r.reference {
        let verdict = match (&x.tcb_status, &x.error) {
            (Some(s), _) if x.advisory_ids.is_empty() => s.clone(),
            (Some(s), _) => format!("{s} ({})", x.advisory_ids.join(", ")),
            (None, Some(e)) => format!("rejected: {e}"),
            (None, None) => "rejected".into(),
        };
        println!("reference:   {}: {verdict}", x.verifier);
        println!("agreement:   {}", x.agreement);
    }
    if let Some(s) = &r.tcb_status {
        println!("tcb status:  {s:?}");
        let adv = if r.advisory_ids.is_empty() {
            "none".to_string()
        } else {
            r.advisory_ids.join(", ")
        };
        println!("advisories:  {adv}");
    }
    if let Some(c) = &r.claims {
        if c.simulated {
            println!("simulated:   yes (chained to the simulated TEE root)");
        }
        if let Some(t) = &c.tdx {
            println!("MRTD:        {}", hex::encode(t.mrtd));
            for (i, m) in t.rtmr.iter().enumerate() {
                println!("RTMR{i}:       {}", hex::encode(m));
            }
            println!("REPORTDATA:  {}", hex::encode(c.report_data));
            println!(
                "attributes:  {:016x}{}",
                t.td_attributes,
                if c.debug { " (DEBUG)" } else { "" }
            );
            println!("XFAM:        {:016x}", t.xfam);
            println!("TEE_TCB_SVN: {}", hex::encode(t.tee_tcb_svn));
            if let Some(s) = &t.mrservicetd {
                println!("MRSERVICETD: {s}");
            }
        }
        if let Some(t) = &c.tpm {
            for (bank, pcrs) in &t.pcrs {
                for (i, v) in pcrs {
                    println!("PCR {bank}:{i:<2}  {v}");
                }
            }
            match &t.event_log_sha256 {
                Some(d) => println!("event log:   replayed to the quoted PCRs (sha256 {d})"),
                None => println!("event log:   none checked"),
            }
        }
        for g in &c.gpus {
            println!(
                "GPU {}:       driver {}, VBIOS {}, {} measurements (CC mode asserted by the loader)",
                g.index,
                g.driver_version,
                g.vbios_version,
                g.measurements.len()
            );
        }
        for s in &c.nvswitches {
            println!(
                "NVSwitch {}:  firmware {}, {} measurements (TNVL mode asserted by the loader)",
                s.index,
                s.vbios_version,
                s.measurements.len()
            );
        }
    }
    if let Some(s) = &r.snp {
        let b = &s.policy_bits;
        let yn = |x: bool| if x { "yes" } else { "no" };
        println!(
            "product:     {} (report v{}, signed by {})",
            s.product, s.version, s.signing_key
        );
        println!("MEASUREMENT: {}", s.measurement);
        println!("HOST_DATA:   {}", s.host_data);
        println!("REPORT_DATA: {}", s.report_data);
        println!("ID_KEY:      {}", s.id_key_digest);
        println!("AUTHOR_KEY:  {}", s.author_key_digest);
        println!(
            "FAMILY_ID:   {}  IMAGE_ID: {}  GUEST_SVN: {}",
            s.family_id, s.image_id, s.guest_svn
        );
        println!(
            "policy:      {} (ABI {}; debug {}, migration agent {}, SMT {}, single socket {})",
            s.policy,
            b.abi,
            yn(b.debug),
            yn(b.migration_agent),
            yn(b.smt),
            yn(b.single_socket)
        );
        println!("VMPL:        {}", s.vmpl);
        println!("platform:    {}", s.platform_info);
        println!("reported TCB:  {}", s.reported_tcb.line());
        println!("committed TCB: {}", s.committed_tcb.line());
        println!("current TCB:   {}", s.current_tcb.line());
        println!("firmware:    {}", s.firmware);
    }
    if let Some(s) = &r.sgx {
        println!("MRENCLAVE:   {}", s.mrenclave);
        println!("MRSIGNER:    {}", s.mrsigner);
        println!("ISVPRODID:   {}  ISVSVN: {}", s.isv_prod_id, s.isv_svn);
        println!(
            "attributes:  {}{}",
            s.attributes,
            if s.debug { " (DEBUG)" } else { "" }
        );
        println!("REPORTDATA:  {}", s.report_data);
    }
    if let Some(c) = &r.certificate {
        let ok = |b: bool| if b { "ok" } else { "MISMATCH" };
        match (&c.serial, &c.not_after) {
            (Some(serial), Some(until)) => {
                println!("certificate: serial {serial}, signed by the CA root, valid until {until}")
            }
            _ => println!("certificate: INVALID (see the rejections above)"),
        }
        if c.valid {
            if let Some(k) = &c.encryption_public_key {
                println!("  encryption key: {k}");
            }
            println!("  issued for this evidence: {}", ok(c.evidence_matches));
            println!(
                "  report data binds the nonce, the certificate's keys and the device evidence: {}",
                ok(c.binding)
            );
        }
    }
}

fn parse_time(t: &str) -> anyhow::Result<u64> {
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    parse_rfc3339_utc(t).ok_or_else(|| {
        anyhow!("--at {t:?}: expected RFC 3339 UTC like 2025-07-19T10:00:34Z or Unix seconds")
    })
}

/// Bundle JSON, hex text, or a raw quote; TDX or SGX by the header's TEE type.
fn detect(raw: &[u8]) -> anyhow::Result<Evidence> {
    let trimmed = raw.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        let b: EvidenceBundle =
            serde_json::from_slice(trimmed).context("evidence bundle JSON does not decode")?;
        if b.cpu.kind == CpuEvidenceKind::SnpReport {
            return Ok(Evidence::Snp(b));
        }
        return Ok(Evidence::Tdx(b));
    }
    let quote = if !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|c| c.is_ascii_hexdigit() || c.is_ascii_whitespace() || *c == b'x')
    {
        let s: String = String::from_utf8_lossy(trimmed)
            .split_whitespace()
            .collect();
        let s = s.strip_prefix("0x").unwrap_or(&s);
        hex::decode(s).context("hex quote does not decode")?
    } else {
        raw.to_vec()
    };
    if looks_like_snp_report(&quote) {
        return Ok(Evidence::Snp(EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::SnpReport,
            quote,
            certificates: vec![],
        })));
    }
    let tee = quote
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| anyhow!("too short for a quote"))?;
    if tee == TEE_TYPE_SGX {
        return Ok(Evidence::Sgx(quote));
    }
    Ok(Evidence::Tdx(EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote,
        certificates: vec![],
    })))
}

/// An SEV-SNP report (1184 bytes, maybe a certificate table after it): a
/// supported VERSION (a u32 of 2, 3 or 5, where a TDX/SGX quote starts with
/// a u16 version and a non-zero u16 key type) and SIGNATURE_ALGO 1.
fn looks_like_snp_report(b: &[u8]) -> bool {
    let u32_at = |at: usize| {
        b.get(at..at + 4)
            .and_then(|x| <[u8; 4]>::try_from(x).ok())
            .map(u32::from_le_bytes)
    };
    b.len() >= REPORT_LEN
        && u32_at(0).is_some_and(|v| SUPPORTED_VERSIONS.contains(&v))
        && u32_at(0x34) == Some(SIG_ALGO_ECDSA_P384_SHA384)
}

/// A chain from a PEM file (every certificate, in order) or one DER certificate.
fn read_chain(p: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    match std::str::from_utf8(&b) {
        Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {
            let certs =
                tl_ca::certs::pem_to_certs(text).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            if certs.is_empty() {
                bail!("{}: no certificate", p.display());
            }
            Ok(certs)
        }
        _ => Ok(vec![b]),
    }
}

fn read_cert(p: &Path) -> anyhow::Result<Vec<u8>> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    if b.starts_with(b"-----BEGIN") {
        // PEM: exactly one certificate.
        let text =
            std::str::from_utf8(&b).map_err(|_| anyhow!("{}: PEM is not UTF-8", p.display()))?;
        let mut certs =
            tl_ca::certs::pem_to_certs(text).map_err(|e| anyhow!("{}: {e}", p.display()))?;
        if certs.len() != 1 {
            bail!(
                "{}: expected one certificate, found {}",
                p.display(),
                certs.len()
            );
        }
        return Ok(certs.remove(0));
    }
    Ok(b)
}

fn read_collateral(p: &Path) -> anyhow::Result<TdxCollateral> {
    let map = |e: EvidenceError| anyhow!("{}: {} ({})", p.display(), e, e.code());
    if !p.is_dir() {
        let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        return TdxCollateral::from_json(&b).map_err(map);
    }
    let f = |name: &str| {
        let path = p.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let tcb_chain = f("tcb_info_issuer_chain.pem")?;
    let qe_chain = match f("qe_identity_issuer_chain.pem") {
        Ok(b) => b,
        Err(_) => tcb_chain.clone(),
    };
    let parts = (
        f("tcb_info.json")?,
        f("qe_identity.json")?,
        f("pck_crl_issuer_chain.pem")?,
        f("pck_crl.der")?,
        f("root_ca_crl.der")?,
    );
    if parts.0.is_empty() {
        bail!("{}: empty tcb_info.json", p.display());
    }
    TdxCollateral::from_parts(CollateralParts {
        tcb_info_response: &parts.0,
        qe_identity_response: &parts.1,
        tcb_info_issuer_chain: &tcb_chain,
        qe_identity_issuer_chain: &qe_chain,
        pck_crl_issuer_chain: &parts.2,
        pck_crl: &parts.3,
        root_ca_crl: &parts.4,
    })
    .map_err(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rel: &str) -> PathBuf {
        PathBuf::from(format!(
            "{}/../../shared/testdata/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
    }

    fn args(file: &str, collateral: Option<&str>, at: &str) -> VerifyArgs {
        VerifyArgs {
            file: data(file),
            collateral: collateral.map(data),
            at: Some(at.into()),
            root_der: None,
            simulated_root: None,
            accept_tcb: Vec::new(),
            allow_debug: false,
            certs: None,
            gpu_certs: None,
            gpu_nonce: None,
            nvswitch: false,
            gpu_root: None,
            nonce: None,
            certificate: None,
            ca_root: None,
            rim: Vec::new(),
            tolerate_index: Vec::new(),
            reference: false,
            json: true,
        }
    }

    #[test]
    fn detects_every_input_shape() {
        let raw = std::fs::read(data("tdx/dcap-qvl/tdx_quote")).expect("test data");
        let hex_text = std::fs::read(data("tdx/dcap-qvl/tdx-quote.hex")).expect("test data");
        let sgx = std::fs::read(data("tdx/dcap-qvl/sgx_quote")).expect("test data");
        assert!(matches!(detect(&raw), Ok(Evidence::Tdx(_))));
        assert!(matches!(detect(&hex_text), Ok(Evidence::Tdx(_))));
        assert!(matches!(detect(&sgx), Ok(Evidence::Sgx(_))));
        let Ok(Evidence::Tdx(b)) = detect(&raw) else {
            panic!("TDX")
        };
        assert!(matches!(detect(&b.to_json()), Ok(Evidence::Tdx(_))));
        assert!(detect(b"").is_err());
        assert!(detect(b"{not json").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1752919234").ok(), Some(1_752_919_234));
        assert_eq!(parse_time("2025-07-19T10:00:34Z").ok(), Some(1_752_919_234));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn exit_status_follows_verdict_and_policy() {
        let col = Some("tdx/dcap-qvl/tdx_quote_collateral.json");
        assert!(verify(args("tdx/dcap-qvl/tdx_quote", col, "1752919234")).is_ok());
        // Outside the collateral's window.
        assert!(verify(args("tdx/dcap-qvl/tdx_quote", col, "2025-08-01T00:00:00Z")).is_err());
        // No collateral.
        assert!(verify(args("tdx/dcap-qvl/tdx_quote", None, "1752919234")).is_err());
        // SGX: verified, but ConfigurationAndSWHardeningNeeded is not accepted
        // by default; accepted when listed.
        let sgx_col = Some("tdx/dcap-qvl/sgx_quote_collateral.json");
        assert!(verify(args("tdx/dcap-qvl/sgx_quote", sgx_col, "1752919277")).is_err());
        let mut a = args("tdx/dcap-qvl/sgx_quote", sgx_col, "1752919277");
        a.accept_tcb = vec!["ConfigurationAndSWHardeningNeeded".into()];
        assert!(verify(a).is_ok());
        let mut a = args("tdx/dcap-qvl/sgx_quote", sgx_col, "1752919277");
        a.accept_tcb = vec!["Fine".into()];
        assert!(verify(a).is_err());
    }

    /// `--reference`: dcap-qvl's verdict beside tl's, and the exit status
    /// fails where they disagree.
    #[test]
    fn reference_verdict_beside_tl() {
        let col = Some("tdx/dcap-qvl/tdx_quote_collateral.json");
        let mut a = args("tdx/dcap-qvl/tdx_quote", col, "1752919234");
        a.reference = true;
        let r = evaluate(&a).expect("evaluates");
        let x = r.reference.as_ref().expect("reference ran");
        assert!(r.ok && x.agrees && x.verified);
        assert_eq!(x.tcb_status.as_deref(), Some("UpToDate"));
        assert_eq!(x.agreement, "accepted alike");
        assert!(verify(a).is_ok());

        // SGX, with advisories: the same status and advisories on both sides.
        let mut a = args(
            "tdx/dcap-qvl/sgx_quote",
            Some("tdx/dcap-qvl/sgx_quote_collateral.json"),
            "1752919277",
        );
        a.reference = true;
        a.accept_tcb = vec!["ConfigurationAndSWHardeningNeeded".into()];
        let r = evaluate(&a).expect("evaluates");
        let x = r.reference.as_ref().expect("reference ran");
        assert!(r.ok && x.agrees);
        assert_eq!(x.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);

        // Outside the window: rejected by both, and tl's failure stands.
        let mut a = args("tdx/dcap-qvl/tdx_quote", col, "2025-08-01T00:00:00Z");
        a.reference = true;
        let r = evaluate(&a).expect("evaluates");
        let x = r.reference.as_ref().expect("reference ran");
        assert!(!r.ok && !x.verified && x.agrees);
        assert_eq!(x.agreement, "rejected by both");

        // A bit flipped in the root certificate the quote embeds in its PCK
        // chain: tl requires it to be the trusted root byte for byte,
        // dcap-qvl ignores it (scripts/crosscheck-dcap counts such flips).
        let mut quote = std::fs::read(data("tdx/dcap-qvl/tdx_quote")).expect("test data");
        quote[4017] ^= 1;
        let dir = tempfile::tempdir().expect("tempdir");
        let flipped = dir.path().join("flipped-quote.bin");
        std::fs::write(&flipped, &quote).expect("write");
        let mut a = args("tdx/dcap-qvl/tdx_quote", col, "1752919234");
        a.file = flipped;
        a.reference = true;
        let r = evaluate(&a).expect("evaluates");
        let x = r.reference.as_ref().expect("reference ran");
        assert_eq!(r.code, Some("TDX_PCK_CHAIN"));
        assert!(!r.ok && x.verified && !x.agrees);
        assert_eq!(x.agreement, "DISAGREE: dcap-qvl accepts it as UpToDate");
        assert!(verify(a).is_err());

        // SEV-SNP has no DCAP reference.
        let mut a = args("sev-snp/go-sev-guest/attestation.bin", col, SNP_T_GO);
        a.reference = true;
        let e = evaluate(&a).err().expect("refused").to_string();
        assert_eq!(e, "--reference applies to TDX and SGX quotes");
    }

    // SEV-SNP reports from real machines (shared/testdata/sev-snp), at the
    // MANIFEST's verification times where it gives one.
    const SNP_T_GO: &str = "2022-09-24T01:00:00Z";
    const SNP_T_2023: &str = "2023-05-01T00:00:00Z";
    const SNP_T_2025: &str = "2025-06-01T00:00:00Z";

    fn snp_args(file: &str, certs: Option<&str>, at: &str) -> VerifyArgs {
        let mut a = args(file, None, at);
        a.certs = certs.map(data);
        a
    }

    fn codes(r: &Report) -> Vec<&'static str> {
        r.rejections.iter().map(|x| x.code).collect()
    }

    #[test]
    fn snp_real_reports_verify_and_print_claims() {
        let r = evaluate(&snp_args(
            "sev-snp/virtee-sev/report_milan.hex",
            Some("sev-snp/virtee-sev/vcek_milan.der"),
            SNP_T_2023,
        ))
        .expect("runs");
        assert!(r.ok, "code {:?} rejections {:?}", r.code, codes(&r));
        assert_eq!(r.evidence, "snp-report");
        let s = r.snp.as_ref().expect("SNP claims");
        assert_eq!(s.product, "Milan");
        assert_eq!(s.measurement, "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f");
        assert_eq!(s.policy, "0x30000");
        assert!(!s.policy_bits.debug && !s.policy_bits.migration_agent);
        assert!(s.policy_bits.smt && !s.policy_bits.single_socket);
        assert_eq!(s.vmpl, 0);
        let t = &s.reported_tcb;
        assert_eq!((t.bootloader, t.tee, t.snp, t.microcode), (3, 0, 8, 115));
        assert_eq!(s.firmware, "1.52 build 4");
        assert_eq!(platform_info_text(0x3), "0x3 (SMT enabled, TSME enabled)");
        assert_eq!(platform_info_text(0), "0x0");
        assert!(s.report_data.starts_with("d447b55d"));
        assert_eq!(
            verify(snp_args(
                "sev-snp/virtee-sev/report_milan.hex",
                Some("sev-snp/virtee-sev/vcek_milan.der"),
                SNP_T_2023,
            ))
            .ok(),
            Some(())
        );

        let r = evaluate(&snp_args(
            "sev-snp/trustee/test-report.bin",
            Some("sev-snp/trustee/test-vcek.der"),
            SNP_T_2025,
        ))
        .expect("runs");
        assert!(r.ok, "code {:?} rejections {:?}", r.code, codes(&r));
        assert_eq!(r.snp.as_ref().map(|s| s.policy.as_str()), Some("0x3001f"));
    }

    #[test]
    fn snp_default_appraisal_refuses_debug_and_vmpl() {
        // go-sev-guest's report: a debug guest, at the MANIFEST time.
        let a = snp_args(
            "sev-snp/go-sev-guest/attestation.bin",
            Some("sev-snp/go-sev-guest/vcek.testcer"),
            SNP_T_GO,
        );
        let r = evaluate(&a).expect("runs");
        assert!(r.verified && !r.ok);
        assert_eq!(codes(&r), vec!["SNP_POLICY_DEBUG"]);
        assert!(r.snp.as_ref().is_some_and(|s| s.policy_bits.debug));
        assert!(verify(a).is_err());
        let mut a = snp_args(
            "sev-snp/go-sev-guest/attestation.bin",
            Some("sev-snp/go-sev-guest/vcek.testcer"),
            SNP_T_GO,
        );
        a.allow_debug = true;
        assert!(verify(a).is_ok());
        // trustee's VLEK report comes from VMPL 1.
        let r = evaluate(&snp_args(
            "sev-snp/trustee/test-vlek-report.bin",
            Some("sev-snp/trustee/test-vlek.der"),
            SNP_T_2025,
        ))
        .expect("runs");
        assert!(r.verified && !r.ok);
        assert_eq!(codes(&r), vec!["SNP_VMPL"]);
        assert_eq!(r.snp.as_ref().map(|s| s.signing_key.as_str()), Some("Vlek"));
    }

    fn tmp_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).expect("write");
        p
    }

    #[test]
    fn snp_input_shapes_table_bundle_and_pem() {
        use tl_evidence::snp::report::{build_cert_table, CertKind};
        let dir = tempfile::tempdir().expect("tmp");
        let report = std::fs::read(data("sev-snp/trustee/test-report.bin")).expect("test data");
        let vcek = std::fs::read(data("sev-snp/trustee/test-vcek.der")).expect("test data");
        let at = |p: PathBuf| VerifyArgs {
            file: p,
            ..args("x", None, SNP_T_2025)
        };

        // Report followed by the certificate table, no --certs.
        let mut ext = report.clone();
        ext.extend(build_cert_table(&[(CertKind::Vcek, &vcek)]));
        let r = evaluate(&at(tmp_file(&dir, "ext.bin", &ext))).expect("runs");
        assert!(r.ok, "{:?} {:?}", r.code, r.error);

        // Bundle JSON of kind snp-report with its chain.
        let bundle = EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::SnpReport,
            quote: report.clone(),
            certificates: vec![vcek.clone()],
        });
        let r = evaluate(&at(tmp_file(&dir, "b.json", &bundle.to_json()))).expect("runs");
        assert!(r.ok, "{:?} {:?}", r.code, r.error);
        assert_eq!(r.evidence, "snp-report");

        // --certs as a PEM chain [VCEK, ASK, ARK].
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&vcek);
        let mut pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        pem.push_str(
            &std::fs::read_to_string(data("sev-snp/go-sev-guest/ask_ark_milan.pem"))
                .expect("test data"),
        );
        let mut a = at(tmp_file(&dir, "r.bin", &report));
        a.certs = Some(tmp_file(&dir, "chain.pem", pem.as_bytes()));
        let r = evaluate(&a).expect("runs");
        assert!(r.ok, "{:?} {:?}", r.code, r.error);
        assert_eq!(
            read_chain(a.certs.as_deref().expect("set"))
                .expect("chain")
                .len(),
            3
        );

        // --certs on TDX evidence is a usage error.
        let mut a = args("tdx/dcap-qvl/tdx_quote", None, "1752919234");
        a.certs = Some(data("sev-snp/trustee/test-vcek.der"));
        assert!(evaluate(&a).is_err());
    }

    #[test]
    fn snp_tampering_and_missing_chain_fail_with_codes() {
        let dir = tempfile::tempdir().expect("tmp");
        let report = std::fs::read(data("sev-snp/trustee/test-report.bin")).expect("test data");
        let certs = Some("sev-snp/trustee/test-vcek.der");
        let run = |bytes: &[u8], certs: Option<&str>, at: &str| {
            let p = tmp_file(&dir, "t.bin", bytes);
            let mut a = snp_args("x", certs, at);
            a.file = p;
            evaluate(&a).expect("runs")
        };
        // A flipped measurement bit.
        let mut t = report.clone();
        t[0x90] ^= 1;
        let r = run(&t, certs, SNP_T_2025);
        assert_eq!((r.ok, r.code), (false, Some("SNP_REPORT_SIGNATURE")));
        // No chain anywhere.
        let r = run(&report, None, SNP_T_2025);
        assert_eq!((r.ok, r.code), (false, Some("SNP_VCEK_CHAIN")));
        // Another chip's VCEK.
        let r = run(
            &report,
            Some("sev-snp/virtee-sev/vcek_milan.der"),
            SNP_T_2025,
        );
        assert!(!r.ok && r.code.is_some());
        // After the ASK expired.
        let r = run(&report, certs, "2060-01-01T00:00:00Z");
        assert_eq!((r.ok, r.code), (false, Some("CERT_EXPIRED")));
        // Truncated: not recognised as a report, and never accepted.
        let p = tmp_file(&dir, "short.bin", &report[..1000]);
        let mut a = snp_args("x", certs, SNP_T_2025);
        a.file = p;
        assert!(evaluate(&a).map_or(true, |r| !r.ok));
    }

    #[test]
    fn detects_snp_shapes() {
        let raw = std::fs::read(data("sev-snp/trustee/test-report.bin")).expect("test data");
        let hex_text =
            std::fs::read(data("sev-snp/virtee-sev/report_milan.hex")).expect("test data");
        assert!(matches!(detect(&raw), Ok(Evidence::Snp(_))));
        assert!(matches!(detect(&hex_text), Ok(Evidence::Snp(_))));
        let tdx = std::fs::read(data("tdx/dcap-qvl/tdx_quote")).expect("test data");
        assert!(!looks_like_snp_report(&tdx));
        assert!(!looks_like_snp_report(&raw[..1183]));
    }
}
