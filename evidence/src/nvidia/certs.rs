//! ECDSA P-384 certificate chains: NVIDIA device identity chains (GPU
//! attestation) and RIM signing chains (reference manifests).
//!
//! Rules: every certificate is strict DER with a P-384 key and an
//! ecdsa-with-SHA384 signature; each link's issuer name equals the next
//! certificate's subject and verifies with its key; every issuer is a CA
//! (basicConstraints cA, keyCertSign when a key usage is given, path length
//! respected); every certificate is valid at `now`. The chain ends at the
//! trust anchor: either its top certificate is the anchor (same subject and
//! key, and its self-signature verifies with the anchor key) or the top
//! certificate is issued by the anchor (names match, signature verifies).

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_ASN1};
use der::asn1::ObjectIdentifier;
use der::oid::AssociatedOid;
use der::Decode;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::Certificate;

use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// TCG DICE TcbInfo, which NVIDIA's device leaf uses to carry the FWID.
pub const TCG_DICE_TCB_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");

/// The most certificates a chain may hold (NVIDIA's have five).
pub const MAX_CHAIN_LEN: usize = 8;
/// The largest PEM text accepted.
pub const MAX_PEM_LEN: usize = 64 * 1024;

/// Which chain is being checked: it selects the error variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainKind {
    /// A GPU device identity chain (`GPU_CHAIN`, `GPU_UNTRUSTED_ROOT`).
    Device,
    /// A RIM signing chain (`GPU_RIM_CHAIN`).
    Rim,
}

impl ChainKind {
    pub(crate) fn err(self, what: &'static str) -> EvidenceError {
        match self {
            ChainKind::Device => EvidenceError::GpuChain(what),
            ChainKind::Rim => EvidenceError::GpuRimChain(what),
        }
    }
    fn untrusted(self) -> EvidenceError {
        match self {
            ChainKind::Device => EvidenceError::GpuUntrustedRoot,
            ChainKind::Rim => EvidenceError::GpuRimChain("chain does not end at the RIM root"),
        }
    }
}

/// A decoded P-384 certificate.
#[derive(Clone, Debug)]
pub struct P384Cert {
    cert: Certificate,
    tbs_der: Vec<u8>,
    subject_der: Vec<u8>,
    issuer_der: Vec<u8>,
    spki_der: Vec<u8>,
    public_key: Vec<u8>,
}

impl P384Cert {
    /// Decode a strict-DER certificate with a P-384 key and an
    /// ecdsa-with-SHA384 signature; `bad` is returned otherwise.
    pub fn parse(der: &[u8], bad: EvidenceError) -> Result<P384Cert> {
        let d = crate::x509::decode_strict_ec(
            der,
            &crate::x509::EcProfile {
                curve: SECP384R1,
                signature: ECDSA_WITH_SHA384,
                point_len: 97,
            },
            bad,
        )?;
        Ok(P384Cert {
            tbs_der: d.tbs_der,
            subject_der: d.subject_der,
            issuer_der: d.issuer_der,
            spki_der: d.spki_der,
            public_key: d.public_key,
            cert: d.cert,
        })
    }

