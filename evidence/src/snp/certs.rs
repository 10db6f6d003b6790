//! AMD certificates: the ARK/ASK/ASVK roots shipped with this crate, the
//! VCEK/VLEK leaves and their AMD extensions.
//!
//! Accepted signature algorithms: RSASSA-PSS with SHA-384, MGF1-SHA-384 and
//! a 48-byte salt (AMD's ARK, ASK, ASVK and the certificates they sign),
//! ECDSA with SHA-384 by a P-384 key and ECDSA with SHA-256 by a P-256 key
//! (the simulated chain only). AMD leaves carry serial number 0, which is
//! accepted.

use std::sync::OnceLock;

use aws_lc_rs::signature::{
    UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, RSA_PSS_2048_8192_SHA384,
};
use der::asn1::{Ia5String, ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use x509_cert::Certificate;

use crate::error::EvidenceError;
use crate::snp::report::TcbLayout;

type Result<T> = core::result::Result<T, EvidenceError>;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// RSASSA-PSS parameters (SHA-384, MGF1-SHA-384, salt 48), with and without
/// the explicit trailerField 1 that AMD's older certificates encode.
const PSS_SHA384_PARAMS: [&[u8]; 2] = [
    &[
        0x30, 0x39, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x02, 0x02, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
        0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30, 0xa3, 0x03, 0x02, 0x01, 0x01,
    ],
    &[
        0x30, 0x34, 0xa0, 0x0f, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x02, 0x02, 0x05, 0x00, 0xa1, 0x1c, 0x30, 0x1a, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
        0x0d, 0x01, 0x01, 0x08, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
        0x02, 0x02, 0x05, 0x00, 0xa2, 0x03, 0x02, 0x01, 0x30,
    ],
];

/// AMD extension OIDs (arc 1.3.6.1.4.1.3704.1).
pub mod oid {
    use der::asn1::ObjectIdentifier;
    pub const STRUCT_VERSION: ObjectIdentifier =
        ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.1");
    pub const PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
    pub const BL_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
    pub const TEE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
    pub const SNP_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
    pub const UCODE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
    pub const FMC_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
    pub const HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");
    pub const CSP_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.5");
}

/// An AMD EPYC product generation with SEV-SNP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Product {
    Milan,
    Genoa,
    Turin,
}

impl Product {
    pub const ALL: [Product; 3] = [Product::Milan, Product::Genoa, Product::Turin];

    /// The name AMD's KDS and certificates use ("Milan", "Genoa", "Turin").
    pub fn name(self) -> &'static str {
        match self {
            Product::Milan => "Milan",
            Product::Genoa => "Genoa",
            Product::Turin => "Turin",
        }
    }

    /// The TCB_VERSION layout of this generation.
    pub fn tcb_layout(self) -> TcbLayout {
        match self {
            Product::Turin => TcbLayout::Turin,
            _ => TcbLayout::MilanGenoa,
        }
    }

    /// How many bytes of CHIP_ID the VCEK's hwID extension carries.
    pub fn hwid_len(self) -> usize {
        match self {
            Product::Turin => 8,
            _ => 64,
        }
    }

    /// The generation a report's CPUID family/model names, if known.
    pub fn from_cpuid(family: u8, model: u8) -> Option<Product> {
        match (family, model) {
            (0x19, 0x00..=0x0f) => Some(Product::Milan),
            (0x19, 0x10..=0x1f) | (0x19, 0xa0..=0xaf) => Some(Product::Genoa),
            (0x1a, 0x00..=0x1f) => Some(Product::Turin),
            _ => None,
        }
    }

    /// The generation named by a certificate product-name extension
    /// ("Milan-B0", "Genoa", ...: the part before the first '-').
    pub fn from_product_name(name: &str) -> Option<Product> {
        let base = name.split('-').next().unwrap_or(name);
        Product::ALL.into_iter().find(|p| p.name() == base)
    }
}

