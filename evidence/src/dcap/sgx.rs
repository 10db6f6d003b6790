//! SGX ECDSA quotes, version 3 (an enclave's report, signed through the
//! quoting enclave like a TDX quote): a total parser, the signature-chain
//! check and DCAP appraisal with SGX collateral.
//!
//! Layout (little-endian): 48-byte header (version 3, attestation key type
//! 2, TEE type 0), 384-byte SGX report body, `u32` signature data length,
//! then the signature data: quote signature (64), attestation key (64), QE
//! report (384), QE report signature (64), `u16` QE auth data length and
//! data, `u16` certification data type (must be 5: PCK chain, PEM), `u32`
//! size and the PEM chain. The signature data must be consumed exactly;
//! bytes after it are ignored.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::Decode;
use sha2::{Digest, Sha256};

use super::{appraise, DcapInput, TcbEvaluation, TdxCollateral};
use crate::error::EvidenceError;
use crate::tdx::verify::PckInfo;
use crate::tdx::{QeReport, ATT_KEY_TYPE_ECDSA_P256, CERT_DATA_PCK_CHAIN, SGX_REPORT_LEN};
use crate::verify::{AnchorKind, TrustAnchors};
use crate::x509::P256Cert;

type Result<T> = core::result::Result<T, EvidenceError>;

/// TEE type of SGX in the quote header.
pub const TEE_TYPE_SGX: u32 = 0;

/// A parsed SGX quote v3. Nothing in it is trusted before
/// [`verify_sgx_quote`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SgxQuote {
    pub qe_svn: u16,
    pub pce_svn: u16,
    /// The enclave's report body (same layout as the QE report).
    pub report: QeReport,
    pub signature: [u8; 64],
    pub attestation_key: [u8; 64],
    pub qe_report: QeReport,
    qe_report_raw: [u8; SGX_REPORT_LEN],
    pub qe_report_signature: [u8; 64],
    pub qe_auth_data: Vec<u8>,
    pub pck_chain_pem: Vec<u8>,
    signed: Vec<u8>,
}

impl SgxQuote {
    /// Parse. Total: any input gives `Ok` or an error.
    pub fn parse(input: &[u8]) -> Result<SgxQuote> {
        let mut r = Reader { buf: input, pos: 0 };
        let version = r.u16()?;
        let att_key_type = r.u16()?;
        let tee_type = r.u32()?;
        let qe_svn = r.u16()?;
        let pce_svn = r.u16()?;
        let qe_vendor_id = r.take(16)?;
        r.take(20)?; // user data
        if qe_vendor_id != crate::tdx::INTEL_QE_VENDOR_ID {
            return Err(EvidenceError::Unsupported("QE vendor ID is not Intel's"));
        }
        if version != 3 {
            return Err(EvidenceError::Unsupported("SGX quote version is not 3"));
        }
        if tee_type != TEE_TYPE_SGX {
            return Err(EvidenceError::Unsupported("quote TEE type is not SGX"));
        }
        if att_key_type != ATT_KEY_TYPE_ECDSA_P256 {
            return Err(EvidenceError::Unsupported(
                "quote attestation key type is not ECDSA P-256",
            ));
        }
        let report_raw: [u8; SGX_REPORT_LEN] = r.array()?;
        let signed = input
            .get(..r.pos)
            .ok_or(EvidenceError::Malformed("quote signed region"))?
            .to_vec();
        let sig_len = r.len32()?;
        let mut s = Reader {
            buf: r.take(sig_len)?,
            pos: 0,
        };
        let signature = s.array()?;
        let attestation_key = s.array()?;
        let qe_report_raw: [u8; SGX_REPORT_LEN] = s.array()?;
        let qe_report_signature = s.array()?;
        let auth_len = usize::from(s.u16()?);
        let qe_auth_data = s.take(auth_len)?.to_vec();
        let cert_type = s.u16()?;
        let cert_len = s.len32()?;
        if cert_type != CERT_DATA_PCK_CHAIN {
            return Err(EvidenceError::Unsupported(
                "certification data is not a PCK certificate chain",
            ));
        }
        let pck_chain_pem = s.take(cert_len)?.to_vec();
        if s.pos != s.buf.len() {
            return Err(EvidenceError::Malformed(
                "bytes left over in signature data",
            ));
        }
        Ok(SgxQuote {
            qe_svn,
            pce_svn,
            report: QeReport::parse(&report_raw)?,
            signature,
            attestation_key,
            qe_report: QeReport::parse(&qe_report_raw)?,
            qe_report_raw,
            qe_report_signature,
            qe_auth_data,
            pck_chain_pem,
            signed,
        })
    }
}

/// A verified SGX quote and its TCB appraisal.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSgxQuote {
    pub quote: SgxQuote,
    pub pck: PckInfo,
    pub tcb: TcbEvaluation,
}

impl VerifiedSgxQuote {
    /// ATTRIBUTES bit 1: the enclave runs in debug mode.
    pub fn debug(&self) -> bool {
        self.quote.report.attributes[0] & 0x02 != 0
    }
}