    /// The uncompressed SEC1 public key (0x04 || x || y).
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// The serial number, big-endian bytes as encoded.
    pub fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate.serial_number.as_bytes()
    }

    fn signed_by(&self, issuer: &P384Cert) -> bool {
        let Some(sig) = self.cert.signature.as_bytes() else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &issuer.public_key)
            .verify(&self.tbs_der, sig)
            .is_ok()
    }

    fn check_validity(&self, now_unix: u64) -> Result<()> {
        let v = &self.cert.tbs_certificate.validity;
        if now_unix < v.not_before.to_unix_duration().as_secs() {
            return Err(EvidenceError::CertNotYetValid);
        }
        if now_unix > v.not_after.to_unix_duration().as_secs() {
            return Err(EvidenceError::CertExpired);
        }
        Ok(())
    }

    /// The value of the extension with this OID, if present exactly once.
    pub fn extension(&self, oid: ObjectIdentifier, kind: ChainKind) -> Result<Option<&[u8]>> {
        let mut found = None;
        for ext in self.cert.tbs_certificate.extensions.iter().flatten() {
            if ext.extn_id == oid {
                if found.is_some() {
                    return Err(kind.err("duplicate extension"));
                }
                found = Some(ext.extn_value.as_bytes());
            }
        }
        Ok(found)
    }

    fn key_usage(&self, kind: ChainKind) -> Result<Option<KeyUsage>> {
        match self.extension(KeyUsage::OID, kind)? {
            None => Ok(None),
            Some(ku) => KeyUsage::from_der(ku)
                .map(Some)
                .map_err(|_| kind.err("key usage does not decode")),
        }
    }

    /// Whether the key may sign data (digitalSignature, when a key usage is given).
    pub fn may_sign_data(&self, kind: ChainKind) -> Result<bool> {
        Ok(self
            .key_usage(kind)?
            .is_none_or(|ku| ku.digital_signature()))
    }

    fn check_ca(&self, below: usize, kind: ChainKind) -> Result<()> {
        let bc = self
            .extension(BasicConstraints::OID, kind)?
            .ok_or(kind.err("CA without basic constraints"))?;
        let bc = BasicConstraints::from_der(bc)
            .map_err(|_| kind.err("basic constraints do not decode"))?;
        if !bc.ca {
            return Err(kind.err("issuer is not a CA"));
        }
        if let Some(max) = bc.path_len_constraint {
            if usize::from(max) < below {
                return Err(kind.err("path length exceeded"));
            }
        }
        if let Some(ku) = self.key_usage(kind)? {
            if !ku.key_cert_sign() {
                return Err(kind.err("issuer may not sign certificates"));
            }
        }
        Ok(())
    }
}