/// A public key of a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PubKey {
    /// PKCS#1 RSAPublicKey DER.
    Rsa(Vec<u8>),
    /// Uncompressed SEC1 point, 97 bytes.
    P384(Vec<u8>),
    /// Uncompressed SEC1 point, 65 bytes.
    P256(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigAlg {
    RsaPssSha384,
    EcdsaSha384,
    EcdsaSha256,
}

/// A decoded certificate of an AMD (or simulated) SEV-SNP chain.
#[derive(Clone, Debug)]
pub struct AmdCert {
    pub(crate) der: Vec<u8>,
    pub(crate) cert: Certificate,
    pub(crate) tbs_der: Vec<u8>,
    pub(crate) subject_der: Vec<u8>,
    pub(crate) issuer_der: Vec<u8>,
    pub(crate) key: PubKey,
    sig_alg: SigAlg,
    signature: Vec<u8>,
}

fn chain_err(what: &'static str) -> EvidenceError {
    EvidenceError::SnpVcekChain(what)
}

impl AmdCert {
    /// Decode a strict-DER certificate with a supported key and signature algorithm.
    pub fn parse(der: &[u8]) -> Result<AmdCert> {
        let bad = || chain_err("certificate does not decode");
        let cert = Certificate::from_der(der).map_err(|_| bad())?;
        let enc = |r: der::Result<Vec<u8>>| r.map_err(|_| bad());
        if enc(cert.to_der())? != der {
            return Err(chain_err("certificate is not in DER"));
        }
        let tbs = &cert.tbs_certificate;
        if tbs.signature != cert.signature_algorithm {
            return Err(chain_err("inner and outer signature algorithms differ"));
        }
        let spki = &tbs.subject_public_key_info;
        let bits = spki.subject_public_key.as_bytes().ok_or_else(bad)?.to_vec();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
        let key = if spki.algorithm.oid == RSA_ENCRYPTION {
            PubKey::Rsa(bits)
        } else if spki.algorithm.oid == ID_EC_PUBLIC_KEY && curve == Some(SECP384R1) {
            if bits.len() != 97 || bits.first() != Some(&4) {
                return Err(chain_err("P-384 key is not an uncompressed point"));
            }
            PubKey::P384(bits)
        } else if spki.algorithm.oid == ID_EC_PUBLIC_KEY && curve == Some(SECP256R1) {
            if bits.len() != 65 || bits.first() != Some(&4) {
                return Err(chain_err("P-256 key is not an uncompressed point"));
            }
            PubKey::P256(bits)
        } else {
            return Err(chain_err("unsupported public key algorithm"));
        };
        let sig_alg = sig_alg_of(&cert.signature_algorithm)?;
        let signature = cert.signature.as_bytes().ok_or_else(bad)?.to_vec();
        Ok(AmdCert {
            der: der.to_vec(),
            tbs_der: enc(tbs.to_der())?,
            subject_der: enc(tbs.subject.to_der())?,
            issuer_der: enc(tbs.issuer.to_der())?,
            key,
            sig_alg,
            signature,
            cert,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether `issuer`'s key signed this certificate (the algorithm must
    /// fit the issuer's key type).
    pub fn signed_by(&self, issuer: &AmdCert) -> bool {
        verify_sig(self.sig_alg, &issuer.key, &self.tbs_der, &self.signature)
    }

    /// Valid at `now` (seconds since the Unix epoch), bounds inclusive.
    pub fn check_validity(&self, now_unix: u64) -> Result<()> {
        let v = &self.cert.tbs_certificate.validity;
        if now_unix < v.not_before.to_unix_duration().as_secs() {
            return Err(EvidenceError::CertNotYetValid);
        }
        if now_unix > v.not_after.to_unix_duration().as_secs() {
            return Err(EvidenceError::CertExpired);
        }
        Ok(())
    }

    /// The subject's common name, when it is a UTF-8, printable or IA5 string.
    pub fn subject_cn(&self) -> Option<String> {
        cn_of(&self.cert.tbs_certificate.subject)
    }

    /// The issuer's common name.
    pub fn issuer_cn(&self) -> Option<String> {
        cn_of(&self.cert.tbs_certificate.issuer)
    }

    /// Whether the certificate says it is a CA (basicConstraints cA).
    pub(crate) fn is_ca(&self) -> bool {
        use der::oid::AssociatedOid;
        use x509_cert::ext::pkix::BasicConstraints;
        self.ext(BasicConstraints::OID)
            .ok()
            .flatten()
            .and_then(|b| BasicConstraints::from_der(b).ok())
            .is_some_and(|bc| bc.ca)
    }

    /// The extension value with this OID, if present; a repeated
    /// extension is an error.
    pub(crate) fn ext(&self, oid: ObjectIdentifier) -> Result<Option<&[u8]>> {
        let mut found = None;
        for e in self.cert.tbs_certificate.extensions.iter().flatten() {
            if e.extn_id == oid {
                if found.is_some() {
                    return Err(EvidenceError::SnpCertExtension("repeated extension"));
                }
                found = Some(e.extn_value.as_bytes());
            }
        }
        Ok(found)
    }

    /// The serial number's big-endian bytes.
    pub(crate) fn serial(&self) -> &[u8] {
        self.cert.tbs_certificate.serial_number.as_bytes()
    }
}

/// The supported signature algorithm `alg` names.
pub(crate) fn sig_alg_of(alg: &x509_cert::spki::AlgorithmIdentifierOwned) -> Result<SigAlg> {
    if alg.oid == RSASSA_PSS {
        let params = alg
            .parameters
            .as_ref()
            .map(|p| p.to_der())
            .transpose()
            .map_err(|_| chain_err("signature parameters do not encode"))?;
        match params {
            Some(p) if PSS_SHA384_PARAMS.contains(&p.as_slice()) => Ok(SigAlg::RsaPssSha384),
            _ => Err(chain_err("RSASSA-PSS parameters are not SHA-384")),
        }
    } else if alg.oid == ECDSA_WITH_SHA384 && alg.parameters.is_none() {
        Ok(SigAlg::EcdsaSha384)
    } else if alg.oid == ECDSA_WITH_SHA256 && alg.parameters.is_none() {
        Ok(SigAlg::EcdsaSha256)
    } else {
        Err(chain_err("unsupported signature algorithm"))
    }
}

/// Whether `sig` over `msg` verifies with `key` under `alg` (the algorithm
/// must fit the key type).
pub(crate) fn verify_sig(alg: SigAlg, key: &PubKey, msg: &[u8], sig: &[u8]) -> bool {
    let (alg, key): (
        &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
        &[u8],
    ) = match (alg, key) {
        (SigAlg::RsaPssSha384, PubKey::Rsa(k)) => (&RSA_PSS_2048_8192_SHA384, k),
        (SigAlg::EcdsaSha384, PubKey::P384(k)) => (&ECDSA_P384_SHA384_ASN1, k),
        (SigAlg::EcdsaSha256, PubKey::P256(k)) => (&ECDSA_P256_SHA256_ASN1, k),
        _ => return false,
    };
    UnparsedPublicKey::new(alg, key).verify(msg, sig).is_ok()
}

fn cn_of(name: &x509_cert::name::Name) -> Option<String> {
    for rdn in name.0.iter() {
        for atv in rdn.0.iter() {
            if atv.oid == COMMON_NAME {
                let v = &atv.value;
                if let Ok(s) = v.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                    return Some(s.as_str().to_string());
                }
                if let Ok(s) = v.decode_as::<der::asn1::PrintableStringRef<'_>>() {
                    return Some(s.as_str().to_string());
                }
                if let Ok(s) = v.decode_as::<der::asn1::Ia5StringRef<'_>>() {
                    return Some(s.as_str().to_string());
                }
            }
        }
    }
    None
}

/// The AMD extensions of a VCEK or VLEK.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafExtensions {
    pub product_name: Option<String>,
    pub bl_spl: Option<u8>,
    pub tee_spl: Option<u8>,
    pub snp_spl: Option<u8>,
    pub ucode_spl: Option<u8>,
    /// Turin and later.
    pub fmc_spl: Option<u8>,
    /// VCEK only: the chip's hardware ID (64 bytes; 8 on Turin).
    pub hw_id: Option<Vec<u8>>,
    /// VLEK only: the cloud provider's ID.
    pub csp_id: Option<String>,
}