/// Verify an SGX quote v3: PCK chain to the Intel root in `anchors`, QE
/// report signature and binding, quote signature, then DCAP appraisal
/// with `collateral` (see [`super`]). Same reason codes as TDX.
pub fn verify_sgx_quote(
    quote: &[u8],
    anchors: &TrustAnchors,
    collateral: &TdxCollateral,
    now_unix: u64,
) -> Result<VerifiedSgxQuote> {
    let q = SgxQuote::parse(quote)?;
    let (chain, anchor) = crate::tdx::verify::pck_chain(&q.pck_chain_pem, anchors, now_unix)?;
    // pck_chain returns exactly three certificates, the leaf first.
    let leaf = &chain[0];
    if anchor != AnchorKind::Intel {
        return Err(EvidenceError::Unsupported(
            "SGX quotes are verified against the Intel root only",
        ));
    }
    let root = anchors
        .intel_root_der
        .as_deref()
        .ok_or(EvidenceError::NoTrustAnchor)?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &leaf.public_key)
        .verify(&q.qe_report_raw, &q.qe_report_signature)
        .map_err(|_| EvidenceError::TdxQeReportSignature)?;
    let mut h = Sha256::new();
    h.update(q.attestation_key);
    h.update(&q.qe_auth_data);
    let expect: [u8; 32] = h.finalize().into();
    if q.qe_report.report_data.get(..32) != Some(&expect[..]) {
        return Err(EvidenceError::TdxQeBinding);
    }
    let mut ak = [4u8; 65];
    ak[1..].copy_from_slice(&q.attestation_key);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &ak)
        .verify(&q.signed, &q.signature)
        .map_err(|_| EvidenceError::TdxQuoteSignature)?;
    let pck = pck_info(leaf)?;
    let ders: Vec<Vec<u8>> = chain.into_iter().map(|c| c.der).collect();
    let tcb = appraise(
        &DcapInput {
            td: None,
            pck_chain_der: &ders,
            pck: &pck,
            qe_report: &q.qe_report,
        },
        collateral,
        root,
        now_unix,
    )?;
    Ok(VerifiedSgxQuote { quote: q, pck, tcb })
}

const SGX_EXTENSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1");
const SGX_TCB: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.2");
const SGX_PCEID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.3");
const SGX_FMSPC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113741.1.13.1.4");

/// FMSPC, PCE-ID and TCB from the PCK leaf's Intel SGX extension (required).
fn pck_info(leaf: &P256Cert) -> Result<PckInfo> {
    let bad = || EvidenceError::TdxPckChain("PCK SGX extension does not decode");
    let ext = leaf.extension(SGX_EXTENSION)?.ok_or_else(bad)?;
    let items = Vec::<Any>::from_der(ext).map_err(|_| bad())?;
    let (mut fmspc, mut pce_id, mut tcb) = (None, None, None);
    for item in items {
        let (oid, value) = oid_value(&item).ok_or_else(bad)?;
        if oid == SGX_FMSPC {
            fmspc = Some(octets::<6>(&value).ok_or_else(bad)?);
        } else if oid == SGX_PCEID {
            pce_id = Some(octets::<2>(&value).ok_or_else(bad)?);
        } else if oid == SGX_TCB {
            let mut comps = [0u8; 16];
            let mut pce_svn = None;
            for e in value.decode_as::<Vec<Any>>().map_err(|_| bad())? {
                let (eoid, v) = oid_value(&e).ok_or_else(bad)?;
                let arcs: Vec<u32> = eoid.arcs().collect();
                let Some((&last, prefix)) = arcs.split_last() else {
                    continue;
                };
                if !prefix.iter().copied().eq(SGX_TCB.arcs()) {
                    continue;
                }
                match last {
                    1..=16 => {
                        let n = v.decode_as::<u8>().map_err(|_| bad())?;
                        if let Some(slot) = comps.get_mut((last - 1) as usize) {
                            *slot = n;
                        }
                    }
                    17 => pce_svn = Some(v.decode_as::<u16>().map_err(|_| bad())?),
                    _ => {}
                }
            }
            tcb = Some((comps, pce_svn.ok_or_else(bad)?));
        }
    }
    match (fmspc, pce_id, tcb) {
        (Some(fmspc), Some(pce_id), Some((cpu_svn_components, pce_svn))) => Ok(PckInfo {
            fmspc,
            pce_id,
            cpu_svn_components,
            pce_svn,
        }),
        _ => Err(bad()),
    }
}

fn oid_value(seq: &Any) -> Option<(ObjectIdentifier, Any)> {
    let inner = seq.decode_as::<Vec<Any>>().ok()?;
    let [oid, value] = <[Any; 2]>::try_from(inner).ok()?;
    Some((oid.decode_as::<ObjectIdentifier>().ok()?, value))
}

fn octets<const N: usize>(v: &Any) -> Option<[u8; N]> {
    v.decode_as::<OctetString>()
        .ok()?
        .as_bytes()
        .try_into()
        .ok()
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(EvidenceError::Malformed("length overflow"))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(EvidenceError::Malformed("truncated quote"))?;
        self.pos = end;
        Ok(out)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn len32(&mut self) -> Result<usize> {
        usize::try_from(self.u32()?).map_err(|_| EvidenceError::Malformed("length overflow"))
    }
}
