//! Fetching DCAP collateral from a PCCS (or Intel's PCS) into the offline
//! collateral directory the CA reads (`tl-ca serve --collateral-dir`).
//!
//! This is the separate, explicit step `tl-ca fetch-collateral`; the CA never
//! fetches while verifying. For one TEE (TDX or SGX), FMSPC and PCK CA it
//! GETs, with the PCS v4 API:
//!
//! | what | path | issuer chain header |
//! |---|---|---|
//! | TCB info | `{tdx,sgx}/certification/v4/tcb?fmspc=HEX` | `TCB-Info-Issuer-Chain` (or `SGX-TCB-Info-Issuer-Chain`) |
//! | QE identity | `{tdx,sgx}/certification/v4/qe/identity` | `SGX-Enclave-Identity-Issuer-Chain` |
//! | PCK CRL | `sgx/certification/v4/pckcrl?ca=platform\|processor&encoding=der` | `SGX-PCK-CRL-Issuer-Chain` |
//! | root CA CRL | `sgx/certification/v4/rootcacrl` (PCCS) | none |
//!
//! Nothing is kept because of where it came from: the pieces are parsed
//! ([`TdxCollateral::from_parts`]) and checked on their own
//! ([`tl_evidence::dcap::verify_collateral`]: every chain to the Intel SGX
//! Root CA shipped with `tl-evidence`, both CRLs, both signatures, every
//! validity window now), and must be for the TEE and FMSPC asked for, before
//! anything is written. The directory `<tee>-<fmspc>` (PCS layout, see
//! [`crate::collateral`]) then replaces any previous one by rename, so a CA
//! restarting in between reads the old or the new collateral, never a mix.
//! Transport: [`crate::kds::KdsClient`] (https only, no redirects, bounded
//! time and size).

use std::path::{Path, PathBuf};

use tl_evidence::dcap::{CollateralParts, DcapTee, TdxCollateral};

use crate::kds::{KdsClient, KdsError};

/// Intel's Provisioning Certification Service.
pub const DEFAULT_PCS_URL: &str = "https://api.trustedservices.intel.com";

/// Which PCK CA issued the platform's PCK certificate (and so which CRL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PckCa {
    Platform,
    Processor,
}

impl PckCa {
    /// The `ca=` query value.
    pub fn as_str(self) -> &'static str {
        match self {
            PckCa::Platform => "platform",
            PckCa::Processor => "processor",
        }
    }
}

/// What to fetch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollateralRequest {
    pub tee: DcapTee,
    pub fmspc: [u8; 6],
    pub ca: PckCa,
}

impl CollateralRequest {
    /// The directory name under the output directory: `tdx-b0c06f000000`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", tee_path(self.tee), hex::encode(self.fmspc))
    }
}

fn tee_path(t: DcapTee) -> &'static str {
    match t {
        DcapTee::Tdx => "tdx",
        DcapTee::Sgx => "sgx",
    }
}

/// Why a collateral fetch failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PccsError {
    /// The HTTPS exchange failed (its own code says how).
    #[error(transparent)]
    Transport(#[from] KdsError),
    /// A response lacks the issuer chain header, or it is not URL-encoded PEM.
    #[error("{what}: issuer chain header missing or not URL-encoded UTF-8")]
    Header { what: &'static str },
    /// The collateral does not parse or does not verify; `reason` is the
    /// verifier's code.
    #[error("collateral refused ({reason}): {detail}")]
    Refused {
        reason: &'static str,
        detail: String,
    },
    /// Writing the directory failed.
    #[error("{path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

impl PccsError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            PccsError::Transport(e) => match e {
                KdsError::Config(_) => "PCCS_CONFIG",
                KdsError::Timeout { .. } => "PCCS_TIMEOUT",
                KdsError::Http { .. } => "PCCS_HTTP",
                KdsError::Status { .. } => "PCCS_HTTP_STATUS",
                KdsError::TooLarge { .. } => "PCCS_RESPONSE_TOO_LARGE",
                _ => "PCCS_TRANSPORT",
            },
            PccsError::Header { .. } => "PCCS_ISSUER_CHAIN_HEADER",
            PccsError::Refused { .. } => "PCCS_RESPONSE_REFUSED",
            PccsError::Write { .. } => "PCCS_WRITE",
        }
    }
}

fn header_chain(
    h: &reqwest::header::HeaderMap,
    names: &[&str],
    what: &'static str,
) -> Result<Vec<u8>, PccsError> {
    let raw = names
        .iter()
        .find_map(|n| h.get(*n))
        .ok_or(PccsError::Header { what })?;
    let decoded = percent_encoding::percent_decode(raw.as_bytes())
        .decode_utf8()
        .map_err(|_| PccsError::Header { what })?;
    Ok(decoded.into_owned().into_bytes())
}

/// The fetched pieces, before verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchedParts {
    pub tcb_info: Vec<u8>,
    pub tcb_info_issuer_chain: Vec<u8>,
    pub qe_identity: Vec<u8>,
    pub qe_identity_issuer_chain: Vec<u8>,
    pub pck_crl: Vec<u8>,
    pub pck_crl_issuer_chain: Vec<u8>,
    pub root_ca_crl: Vec<u8>,
}

