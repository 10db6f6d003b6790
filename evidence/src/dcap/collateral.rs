//! DCAP collateral: parsed once from the shapes Intel's PCS/PCCS serve, then
//! reused for any number of quotes of the same FMSPC.
//!
//! Two input shapes are read:
//! * the `QuoteCollateralV3` JSON object ([`TdxCollateral::from_json`]):
//!   `pck_crl_issuer_chain`, `root_ca_crl` (hex DER), `pck_crl` (hex DER),
//!   `tcb_info_issuer_chain`, `tcb_info` (the signed JSON text, as a
//!   string), `tcb_info_signature` (hex r || s), `qe_identity_issuer_chain`,
//!   `qe_identity`, `qe_identity_signature`;
//! * the separate PCS responses ([`TdxCollateral::from_parts`]):
//!   `{"tcbInfo": {...}, "signature": "<hex>"}`,
//!   `{"enclaveIdentity": {...}, "signature": "<hex>"}`, issuer chains as
//!   PEM and CRLs as DER (or hex DER).
//!
//! The signature of TCB info and QE identity covers the exact bytes of the
//! `tcbInfo` / `enclaveIdentity` JSON value, which are kept as received.

use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use super::crl::Crl;
use super::time::parse_rfc3339_utc;
use crate::claims::TcbStatus;
use crate::error::EvidenceError;
use crate::x509::{self, P256Cert};

type Result<T> = core::result::Result<T, EvidenceError>;

/// The largest collateral document accepted.
pub const MAX_COLLATERAL_LEN: usize = 4 << 20;
/// The most TCB levels (of the platform, a module or the QE) accepted.
const MAX_LEVELS: usize = 4096;

fn malformed(what: &'static str) -> EvidenceError {
    EvidenceError::TdxCollateralMalformed(what)
}

/// Which TEE a TCB info or QE identity describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DcapTee {
    /// TCB info id `TDX` / QE identity id `TD_QE`.
    Tdx,
    /// TCB info id `SGX` / QE identity id `QE`.
    Sgx,
}

/// Expected MRSIGNERSEAM and SEAMATTRIBUTES of a TDX module (the top-level
/// `tdxModule` or one of `tdxModuleIdentities`), decoded from its hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdxModule {
    pub mrsigner: [u8; 48],
    pub attributes: [u8; 8],
    pub attributes_mask: [u8; 8],
}

impl TdxModule {
    fn decode(mrsigner: &str, attributes: &str, attributes_mask: &str) -> Result<TdxModule> {
        Ok(TdxModule {
            mrsigner: fixed_hex(mrsigner, "TDX module mrsigner")?,
            attributes: fixed_hex(attributes, "TDX module attributes")?,
            attributes_mask: fixed_hex(attributes_mask, "TDX module attributes mask")?,
        })
    }

    /// The module values of a TDX module identity of the model.
    pub fn of_identity(i: &dcap_qvl::tcb_info::TdxModuleIdentity) -> Result<TdxModule> {
        Self::decode(&i.mrsigner, &i.attributes, &i.attributes_mask)
    }
}

/// A parsed TCB info (version 3).
///
/// The document itself is dcap-qvl's model of Intel's JSON ([`TcbInfo::model`]),
/// so the TCB-level rules of [`super::appraise`] run on the same data, with the
/// same matching functions, as dcap-qvl's verifier. Parsing checks what
/// those rules take for granted: 16 SGX (and, for TDX, 16 TDX) components in
/// every level, statuses Intel publishes, hex fields of the right length,
/// dates, bounded counts; then it sorts the levels into Intel's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcbInfo {
    pub tee: DcapTee,
    pub issue_date: u64,
    pub next_update: u64,
    pub fmspc: [u8; 6],
    pub pce_id: [u8; 2],
    /// The top-level `tdxModule`, decoded.
    pub tdx_module: Option<TdxModule>,
    /// The whole document in dcap-qvl's model; `tcb_levels` best first in
    /// Intel's order (SGX components, PCESVN, TDX components), whatever the
    /// JSON order.
    pub model: dcap_qvl::TcbInfo,
}