/// Decode a PEM concatenation of certificates (leaf first). Only whitespace
/// and NUL bytes may stand around the blocks.
pub fn pem_certificates(pem: &[u8], kind: ChainKind) -> Result<Vec<Vec<u8>>> {
    use base64::{engine::general_purpose::STANDARD, Engine};
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    if pem.len() > MAX_PEM_LEN {
        return Err(kind.err("PEM too long"));
    }
    let mut out = Vec::new();
    let mut rest = pem;
    loop {
        let skip = rest
            .iter()
            .position(|b| !b.is_ascii_whitespace() && *b != 0)
            .unwrap_or(rest.len());
        rest = rest.get(skip..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        rest = rest
            .strip_prefix(BEGIN)
            .ok_or(kind.err("PEM certificate"))?;
        let end = rest
            .windows(END.len())
            .position(|w| w == END)
            .ok_or(kind.err("PEM certificate"))?;
        let (body, tail) = rest.split_at(end);
        let b64: Vec<u8> = body
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        out.push(
            STANDARD
                .decode(b64)
                .map_err(|_| kind.err("PEM certificate"))?,
        );
        if out.len() > MAX_CHAIN_LEN {
            return Err(kind.err("too many certificates"));
        }
        rest = tail.get(END.len()..).unwrap_or_default();
    }
    Ok(out)
}

/// A trust anchor: a decoded root certificate.
#[derive(Clone, Debug)]
pub struct Anchor(pub(crate) P384Cert);

impl Anchor {
    /// Decode an anchor from DER.
    pub fn from_der(der: &[u8]) -> Result<Anchor> {
        P384Cert::parse(der, EvidenceError::BadTrustAnchor("NVIDIA root")).map(Anchor)
    }

    /// Decode an anchor from a PEM file holding exactly one certificate.
    pub fn from_pem(pem: &[u8]) -> Result<Anchor> {
        let bad = EvidenceError::BadTrustAnchor("NVIDIA root");
        let ders = pem_certificates(pem, ChainKind::Device).map_err(|_| bad.clone())?;
        match ders.as_slice() {
            [one] => Anchor::from_der(one),
            _ => Err(bad),
        }
    }
}

/// A chain whose links, constraints and anchor have been checked. The
/// validity window is checked at every use ([`VerifiedChain::check_time`]),
/// so a chain may be cached and reused.
#[derive(Clone, Debug)]
pub struct VerifiedChain {
    certs: Vec<P384Cert>,
    /// Public key of the anchor the chain ended at.
    anchor_key: Vec<u8>,
}

impl VerifiedChain {
    /// The leaf (signing) certificate.
    pub fn leaf(&self) -> &P384Cert {
        // Invariant: `verify_chain` only builds chains of at least two certificates.
        #[allow(clippy::indexing_slicing)]
        &self.certs[0]
    }

    /// Public key (uncompressed point) of the trust anchor the chain ended at.
    pub fn anchor_public_key(&self) -> &[u8] {
        &self.anchor_key
    }

    /// Every certificate valid at `now`.
    pub fn check_time(&self, now_unix: u64) -> Result<()> {
        self.certs
            .iter()
            .try_for_each(|c| c.check_validity(now_unix))
    }
}

/// Check a chain (DER, leaf first) against `anchors` at `now`.
pub fn verify_chain(
    ders: &[Vec<u8>],
    anchors: &[Anchor],
    now_unix: u64,
    kind: ChainKind,
) -> Result<VerifiedChain> {
    if anchors.is_empty() {
        return Err(EvidenceError::NoTrustAnchor);
    }
    if ders.len() < 2 {
        return Err(kind.err("chain must hold at least the signing certificate and its issuer"));
    }
    if ders.len() > MAX_CHAIN_LEN {
        return Err(kind.err("too many certificates"));
    }
    let certs = ders
        .iter()
        .map(|d| P384Cert::parse(d, kind.err("certificate does not decode")))
        .collect::<Result<Vec<_>>>()?;
    for (i, pair) in certs.windows(2).enumerate() {
        let [child, issuer] = pair else {
            return Err(kind.err("chain"));
        };
        if child.issuer_der != issuer.subject_der {
            return Err(kind.err("issuer name does not match"));
        }
        issuer.check_ca(i, kind)?;
        if !child.signed_by(issuer) {
            return Err(kind.err("certificate signature"));
        }
    }
    let top = certs.last().ok_or(kind.err("chain"))?;
    let below = certs.len().saturating_sub(1);
    let mut anchored = None;
    for Anchor(a) in anchors {
        if top.subject_der == a.subject_der && top.spki_der == a.spki_der {
            if !top.signed_by(a) {
                return Err(kind.err("root certificate signature"));
            }
            a.check_validity(now_unix)?;
            anchored = Some(a);
            break;
        }
        if top.issuer_der == a.subject_der && top.signed_by(a) {
            a.check_ca(below, kind)?;
            a.check_validity(now_unix)?;
            anchored = Some(a);
            break;
        }
    }
    let Some(anchor) = anchored else {
        return Err(kind.untrusted());
    };
    let chain = VerifiedChain {
        anchor_key: anchor.public_key().to_vec(),
        certs,
    };
    chain.check_time(now_unix)?;
    Ok(chain)
}

/// The 48-byte FWID (SHA-384) in a device leaf's TCG DICE TcbInfo
/// extension. NVIDIA encodes it as a SEQUENCE { OID sha384, OCTET STRING }
/// inside the extension's SEQUENCE (standard TcbInfo puts it in `fwids [6]`;
/// both forms are searched, two levels deep).
pub fn leaf_fwid(leaf: &P384Cert) -> Result<Option<[u8; 48]>> {
    let Some(ext) = leaf.extension(TCG_DICE_TCB_INFO, ChainKind::Device)? else {
        return Ok(None);
    };
    Ok(find_fwid(ext, 0))
}

const SHA384_OID_DER: &[u8] = &[
    0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
];

/// One DER TLV: (tag, content, rest). Definite lengths up to 4 bytes only.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, b) = b.split_first()?;
    let (&l0, mut b) = b.split_first()?;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (lb, r) = b.split_at_checked(n)?;
        b = r;
        lb.iter().fold(0usize, |acc, x| acc << 8 | usize::from(*x))
    };
    let (content, rest) = b.split_at_checked(len)?;
    Some((tag, content, rest))
}

fn find_fwid(b: &[u8], depth: u8) -> Option<[u8; 48]> {
    if depth > 3 {
        return None;
    }
    let (tag, content, _) = tlv(b)?;
    if tag != 0x30 && tag != 0xA6 {
        return None;
    }
    // A FWID: SEQUENCE { OID sha384, OCTET STRING (48) }.
    if tag == 0x30 {
        if let Some(rest) = content.strip_prefix(SHA384_OID_DER) {
            if let Some((0x04, digest, [])) = tlv(rest) {
                return digest.try_into().ok();
            }
        }
    }
    let mut rest = content;
    while let Some((t, _, r)) = tlv(rest) {
        let item_len = rest.len() - r.len();
        if t == 0x30 || t == 0xA6 {
            if let Some(found) = rest.get(..item_len).and_then(|i| find_fwid(i, depth + 1)) {
                return Some(found);
            }
        }
        rest = r;
    }
    None
}
