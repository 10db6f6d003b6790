//! Verification of a TDX quote's signatures and PCK chain, without TCB
//! collateral: the steps that prove the quote came from a TDX platform whose
//! PCK chain ends at a trust anchor.
//!
//! Order of checks (the first failure is reported):
//! 1. the PCK chain (PEM in certification data type 5): decoding, links,
//!    CA constraints, validity at `now`, and the top certificate equal to a
//!    configured trust anchor (`TDX_PCK_CHAIN`, `CERT_*`,
//!    `SIMULATED_ROOT_NOT_ALLOWED`);
//! 2. the QE report's signature by the PCK leaf key (`TDX_QE_REPORT_SIGNATURE`);
//! 3. QE REPORTDATA[0..32] = SHA-256(attestation key || QE auth data)
//!    (`TDX_QE_BINDING`);
//! 4. the quote's signature over header and body by the attestation key
//!    (`TDX_QUOTE_SIGNATURE`).

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::Decode;
use sha2::{Digest, Sha256};

use super::Quote;
use crate::error::EvidenceError;
use crate::verify::{AnchorKind, TrustAnchors};
use crate::x509::{self, P256Cert};

type Result<T> = core::result::Result<T, EvidenceError>;

/// The Intel SGX extension of PCK certificates.
const SGX_EXTENSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1");
const SGX_TCB: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2");
const SGX_PCEID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.3");
const SGX_FMSPC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.4");

/// What the PCK leaf certificate's Intel SGX extension says (needed to pick
/// and evaluate TCB collateral). Absent from simulated PCK certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PckInfo {
    pub fmspc: [u8; 6],
    pub pce_id: [u8; 2],
    /// SGX TCB component SVNs 1..16.
    pub cpu_svn_components: [u8; 16],
    pub pce_svn: u16,
}

/// A quote whose PCK chain, QE report and signature have been checked.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct VerifiedQuote {
    pub quote: Quote,
    /// Which trust anchor the PCK chain ended at.
    pub anchor: AnchorKind,
    /// The PCK leaf's SGX extension, when it has one.
    pub pck: Option<PckInfo>,
    /// The PCK chain, DER, leaf first.
    pub pck_chain_der: Vec<Vec<u8>>,
}

/// Parse and check a quote's signatures and chain at `now_unix` (seconds
/// since the Unix epoch). TCB status is not evaluated here.
pub fn verify_quote_signatures(
    quote: &[u8],
    anchors: &TrustAnchors,
    now_unix: u64,
) -> Result<VerifiedQuote> {
    let quote = Quote::parse(quote)?;
    verify_parsed(quote, anchors, now_unix)
}

/// [`verify_quote_signatures`] on an already parsed quote.
pub fn verify_parsed(quote: Quote, anchors: &TrustAnchors, now_unix: u64) -> Result<VerifiedQuote> {
    // Intel's quoting enclave only, as Intel's QVL validates every quote
    // (the simulated TEE names Intel's too).
    if quote.header.qe_vendor_id != super::INTEL_QE_VENDOR_ID {
        return Err(EvidenceError::Unsupported("QE vendor ID is not Intel's"));
    }
    // 1. The PCK chain up to a trust anchor.
    let (chain, anchor) = pck_chain(&quote.pck_chain_pem, anchors, now_unix)?;
    // pck_chain returns exactly three certificates, the leaf first.
    let leaf = &chain[0];

    // 2. The QE report, signed by the PCK key.
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &leaf.public_key)
        .verify(&quote.qe_report_raw, &quote.qe_report_signature)
        .map_err(|_| EvidenceError::TdxQeReportSignature)?;

    // 3. The QE report binds the attestation key.
    let mut h = Sha256::new();
    h.update(quote.attestation_key);
    h.update(&quote.qe_auth_data);
    let expect: [u8; 32] = h.finalize().into();
    if quote.qe_report.report_data.get(..32) != Some(&expect[..]) {
        return Err(EvidenceError::TdxQeBinding);
    }

    // 4. The quote, signed by the attestation key.
    let mut ak = [0u8; 65];
    ak[0] = 4;
    ak[1..].copy_from_slice(&quote.attestation_key);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &ak)
        .verify(quote.signed_bytes(), &quote.signature)
        .map_err(|_| EvidenceError::TdxQuoteSignature)?;

    let pck = pck_info(leaf)?;
    Ok(VerifiedQuote {
        quote,
        anchor,
        pck,
        pck_chain_der: chain.into_iter().map(|c| c.der).collect(),
    })
}