/// A parsed QE identity (version 2): dcap-qvl's model of Intel's JSON
/// ([`QeIdentity::model`]), checked, with its dates read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QeIdentity {
    pub tee: DcapTee,
    pub issue_date: u64,
    pub next_update: u64,
    /// The document; `miscselect` and its mask are the hex strings' four
    /// bytes in their order, the report's (little-endian) byte order, as
    /// Intel's QVL `vectorToUint32` and dcap-qvl read them.
    pub model: dcap_qvl::QeIdentity,
}

/// A JSON document with its exact signed bytes and ECDSA signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Signed<T> {
    /// The exact bytes the signature covers.
    pub(crate) raw: Vec<u8>,
    /// r || s.
    pub(crate) signature: [u8; 64],
    pub(crate) parsed: T,
}

/// Parsed DCAP collateral for one FMSPC (and one TEE kind). Cheap to share
/// behind an [`Arc`]; signature checks against a given Intel root are done
/// once and remembered, while time checks run on every verification. The
/// content is immutable after parsing, so the remembered result cannot
/// outlive the bytes it was computed on.
#[derive(Clone, Debug)]
pub struct TdxCollateral {
    pub(crate) tcb_info: Signed<TcbInfo>,
    pub(crate) qe_identity: Signed<QeIdentity>,
    pub(crate) tcb_info_chain: Vec<P256Cert>,
    pub(crate) qe_identity_chain: Vec<P256Cert>,
    pub(crate) pck_crl_chain: Vec<P256Cert>,
    pub(crate) root_ca_crl: Crl,
    pub(crate) pck_crl: Crl,
    /// The Intel root (DER) against which every signature of this
    /// collateral has been checked, once it has been.
    pub(crate) signatures_checked_for: Arc<OnceLock<Vec<u8>>>,
}

impl PartialEq for TdxCollateral {
    fn eq(&self, o: &Self) -> bool {
        self.tcb_info == o.tcb_info
            && self.qe_identity == o.qe_identity
            && ders(&self.tcb_info_chain) == ders(&o.tcb_info_chain)
            && ders(&self.qe_identity_chain) == ders(&o.qe_identity_chain)
            && ders(&self.pck_crl_chain) == ders(&o.pck_crl_chain)
            && self.root_ca_crl == o.root_ca_crl
            && self.pck_crl == o.pck_crl
    }
}
impl Eq for TdxCollateral {}

fn ders(c: &[P256Cert]) -> Vec<&[u8]> {
    c.iter().map(|c| c.der.as_slice()).collect()
}

/// The separate PCS responses and files that make up collateral.
#[derive(Clone, Copy, Debug)]
pub struct CollateralParts<'a> {
    /// `{"tcbInfo": {...}, "signature": "<hex>"}`.
    pub tcb_info_response: &'a [u8],
    /// `{"enclaveIdentity": {...}, "signature": "<hex>"}`.
    pub qe_identity_response: &'a [u8],
    /// PEM: TCB signing certificate, Intel root.
    pub tcb_info_issuer_chain: &'a [u8],
    /// PEM: TCB signing certificate, Intel root (usually the same bytes).
    pub qe_identity_issuer_chain: &'a [u8],
    /// PEM: PCK Platform or Processor CA, Intel root.
    pub pck_crl_issuer_chain: &'a [u8],
    /// The PCK CA's CRL, DER or hex DER.
    pub pck_crl: &'a [u8],
    /// The Intel root CA's CRL, DER or hex DER.
    pub root_ca_crl: &'a [u8],
}

#[derive(Deserialize)]
struct CollateralV3Json {
    pck_crl_issuer_chain: String,
    root_ca_crl: String,
    pck_crl: String,
    tcb_info_issuer_chain: String,
    tcb_info: String,
    tcb_info_signature: String,
    qe_identity_issuer_chain: String,
    qe_identity: String,
    qe_identity_signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TcbInfoResponse<'a> {
    #[serde(borrow)]
    tcb_info: &'a serde_json::value::RawValue,
    signature: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QeIdentityResponse<'a> {
    #[serde(borrow)]
    enclave_identity: &'a serde_json::value::RawValue,
    signature: String,
}