fn ext_err(what: &'static str) -> EvidenceError {
    EvidenceError::SnpCertExtension(what)
}

fn spl(c: &AmdCert, id: ObjectIdentifier) -> Result<Option<u8>> {
    c.ext(id)?
        .map(|v| u8::from_der(v).map_err(|_| ext_err("SPL is not an INTEGER in 0..=255")))
        .transpose()
}

impl LeafExtensions {
    /// Read the AMD extensions of `c`. Each present one must decode; which
    /// ones are required is decided by the verifier.
    pub fn parse(c: &AmdCert) -> Result<LeafExtensions> {
        let product_name = c
            .ext(oid::PRODUCT_NAME)?
            .map(|v| {
                Ia5String::from_der(v)
                    .map(|s| s.to_string())
                    .map_err(|_| ext_err("product name is not an IA5String"))
            })
            .transpose()?;
        let csp_id = c
            .ext(oid::CSP_ID)?
            .map(|v| {
                Ia5String::from_der(v)
                    .map(|s| s.to_string())
                    .or_else(|_| {
                        der::asn1::Utf8StringRef::from_der(v).map(|s| s.as_str().to_string())
                    })
                    .map_err(|_| ext_err("CSP ID is not a string"))
            })
            .transpose()?;
        let hw_id = c.ext(oid::HW_ID)?.map(parse_hw_id).transpose()?;
        Ok(LeafExtensions {
            product_name,
            bl_spl: spl(c, oid::BL_SPL)?,
            tee_spl: spl(c, oid::TEE_SPL)?,
            snp_spl: spl(c, oid::SNP_SPL)?,
            ucode_spl: spl(c, oid::UCODE_SPL)?,
            fmc_spl: spl(c, oid::FMC_SPL)?,
            hw_id,
            csp_id,
        })
    }
}

