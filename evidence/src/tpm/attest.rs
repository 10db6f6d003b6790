//! TPM 2.0 wire structures: `TPMS_ATTEST` (quote), `TPMT_SIGNATURE`,
//! `TPMT_PUBLIC` / `TPM2B_PUBLIC`. All integers are big-endian.

use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

/// `TPM_GENERATED_VALUE`: the magic every TPM-generated structure starts with.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

pub const TPM_ALG_RSA: u16 = 0x0001;
pub const TPM_ALG_SHA1: u16 = 0x0004;
pub const TPM_ALG_SHA256: u16 = 0x000b;
pub const TPM_ALG_SHA384: u16 = 0x000c;
pub const TPM_ALG_SHA512: u16 = 0x000d;
pub const TPM_ALG_NULL: u16 = 0x0010;
pub const TPM_ALG_RSASSA: u16 = 0x0014;
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
pub const TPM_ALG_ECDSA: u16 = 0x0018;
pub const TPM_ALG_ECC: u16 = 0x0023;
pub const TPM_ECC_NIST_P256: u16 = 0x0003;
pub const TPM_ECC_NIST_P384: u16 = 0x0004;

/// Largest `TPM2B_DATA` (extraData): `sizeof(TPMU_HA)`.
pub const MAX_EXTRA_DATA: usize = 64;

/// The name of a TPM hash algorithm as used in claims ("sha256").
pub fn hash_alg_name(alg: u16) -> Option<&'static str> {
    match alg {
        TPM_ALG_SHA1 => Some("sha1"),
        TPM_ALG_SHA256 => Some("sha256"),
        TPM_ALG_SHA384 => Some("sha384"),
        TPM_ALG_SHA512 => Some("sha512"),
        _ => None,
    }
}

/// The TPM hash algorithm of a claims name.
pub fn hash_alg_from_name(name: &str) -> Option<u16> {
    match name {
        "sha1" => Some(TPM_ALG_SHA1),
        "sha256" => Some(TPM_ALG_SHA256),
        "sha384" => Some(TPM_ALG_SHA384),
        "sha512" => Some(TPM_ALG_SHA512),
        _ => None,
    }
}

pub(crate) fn digest_alg(alg: u16) -> Option<&'static aws_lc_rs::digest::Algorithm> {
    use aws_lc_rs::digest;
    match alg {
        TPM_ALG_SHA1 => Some(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        TPM_ALG_SHA256 => Some(&digest::SHA256),
        TPM_ALG_SHA384 => Some(&digest::SHA384),
        TPM_ALG_SHA512 => Some(&digest::SHA512),
        _ => None,
    }
}

pub(crate) struct Be<'a> {
    buf: &'a [u8],
    err: fn(&'static str) -> EvidenceError,
}

impl<'a> Be<'a> {
    pub(crate) fn new(buf: &'a [u8], err: fn(&'static str) -> EvidenceError) -> Self {
        Be { buf, err }
    }
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.buf.len() {
            return Err((self.err)(what));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    /// A `TPM2B_*`: u16 size then that many bytes.
    pub(crate) fn tpm2b(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }
    pub(crate) fn end(&self, what: &'static str) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err((self.err)(what))
        }
    }
}

fn malformed(what: &'static str) -> EvidenceError {
    EvidenceError::TpmAttestMalformed(what)
}

/// `TPMS_CLOCK_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    pub clock: u64,
    pub reset_count: u32,
    pub restart_count: u32,
    pub safe: bool,
}

/// One `TPMS_PCR_SELECTION`: a bank and its selected PCRs (ascending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSelection {
    pub hash_alg: u16,
    pub pcrs: Vec<u32>,
}

impl PcrSelection {
    /// The selection a `pcrSelect` bitmap encodes: bit j of byte i selects
    /// PCR 8i+j (indices ascending).
    pub fn from_bitmap(hash_alg: u16, bits: &[u8]) -> Self {
        let pcrs = bits
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                (0..8u32)
                    .filter(move |j| b & (1 << j) != 0)
                    .map(move |j| i as u32 * 8 + j)
            })
            .collect();
        PcrSelection { hash_alg, pcrs }
    }
}

/// A parsed `TPMS_ATTEST` of type `TPM_ST_ATTEST_QUOTE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmsAttest {
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data (nonce), at most 64 bytes.
    pub extra_data: Vec<u8>,
    pub clock_info: ClockInfo,
    pub firmware_version: u64,
    /// `TPML_PCR_SELECTION`, in order.
    pub pcr_select: Vec<PcrSelection>,
    /// Digest of the selected PCR values, in selection order.
    pub pcr_digest: Vec<u8>,
}