impl TdxCollateral {
    /// Parse a `QuoteCollateralV3` JSON document.
    pub fn from_json(json: &[u8]) -> Result<TdxCollateral> {
        if json.len() > MAX_COLLATERAL_LEN {
            return Err(malformed("collateral too large"));
        }
        let c: CollateralV3Json =
            serde_json::from_slice(json).map_err(|_| malformed("collateral JSON"))?;
        Self::build(
            signed(c.tcb_info.as_bytes(), &c.tcb_info_signature, parse_tcb_info)?,
            signed(
                c.qe_identity.as_bytes(),
                &c.qe_identity_signature,
                parse_qe_identity,
            )?,
            c.tcb_info_issuer_chain.as_bytes(),
            c.qe_identity_issuer_chain.as_bytes(),
            c.pck_crl_issuer_chain.as_bytes(),
            &hex_bytes(&c.pck_crl, "PCK CRL hex")?,
            &hex_bytes(&c.root_ca_crl, "root CA CRL hex")?,
        )
    }

    /// Assemble collateral from separate PCS responses and files.
    pub fn from_parts(p: CollateralParts<'_>) -> Result<TdxCollateral> {
        let total = [
            p.tcb_info_response,
            p.qe_identity_response,
            p.tcb_info_issuer_chain,
            p.qe_identity_issuer_chain,
            p.pck_crl_issuer_chain,
            p.pck_crl,
            p.root_ca_crl,
        ]
        .iter()
        .map(|b| b.len())
        .fold(0usize, usize::saturating_add);
        if total > MAX_COLLATERAL_LEN {
            return Err(malformed("collateral too large"));
        }
        let t: TcbInfoResponse<'_> = serde_json::from_slice(p.tcb_info_response)
            .map_err(|_| malformed("TCB info response JSON"))?;
        let q: QeIdentityResponse<'_> = serde_json::from_slice(p.qe_identity_response)
            .map_err(|_| malformed("QE identity response JSON"))?;
        Self::build(
            signed(t.tcb_info.get().as_bytes(), &t.signature, parse_tcb_info)?,
            signed(
                q.enclave_identity.get().as_bytes(),
                &q.signature,
                parse_qe_identity,
            )?,
            p.tcb_info_issuer_chain,
            p.qe_identity_issuer_chain,
            p.pck_crl_issuer_chain,
            &der_or_hex(p.pck_crl, "PCK CRL")?,
            &der_or_hex(p.root_ca_crl, "root CA CRL")?,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        tcb_info: Signed<TcbInfo>,
        qe_identity: Signed<QeIdentity>,
        tcb_chain: &[u8],
        qe_chain: &[u8],
        crl_chain: &[u8],
        pck_crl: &[u8],
        root_crl: &[u8],
    ) -> Result<TdxCollateral> {
        if tcb_info.parsed.tee != qe_identity.parsed.tee {
            return Err(EvidenceError::TdxCollateralMismatch(
                "TCB info and QE identity are for different TEEs",
            ));
        }
        Ok(TdxCollateral {
            tcb_info,
            qe_identity,
            tcb_info_chain: chain(tcb_chain, "TCB info issuer chain")?,
            qe_identity_chain: chain(qe_chain, "QE identity issuer chain")?,
            pck_crl_chain: chain(crl_chain, "PCK CRL issuer chain")?,
            root_ca_crl: Crl::parse(root_crl, "root CA CRL does not decode")?,
            pck_crl: Crl::parse(pck_crl, "PCK CRL does not decode")?,
            signatures_checked_for: Arc::new(OnceLock::new()),
        })
    }

    /// The parsed TCB info (its signature is checked at verification).
    pub fn tcb_info(&self) -> &TcbInfo {
        &self.tcb_info.parsed
    }

    /// The parsed QE identity (its signature is checked at verification).
    pub fn qe_identity(&self) -> &QeIdentity {
        &self.qe_identity.parsed
    }

    /// The root CA CRL.
    pub fn root_ca_crl(&self) -> &Crl {
        &self.root_ca_crl
    }

    /// The PCK CA CRL.
    pub fn pck_crl(&self) -> &Crl {
        &self.pck_crl
    }

    /// The FMSPC this collateral is for (the CA's cache key, with the TEE).
    pub fn fmspc(&self) -> [u8; 6] {
        self.tcb_info.parsed.fmspc
    }

    /// Which TEE this collateral is for.
    pub fn tee(&self) -> DcapTee {
        self.tcb_info.parsed.tee
    }

    /// The window in which every dated item is current: the latest
    /// issueDate/thisUpdate and the earliest nextUpdate of TCB info, QE
    /// identity and both CRLs (seconds since the epoch, inclusive). A
    /// cache should refresh the collateral before the end.
    pub fn validity_window(&self) -> (u64, u64) {
        let t = &self.tcb_info.parsed;
        let q = &self.qe_identity.parsed;
        let starts = [
            t.issue_date,
            q.issue_date,
            self.root_ca_crl.this_update,
            self.pck_crl.this_update,
        ];
        let ends = [
            t.next_update,
            q.next_update,
            self.root_ca_crl.next_update,
            self.pck_crl.next_update,
        ];
        (
            starts.into_iter().max().unwrap_or(0),
            ends.into_iter().min().unwrap_or(0),
        )
    }
}

fn chain(pem: &[u8], what: &'static str) -> Result<Vec<P256Cert>> {
    let ders = x509::pem_certificates(pem).map_err(|_| malformed(what))?;
    if ders.len() < 2 {
        return Err(malformed(what));
    }
    ders.iter()
        .map(|d| P256Cert::parse(d, malformed(what)))
        .collect()
}

fn hex_bytes(s: &str, what: &'static str) -> Result<Vec<u8>> {
    let s = s.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map_err(|_| malformed(what))
}

fn der_or_hex(b: &[u8], what: &'static str) -> Result<Vec<u8>> {
    // DER CRLs start with a SEQUENCE tag; hex text never does.
    if b.first() == Some(&0x30) {
        return Ok(b.to_vec());
    }
    let s = core::str::from_utf8(b).map_err(|_| malformed(what))?;
    hex_bytes(s, what)
}

fn signed<T>(raw: &[u8], sig_hex: &str, parse: fn(&[u8]) -> Result<T>) -> Result<Signed<T>> {
    let sig = hex_bytes(sig_hex, "signature hex")?;
    let signature: [u8; 64] = sig
        .as_slice()
        .try_into()
        .map_err(|_| malformed("signature is not 64 bytes"))?;
    Ok(Signed {
        raw: raw.to_vec(),
        signature,
        parsed: parse(raw)?,
    })
}

fn fixed_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N]> {
    let v = hex::decode(s).map_err(|_| malformed(what))?;
    v.as_slice().try_into().map_err(|_| malformed(what))
}