impl FetchedParts {
    fn parts(&self) -> CollateralParts<'_> {
        CollateralParts {
            tcb_info_response: &self.tcb_info,
            qe_identity_response: &self.qe_identity,
            tcb_info_issuer_chain: &self.tcb_info_issuer_chain,
            qe_identity_issuer_chain: &self.qe_identity_issuer_chain,
            pck_crl_issuer_chain: &self.pck_crl_issuer_chain,
            pck_crl: &self.pck_crl,
            root_ca_crl: &self.root_ca_crl,
        }
    }

    /// Parse and verify against `intel_root_der` at `now_unix`, for `req`.
    pub fn verify(
        &self,
        req: &CollateralRequest,
        intel_root_der: &[u8],
        now_unix: u64,
    ) -> Result<TdxCollateral, PccsError> {
        let refused = |e: tl_evidence::EvidenceError| PccsError::Refused {
            reason: e.code(),
            detail: e.to_string(),
        };
        let col = TdxCollateral::from_parts(self.parts()).map_err(refused)?;
        tl_evidence::dcap::verify_collateral(&col, intel_root_der, now_unix).map_err(refused)?;
        if col.fmspc() != req.fmspc || col.tee() != req.tee {
            return Err(PccsError::Refused {
                reason: "PCCS_WRONG_COLLATERAL",
                detail: format!(
                    "asked for {} FMSPC {}, got {:?} FMSPC {}",
                    tee_path(req.tee),
                    hex::encode(req.fmspc),
                    col.tee(),
                    hex::encode(col.fmspc())
                ),
            });
        }
        Ok(col)
    }

    /// Write the PCS layout [`crate::collateral::read_collateral`] reads.
    fn write_into(&self, dir: &Path) -> Result<(), PccsError> {
        for (name, bytes) in [
            ("tcb_info.json", &self.tcb_info),
            ("tcb_info_issuer_chain.pem", &self.tcb_info_issuer_chain),
            ("qe_identity.json", &self.qe_identity),
            (
                "qe_identity_issuer_chain.pem",
                &self.qe_identity_issuer_chain,
            ),
            ("pck_crl.der", &self.pck_crl),
            ("pck_crl_issuer_chain.pem", &self.pck_crl_issuer_chain),
            ("root_ca_crl.der", &self.root_ca_crl),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, bytes).map_err(|e| PccsError::Write {
                path: p.clone(),
                detail: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// GET every piece of `req` from the PCCS behind `client`.
pub fn fetch_parts(client: &KdsClient, req: &CollateralRequest) -> Result<FetchedParts, PccsError> {
    let t = tee_path(req.tee);
    let (tcb_info, h) = client.get_with_headers(&format!(
        "{t}/certification/v4/tcb?fmspc={}",
        hex::encode(req.fmspc)
    ))?;
    let tcb_info_issuer_chain = header_chain(
        &h,
        &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
        "TCB info",
    )?;
    let (qe_identity, h) = client.get_with_headers(&format!("{t}/certification/v4/qe/identity"))?;
    let qe_identity_issuer_chain = header_chain(
        &h,
        &[
            "SGX-Enclave-Identity-Issuer-Chain",
            "Enclave-Identity-Issuer-Chain",
        ],
        "QE identity",
    )?;
    let (pck_crl, h) = client.get_with_headers(&format!(
        "sgx/certification/v4/pckcrl?ca={}&encoding=der",
        req.ca.as_str()
    ))?;
    let pck_crl_issuer_chain = header_chain(&h, &["SGX-PCK-CRL-Issuer-Chain"], "PCK CRL")?;
    let root_ca_crl = client.get("sgx/certification/v4/rootcacrl")?;
    Ok(FetchedParts {
        tcb_info,
        tcb_info_issuer_chain,
        qe_identity,
        qe_identity_issuer_chain,
        pck_crl,
        pck_crl_issuer_chain,
        root_ca_crl,
    })
}

/// Fetch, verify at `now_unix` against the shipped Intel root, and install
/// `out_dir/<req.dir_name()>`. Returns that directory.
pub fn fetch_collateral(
    client: &KdsClient,
    req: &CollateralRequest,
    out_dir: &Path,
    now_unix: u64,
) -> Result<PathBuf, PccsError> {
    let parts = fetch_parts(client, req)?;
    parts.verify(req, tl_evidence::INTEL_SGX_ROOT_CA_DER, now_unix)?;
    install(&parts, out_dir, &req.dir_name())
}

/// Write `parts` to a fresh sibling directory, then rename it into place
/// (the previous directory, if any, is moved aside first and removed after).
pub fn install(parts: &FetchedParts, out_dir: &Path, name: &str) -> Result<PathBuf, PccsError> {
    let werr = |path: &Path, e: std::io::Error| PccsError::Write {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let fin = out_dir.join(name);
    let tmp = out_dir.join(format!(".{name}.new-{}", std::process::id()));
    let old = out_dir.join(format!(".{name}.old-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| werr(&tmp, e))?;
    if let Err(e) = parts.write_into(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let had_old = fin.exists();
    if had_old {
        std::fs::rename(&fin, &old).map_err(|e| werr(&fin, e))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &fin) {
        if had_old {
            let _ = std::fs::rename(&old, &fin);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(werr(&fin, e));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(fin)
}