/// A quote's PCK chain (PEM, leaf first) up to a trust anchor, as TDX and
/// SGX quotes carry it: exactly leaf, PCK CA and root (Intel's QVL), each
/// link valid at `now_unix`, the top a configured anchor; under Intel's
/// root the leaf must be named an SGX PCK Certificate (QVL 4.1.2.4.4), not
/// another certificate Intel's CAs issued.
pub(crate) fn pck_chain(
    pem: &[u8],
    anchors: &TrustAnchors,
    now_unix: u64,
) -> Result<(Vec<P256Cert>, AnchorKind)> {
    let chain = x509::pem_certificates(pem)?
        .iter()
        .map(|d| {
            P256Cert::parse(
                d,
                EvidenceError::TdxPckChain("certificate is not a P-256 ECDSA certificate"),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let [leaf, _, top] = chain.as_slice() else {
        return Err(EvidenceError::TdxPckChain(
            "not a leaf, PCK CA and root (3 certificates)",
        ));
    };
    x509::check_links(&chain, now_unix)?;
    let anchor = anchors.match_top(top, now_unix)?;
    if anchor == AnchorKind::Intel && !x509::subject_contains(leaf, b"SGX PCK Certificate") {
        return Err(EvidenceError::TdxPckChain(
            "leaf subject does not name an SGX PCK Certificate",
        ));
    }
    Ok((chain, anchor))
}

/// Read FMSPC, PCE-ID and the TCB from the PCK leaf's SGX extension.
fn pck_info(leaf: &P256Cert) -> Result<Option<PckInfo>> {
    let bad = EvidenceError::TdxPckChain("PCK SGX extension does not decode");
    let Some(ext) = leaf.extension(SGX_EXTENSION)? else {
        return Ok(None);
    };
    let items = Vec::<Any>::from_der(ext).map_err(|_| bad.clone())?;
    let mut fmspc = None;
    let mut pce_id = None;
    let mut tcb = None;
    for item in items {
        let (oid, value) = oid_value(&item).ok_or_else(|| bad.clone())?;
        if oid == SGX_FMSPC {
            fmspc = Some(octets::<6>(&value).ok_or_else(|| bad.clone())?);
        } else if oid == SGX_PCEID {
            pce_id = Some(octets::<2>(&value).ok_or_else(|| bad.clone())?);
        } else if oid == SGX_TCB {
            let mut comps = [0u8; 16];
            let mut pce_svn = None;
            let entries = value.decode_as::<Vec<Any>>().map_err(|_| bad.clone())?;
            for e in entries {
                let (eoid, v) = oid_value(&e).ok_or_else(|| bad.clone())?;
                let arcs: Vec<u32> = eoid.arcs().collect();
                let Some((&last, prefix)) = arcs.split_last() else {
                    continue;
                };
                let is_tcb_child = prefix.iter().copied().eq(SGX_TCB.arcs());
                if !is_tcb_child {
                    continue;
                }
                match last {
                    1..=16 => {
                        let n = v.decode_as::<u8>().map_err(|_| bad.clone())?;
                        if let Some(slot) = comps.get_mut((last - 1) as usize) {
                            *slot = n;
                        }
                    }
                    17 => pce_svn = Some(v.decode_as::<u16>().map_err(|_| bad.clone())?),
                    _ => {}
                }
            }
            tcb = Some((comps, pce_svn.ok_or_else(|| bad.clone())?));
        }
    }
    match (fmspc, pce_id, tcb) {
        (Some(fmspc), Some(pce_id), Some((cpu_svn_components, pce_svn))) => Ok(Some(PckInfo {
            fmspc,
            pce_id,
            cpu_svn_components,
            pce_svn,
        })),
        _ => Err(bad),
    }
}

/// `SEQUENCE { OBJECT IDENTIFIER, ANY }`.
fn oid_value(seq: &Any) -> Option<(ObjectIdentifier, Any)> {
    let inner = seq.decode_as::<Vec<Any>>().ok()?;
    let [oid, value] = <[Any; 2]>::try_from(inner).ok()?;
    Some((oid.decode_as::<ObjectIdentifier>().ok()?, value))
}

fn octets<const N: usize>(v: &Any) -> Option<[u8; N]> {
    let o = v.decode_as::<OctetString>().ok()?;
    o.as_bytes().try_into().ok()
}