fn time(s: &str, what: &'static str) -> Result<u64> {
    parse_rfc3339_utc(s).ok_or_else(|| malformed(what))
}

/// The statuses Intel publishes in TCB info and QE identity levels
/// (dcap-qvl's enum also holds the TD 1.5 relaunch statuses, which are
/// results of appraisal, never collateral).
fn published_status(s: dcap_qvl::TcbStatus) -> Result<()> {
    use dcap_qvl::TcbStatus::*;
    match s {
        UpToDate
        | SWHardeningNeeded
        | ConfigurationNeeded
        | ConfigurationAndSWHardeningNeeded
        | OutOfDate
        | OutOfDateConfigurationNeeded
        | Revoked => Ok(()),
        TDRelaunchAdvised | TDRelaunchAdvisedConfigurationNeeded => {
            Err(malformed("unknown TCB status"))
        }
    }
}

/// dcap-qvl's status as this crate's claim.
pub(crate) fn status_claim(s: dcap_qvl::TcbStatus) -> TcbStatus {
    use dcap_qvl::TcbStatus as D;
    match s {
        D::UpToDate => TcbStatus::UpToDate,
        D::SWHardeningNeeded => TcbStatus::SWHardeningNeeded,
        D::ConfigurationNeeded => TcbStatus::ConfigurationNeeded,
        D::ConfigurationAndSWHardeningNeeded => TcbStatus::ConfigurationAndSWHardeningNeeded,
        D::OutOfDate => TcbStatus::OutOfDate,
        D::OutOfDateConfigurationNeeded => TcbStatus::OutOfDateConfigurationNeeded,
        D::Revoked => TcbStatus::Revoked,
        D::TDRelaunchAdvised => TcbStatus::TDRelaunchAdvised,
        D::TDRelaunchAdvisedConfigurationNeeded => TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
    }
}