/// hwID: the raw 64 (Turin: 8) bytes as AMD encodes it, or the same bytes
/// wrapped in a DER OCTET STRING as some issuers do.
fn parse_hw_id(v: &[u8]) -> Result<Vec<u8>> {
    if v.len() == 64 || v.len() == 8 {
        return Ok(v.to_vec());
    }
    match OctetString::from_der(v) {
        Ok(o) if matches!(o.as_bytes().len(), 8 | 64) => Ok(o.as_bytes().to_vec()),
        _ => Err(ext_err("hwID is neither 64 nor 8 bytes")),
    }
}

/// The signing CA of a leaf kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeafKind {
    /// Versioned chip endorsement key, signed by the ASK.
    Vcek,
    /// Versioned loaded endorsement key, signed by the ASVK.
    Vlek,
}

/// One product's shipped roots, parsed and checked once: the ARK is
/// self-signed and signs the ASK and the ASVK.
#[derive(Debug)]
pub struct AmdRoots {
    pub product: Product,
    pub ark: AmdCert,
    pub ask: AmdCert,
    pub asvk: AmdCert,
}

macro_rules! amd_root {
    ($p:literal, $f:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/roots/amd/",
            $p,
            "/",
            $f
        ))
    };
}

fn shipped(p: Product) -> [&'static [u8]; 3] {
    match p {
        Product::Milan => [
            amd_root!("milan", "ark.der"),
            amd_root!("milan", "ask.der"),
            amd_root!("milan", "asvk.der"),
        ],
        Product::Genoa => [
            amd_root!("genoa", "ark.der"),
            amd_root!("genoa", "ask.der"),
            amd_root!("genoa", "asvk.der"),
        ],
        Product::Turin => [
            amd_root!("turin", "ark.der"),
            amd_root!("turin", "ask.der"),
            amd_root!("turin", "asvk.der"),
        ],
    }
}

impl AmdRoots {
    fn load(p: Product) -> Result<AmdRoots> {
        let bad = EvidenceError::BadTrustAnchor("shipped AMD root");
        let [ark, ask, asvk] = shipped(p);
        let ark = AmdCert::parse(ark).map_err(|_| bad.clone())?;
        let ask = AmdCert::parse(ask).map_err(|_| bad.clone())?;
        let asvk = AmdCert::parse(asvk).map_err(|_| bad.clone())?;
        let linked = |c: &AmdCert| c.issuer_der == ark.subject_der && c.signed_by(&ark);
        if !(linked(&ark) && linked(&ask) && linked(&asvk)) {
            return Err(bad);
        }
        Ok(AmdRoots {
            product: p,
            ark,
            ask,
            asvk,
        })
    }

    /// The shipped roots of `p`, parsed and checked on first use.
    pub fn get(p: Product) -> Result<&'static AmdRoots> {
        static CELLS: [OnceLock<Result<AmdRoots>>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let i = match p {
            Product::Milan => 0,
            Product::Genoa => 1,
            Product::Turin => 2,
        };
        // `i` is 0, 1 or 2, within the three cells.
        #[allow(clippy::indexing_slicing)]
        CELLS[i]
            .get_or_init(|| AmdRoots::load(p))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The CA that signs leaves of `kind`: the ASK or the ASVK.
    pub fn signer(&self, kind: LeafKind) -> &AmdCert {
        match kind {
            LeafKind::Vcek => &self.ask,
            LeafKind::Vlek => &self.asvk,
        }
    }
}