/// The most banks a selection may name.
const MAX_BANKS: u32 = 16;

impl TpmsAttest {
    /// Parse a quote's `TPMS_ATTEST` (exact length, no trailing bytes).
    pub fn parse(bytes: &[u8]) -> Result<TpmsAttest> {
        let mut r = Be::new(bytes, malformed);
        if r.u32("magic")? != TPM_GENERATED_VALUE {
            return Err(malformed("magic is not TPM_GENERATED_VALUE"));
        }
        if r.u16("type")? != TPM_ST_ATTEST_QUOTE {
            return Err(malformed("type is not TPM_ST_ATTEST_QUOTE"));
        }
        let qualified_signer = r.tpm2b("qualifiedSigner")?.to_vec();
        // A TPM2B_NAME: a handle, or a hash algorithm and a digest of at
        // most 64 bytes.
        if qualified_signer.len() > 2 + 64 {
            return Err(malformed("qualifiedSigner longer than a TPM2B_NAME"));
        }
        let extra_data = r.tpm2b("extraData")?.to_vec();
        if extra_data.len() > MAX_EXTRA_DATA {
            return Err(malformed("extraData longer than 64 bytes"));
        }
        let clock_info = ClockInfo {
            clock: r.u64("clock")?,
            reset_count: r.u32("resetCount")?,
            restart_count: r.u32("restartCount")?,
            safe: match r.u8("safe")? {
                0 => false,
                1 => true,
                _ => return Err(malformed("safe is not a TPMI_YES_NO")),
            },
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let count = r.u32("pcrSelect count")?;
        if count > MAX_BANKS {
            return Err(malformed("too many PCR banks selected"));
        }
        let mut pcr_select = Vec::new();
        for _ in 0..count {
            let hash_alg = r.u16("pcrSelect hash")?;
            if hash_alg_name(hash_alg).is_none() {
                return Err(malformed(
                    "pcrSelect names a bank that is not SHA-1 or SHA-2",
                ));
            }
            let n = r.u8("sizeofSelect")? as usize;
            let selection = PcrSelection::from_bitmap(hash_alg, r.take(n, "pcrSelect")?);
            if pcr_select
                .iter()
                .any(|s: &PcrSelection| s.hash_alg == hash_alg)
            {
                return Err(malformed("bank selected twice"));
            }
            pcr_select.push(selection);
        }
        let pcr_digest = r.tpm2b("pcrDigest")?.to_vec();
        r.end("trailing bytes after TPMS_ATTEST")?;
        Ok(TpmsAttest {
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            pcr_select,
            pcr_digest,
        })
    }
}

/// A parsed `TPMT_SIGNATURE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmSignature {
    /// RSASSA-PKCS1-v1_5 with the given hash.
    RsaSsa { hash_alg: u16, sig: Vec<u8> },
    /// RSA-PSS with the given hash (salt length = hash length).
    RsaPss { hash_alg: u16, sig: Vec<u8> },
    /// ECDSA with the given hash; `r` and `s` as unsigned big-endian.
    Ecdsa {
        hash_alg: u16,
        r: Vec<u8>,
        s: Vec<u8>,
    },
}

impl TpmSignature {
    /// Parse a `TPMT_SIGNATURE` (exact length).
    pub fn parse(bytes: &[u8]) -> Result<TpmSignature> {
        let mut r = Be::new(bytes, malformed);
        let alg = r.u16("sigAlg")?;
        let hash_alg = r.u16("signature hash")?;
        let s = match alg {
            TPM_ALG_RSASSA => TpmSignature::RsaSsa {
                hash_alg,
                sig: r.tpm2b("RSA signature")?.to_vec(),
            },
            TPM_ALG_RSAPSS => TpmSignature::RsaPss {
                hash_alg,
                sig: r.tpm2b("RSA signature")?.to_vec(),
            },
            TPM_ALG_ECDSA => TpmSignature::Ecdsa {
                hash_alg,
                r: r.tpm2b("ECDSA r")?.to_vec(),
                s: r.tpm2b("ECDSA s")?.to_vec(),
            },
            _ => return Err(EvidenceError::TpmAlgUnsupported("signature scheme")),
        };
        r.end("trailing bytes after TPMT_SIGNATURE")?;
        Ok(s)
    }

    /// The hash algorithm the signature (and so the PCR digest) uses.
    pub fn hash_alg(&self) -> u16 {
        match self {
            Self::RsaSsa { hash_alg, .. }
            | Self::RsaPss { hash_alg, .. }
            | Self::Ecdsa { hash_alg, .. } => *hash_alg,
        }
    }
}