/// Parse the `tcbInfo` JSON value (version 3, TDX or SGX) into dcap-qvl's
/// model, check it and sort its levels into Intel's order.
pub fn parse_tcb_info(raw: &[u8]) -> Result<TcbInfo> {
    let mut m: dcap_qvl::TcbInfo =
        serde_json::from_slice(raw).map_err(|_| malformed("TCB info JSON"))?;
    let tee = match m.id.as_str() {
        "TDX" => DcapTee::Tdx,
        "SGX" => DcapTee::Sgx,
        _ => return Err(malformed("TCB info id")),
    };
    if m.version != 3 {
        return Err(malformed("TCB info version is not 3"));
    }
    if m.tcb_levels.len() > MAX_LEVELS || m.tdx_module_identities.len() > MAX_LEVELS {
        return Err(malformed("too many TCB levels"));
    }
    for l in &m.tcb_levels {
        if l.tcb.sgx_components.len() != 16 {
            return Err(malformed("sgxtcbcomponents"));
        }
        match (tee, l.tcb.tdx_components.len()) {
            (DcapTee::Tdx, 16) | (DcapTee::Sgx, _) => {}
            (DcapTee::Tdx, 0) => return Err(malformed("TDX TCB level without tdxtcbcomponents")),
            (DcapTee::Tdx, _) => return Err(malformed("tdxtcbcomponents")),
        }
        published_status(l.tcb_status)?;
    }
    for i in &m.tdx_module_identities {
        TdxModule::of_identity(i)?;
        if i.tcb_levels.len() > MAX_LEVELS {
            return Err(malformed("too many TCB levels"));
        }
        for l in &i.tcb_levels {
            published_status(l.tcb_status)?;
        }
    }
    // Intel's verifier does not rely on the JSON order: it keeps the levels
    // sorted best first by SGX components, then PCESVN, then (TDX) TDX
    // components, as dcap-qvl's `canonicalize_tcb_levels` does. A stable
    // sort keeps the JSON order among equals.
    m.tcb_levels.sort_by(|a, b| {
        b.tcb
            .sgx_components
            .cmp(&a.tcb.sgx_components)
            .then(b.tcb.pce_svn.cmp(&a.tcb.pce_svn))
            .then(b.tcb.tdx_components.cmp(&a.tcb.tdx_components))
    });
    Ok(TcbInfo {
        tee,
        issue_date: time(&m.issue_date, "TCB info issueDate")?,
        next_update: time(&m.next_update, "TCB info nextUpdate")?,
        fmspc: fixed_hex(&m.fmspc, "TCB info fmspc")?,
        pce_id: fixed_hex(&m.pce_id, "TCB info pceId")?,
        tdx_module: m
            .tdx_module
            .as_ref()
            .map(|t| TdxModule::decode(&t.mrsigner, &t.attributes, &t.attributes_mask))
            .transpose()?,
        model: m,
    })
}

/// Parse the `enclaveIdentity` JSON value (version 2, `QE` or `TD_QE`) into
/// dcap-qvl's model and check it.
pub fn parse_qe_identity(raw: &[u8]) -> Result<QeIdentity> {
    let m: dcap_qvl::QeIdentity =
        serde_json::from_slice(raw).map_err(|_| malformed("QE identity JSON"))?;
    let tee = match m.id.as_str() {
        "TD_QE" => DcapTee::Tdx,
        "QE" => DcapTee::Sgx,
        _ => return Err(malformed("QE identity id")),
    };
    if m.version != 2 {
        return Err(malformed("QE identity version is not 2"));
    }
    if m.tcb_levels.len() > MAX_LEVELS {
        return Err(malformed("too many TCB levels"));
    }
    for l in &m.tcb_levels {
        published_status(l.tcb_status)?;
    }
    Ok(QeIdentity {
        tee,
        issue_date: time(&m.issue_date, "QE identity issueDate")?,
        next_update: time(&m.next_update, "QE identity nextUpdate")?,
        model: m,
    })
}
