//! The order: a TOML policy document naming the parties, the platform
//! reference values, the components, the launch and the outputs.
//!
//! [`Order::from_toml`] performs every structural check, so an [`Order`]
//! value is always well formed: names are unique, every party referenced
//! exists, there is exactly one engine, every component owner and the
//! engine owner must sign, paths are safe relative paths and digests have
//! their exact lengths. The format is specified in `docs/formats/order.md`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tl_evidence::{TcbStatus, TeeKind};

use crate::keys::PublicKey;
use crate::verdict::{Failure, ReasonCode};

/// Largest order TOML accepted.
pub const MAX_ORDER_BYTES: usize = 256 * 1024;

/// Errors from parsing or verifying an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// Not valid TOML, or a field has the wrong type, or an unknown field.
    #[error("order TOML: {0}")]
    Toml(String),
    /// The order is larger than [`MAX_ORDER_BYTES`].
    #[error("order is {0} bytes, more than the limit")]
    TooLarge(usize),
    /// A name (party, component, output, family) has a bad syntax.
    #[error("bad name: {0}")]
    BadName(String),
    /// Two parties, components, outputs or signers share a name, or two
    /// parties share a signing key.
    #[error("duplicate: {0}")]
    Duplicate(String),
    /// A party referenced by a component, signer or output is not defined.
    #[error("unknown party: {0}")]
    UnknownParty(String),
    /// Not exactly one component has role `engine`.
    #[error("order must have exactly one engine component, found {0}")]
    EngineCount(usize),
    /// A component owner or the engine owner is not in `signers`, or a
    /// signer has no signing key.
    #[error("signers: {0}")]
    Signers(String),
    /// A path is not a safe relative path, or two paths overlap.
    #[error("bad path: {0}")]
    BadPath(String),
    /// A hex value has a bad syntax or length.
    #[error("bad hex: {0}")]
    BadHex(String),
    /// A key text form is invalid.
    #[error("bad key: {0}")]
    BadKey(String),
    /// `expires` is not an RFC 3339 time at or after 1970.
    #[error("bad expires: {0}")]
    BadTime(String),
    /// A component pins no digest.
    #[error("component {0}: pin at least one of sha256, sha384, tree_sha256")]
    NoDigest(String),
    /// An output recipient has no encryption key, or there is none.
    #[error("output recipients: {0}")]
    Recipients(String),
    /// Launch, platform or other value out of range.
    #[error("invalid value: {0}")]
    Invalid(String),
    /// The DSSE envelope is malformed (JSON, base64, size).
    #[error("bad envelope: {0}")]
    BadEnvelope(String),
    /// The envelope's payloadType is not the order type.
    #[error("wrong payload type {0:?}")]
    PayloadType(String),
    /// A signature in the envelope does not verify under the key its keyid names.
    #[error("bad signature by party {0}")]
    BadSignature(String),
    /// A signature verifies under no key of a listed signer.
    #[error("signature by a key that is not a listed signer (keyid {0:?})")]
    UnknownSigner(String),
    /// Listed signers have not signed.
    #[error("missing signature of {0}")]
    MissingSigner(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Signing(String),
}

impl OrderError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            OrderError::Toml(_) => "ORDER_TOML",
            OrderError::TooLarge(_) => "ORDER_TOO_LARGE",
            OrderError::BadName(_) => "ORDER_BAD_NAME",
            OrderError::Duplicate(_) => "ORDER_DUPLICATE",
            OrderError::UnknownParty(_) => "ORDER_UNKNOWN_PARTY",
            OrderError::EngineCount(_) => "ORDER_ENGINE_COUNT",
            OrderError::Signers(_) => "ORDER_SIGNERS",
            OrderError::BadPath(_) => "ORDER_BAD_PATH",
            OrderError::BadHex(_) => "ORDER_BAD_HEX",
            OrderError::BadKey(_) => "ORDER_BAD_KEY",
            OrderError::BadTime(_) => "ORDER_BAD_TIME",
            OrderError::NoDigest(_) => "ORDER_NO_DIGEST",
            OrderError::Recipients(_) => "ORDER_RECIPIENTS",
            OrderError::Invalid(_) => "ORDER_INVALID",
            OrderError::BadEnvelope(_) => "ORDER_BAD_ENVELOPE",
            OrderError::PayloadType(_) => "ORDER_PAYLOAD_TYPE",
            OrderError::BadSignature(_) => "ORDER_BAD_SIGNATURE",
            OrderError::UnknownSigner(_) => "ORDER_UNKNOWN_SIGNER",
            OrderError::MissingSigner(_) => "ORDER_MISSING_SIGNER",
            OrderError::Signing(_) => "ORDER_SIGNING",
        }
    }
}

// ---------------------------------------------------------------- newtypes

/// A party, component or output name: `[a-z0-9._-]{1,64}`, not `.` or `..`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Check and wrap.
    pub fn new(s: &str) -> Result<Self, OrderError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if ok {
            Ok(Name(s.to_string()))
        } else {
            Err(OrderError::BadName(format!(
                "{s:?}: names are 1 to 64 of [a-z0-9._-]"
            )))
        }
    }
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}
impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}
impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}
impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Name::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A safe relative path: 1 to 255 bytes of `[A-Za-z0-9._-]` segments joined
/// by `/`; no empty, `.` or `..` segment, no leading or trailing `/`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Check and wrap.
    pub fn new(s: &str) -> Result<Self, OrderError> {
        let bad = |why: &str| OrderError::BadPath(format!("{s:?}: {why}"));
        if s.is_empty() || s.len() > 255 {
            return Err(bad("must be 1 to 255 bytes"));
        }
        for seg in s.split('/') {
            if seg.is_empty() {
                return Err(bad("empty segment (leading, trailing or double '/')"));
            }
            if seg == "." || seg == ".." {
                return Err(bad("'.' and '..' segments are not allowed"));
            }
            if !seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(bad("segments are made of [A-Za-z0-9._-]"));
            }
        }
        Ok(RelPath(s.to_string()))
    }
    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// True when one path equals the other or is a directory above it.
    fn overlaps(&self, other: &RelPath) -> bool {
        let (a, b) = (&self.0, &other.0);
        a == b
            || b.strip_prefix(a.as_str())
                .is_some_and(|r| r.starts_with('/'))
            || a.strip_prefix(b.as_str())
                .is_some_and(|r| r.starts_with('/'))
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
impl Serialize for RelPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for RelPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RelPath::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A fixed-length byte string written as exactly `2*N` hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hex<const N: usize>(pub [u8; N]);

impl<const N: usize> Hex<N> {
    /// Parse exactly `2*N` hex digits (either case).
    pub fn parse(s: &str) -> Result<Self, OrderError> {
        if s.len() != 2 * N {
            return Err(OrderError::BadHex(format!(
                "expected {} hex digits, got {}",
                2 * N,
                s.len()
            )));
        }
        let mut out = [0u8; N];
        hex::decode_to_slice(s, &mut out).map_err(|e| OrderError::BadHex(format!("{s:?}: {e}")))?;
        Ok(Hex(out))
    }
    /// The bytes.
    pub fn bytes(&self) -> &[u8; N] {
        &self.0
    }
}
impl<const N: usize> fmt::Display for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}
impl<const N: usize> fmt::Debug for Hex<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}
impl<const N: usize> Serialize for Hex<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de, const N: usize> Deserialize<'de> for Hex<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hex::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A digest of any supported length (20 to 64 bytes), stored as lowercase hex.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HexDigest(String);

impl HexDigest {
    /// Parse an even number (40 to 128) of hex digits; stored lowercase.
    pub fn parse(s: &str) -> Result<Self, OrderError> {
        if s.len() < 40 || s.len() > 128 || !s.len().is_multiple_of(2) {
            return Err(OrderError::BadHex(format!(
                "{s:?}: digest must be 40 to 128 hex digits"
            )));
        }
        hex::decode(s).map_err(|e| OrderError::BadHex(format!("{s:?}: {e}")))?;
        Ok(HexDigest(s.to_ascii_lowercase()))
    }
    /// Lowercase hex.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// True when `other` is the same digest in hex of either case.
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}
impl fmt::Display for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl Serialize for HexDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for HexDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HexDigest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A u64 written as exactly 16 hex digits, most significant first
/// (`"0000000010000000"` is bit 28).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexU64(pub u64);
impl fmt::Display for HexU64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
impl fmt::Debug for HexU64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}
impl Serialize for HexU64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for HexU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let h = Hex::<8>::parse(&s).map_err(serde::de::Error::custom)?;
        Ok(HexU64(u64::from_be_bytes(h.0)))
    }
}

/// An X25519 encryption public key in text form `x25519:<base64>`. Kept
/// opaque here; the sealing code validates it when it encrypts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EncryptionKey(String);
impl EncryptionKey {
    /// Check the `x25519:` prefix and a non-empty base64-looking rest.
    pub fn new(s: &str) -> Result<Self, OrderError> {
        let rest = s.strip_prefix("x25519:").ok_or_else(|| {
            OrderError::BadKey(format!("{s:?}: encryption keys are x25519:<base64>"))
        })?;
        let ok = !rest.is_empty()
            && rest.len() <= 128
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b));
        if !ok {
            return Err(OrderError::BadKey(format!(
                "{s:?}: encryption keys are x25519:<base64>"
            )));
        }
        Ok(EncryptionKey(s.to_string()))
    }
    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl Serialize for EncryptionKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for EncryptionKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        EncryptionKey::new(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------- model

/// `[order]`: identity, version and lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Header {
    /// Rollback protection is per family: `[a-z0-9._/-]{1,128}`.
    pub family: String,
    /// Monotonic version within the family.
    pub version: u64,
    /// RFC 3339 expiry time (the order is void at and after it).
    pub expires: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Parties who must all sign the order.
    pub signers: Vec<Name>,
}

/// `[parties.NAME]`: a party's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Party {
    /// The key this party signs orders with (required for signers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<PublicKey>,
    /// The key outputs are encrypted to (required for output recipients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<EncryptionKey>,
}

fn default_accept_tcb() -> Vec<TcbStatus> {
    vec![TcbStatus::UpToDate]
}

/// `[platform]`: what platform the order may run on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Platform {
    /// Accept evidence that chains to the simulated TEE root.
    #[serde(default)]
    pub allow_simulated: bool,
    /// Accept a TEE (or GPU) in debug mode.
    #[serde(default)]
    pub allow_debug: bool,
    /// Accepted TCB statuses (default `["UpToDate"]`).
    #[serde(default = "default_accept_tcb")]
    pub accept_tcb: Vec<TcbStatus>,
    /// Allowed TEE kinds; when absent, the kinds that have a reference
    /// section (`tdx`, `snp`, `tpm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tee: Option<Vec<TeeKind>>,
    /// TDX reference values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tdx: Option<TdxRef>,
    /// SEV-SNP reference values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snp: Option<SnpRef>,
    /// TPM reference values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmRef>,
    /// GPU requirements; when absent no GPU may be attested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuRef>,
    /// NVSwitch requirements; when absent no NVSwitch may be attested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvswitch: Option<NvSwitchRef>,
}

impl Platform {
    /// The TEE kinds the order accepts.
    pub fn allowed_tees(&self) -> Vec<TeeKind> {
        match &self.tee {
            Some(t) => t.clone(),
            None => {
                let mut v = Vec::new();
                if self.tdx.is_some() {
                    v.push(TeeKind::Tdx);
                }
                if self.snp.is_some() {
                    v.push(TeeKind::SevSnp);
                }
                if self.tpm.is_some() {
                    v.push(TeeKind::Tpm);
                }
                v
            }
        }
    }
}

/// `[platform.tdx]`: every field optional; a present field must match exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TdxRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrtd: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr0: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr1: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr2: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtmr3: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrconfigid: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrowner: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mrownerconfig: Option<Hex<48>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub td_attributes: Option<HexU64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xfam: Option<HexU64>,
}

impl TdxRef {
    /// The RTMR reference values by index.
    pub fn rtmrs(&self) -> [(usize, Option<&Hex<48>>); 4] {
        [
            (0, self.rtmr0.as_ref()),
            (1, self.rtmr1.as_ref()),
            (2, self.rtmr2.as_ref()),
            (3, self.rtmr3.as_ref()),
        ]
    }
}

/// `[platform.snp]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SnpRef {
    /// Allowed launch measurements (any one matches); absent = any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<Vec<Hex<48>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_data: Option<Hex<32>>,
    /// Accept a guest policy with the DEBUG bit (bit 19) set.
    #[serde(default)]
    pub policy_debug_allowed: bool,
    /// Minimum REPORTED_TCB, compared as one u64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_reported_tcb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmpl: Option<u32>,
}

/// `[platform.tpm]`: expected PCR values by bank and index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TpmRef {
    pub pcrs: BTreeMap<String, BTreeMap<u32, HexDigest>>,
}

/// SHA-1, SHA-256, SHA-384 and SHA-512 banks with their digest sizes.
const PCR_BANKS: [(&str, usize); 4] =
    [("sha1", 20), ("sha256", 32), ("sha384", 48), ("sha512", 64)];

fn parse_index(s: &str, max: u32) -> Result<u32, String> {
    let ok = !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    match s.parse::<u32>() {
        Ok(i) if ok && i <= max && (s == "0" || !s.starts_with('0')) => Ok(i),
        _ => Err(format!("{s:?} is not an index 0..={max}")),
    }
}

impl<'de> Deserialize<'de> for TpmRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            pcrs: BTreeMap<String, BTreeMap<String, String>>,
        }
        let raw = Raw::deserialize(d)?;
        let mut pcrs = BTreeMap::new();
        for (bank, m) in raw.pcrs {
            let size = PCR_BANKS
                .iter()
                .find(|(b, _)| *b == bank)
                .map(|(_, s)| *s)
                .ok_or_else(|| D::Error::custom(format!("unknown PCR bank {bank:?}")))?;
            let mut out = BTreeMap::new();
            for (idx, v) in m {
                let i = parse_index(&idx, 23).map_err(D::Error::custom)?;
                let dg = HexDigest::parse(&v).map_err(D::Error::custom)?;
                if dg.as_str().len() != 2 * size {
                    return Err(D::Error::custom(format!(
                        "PCR {bank}:{i}: expected {} hex digits",
                        2 * size
                    )));
                }
                out.insert(i, dg);
            }
            pcrs.insert(bank, out);
        }
        Ok(TpmRef { pcrs })
    }
}

fn default_true() -> bool {
    true
}

/// `[platform.gpu]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct GpuRef {
    /// Exact number of attested GPUs.
    pub count: u32,
    /// Require confidential-computing mode on every GPU (default true).
    pub cc_mode: bool,
    /// Allowed driver versions; empty = any.
    pub driver_versions: Vec<String>,
    /// Allowed VBIOS versions; empty = any.
    pub vbios_versions: Vec<String>,
    /// Measurement index to expected hex digest, on every GPU.
    pub measurements: BTreeMap<u32, HexDigest>,
}

impl<'de> Deserialize<'de> for GpuRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            count: u32,
            #[serde(default = "default_true")]
            cc_mode: bool,
            #[serde(default)]
            driver_versions: Vec<String>,
            #[serde(default)]
            vbios_versions: Vec<String>,
            #[serde(default)]
            measurements: BTreeMap<String, String>,
        }
        let raw = Raw::deserialize(d)?;
        let measurements = parse_measurements(raw.measurements).map_err(D::Error::custom)?;
        if raw.count > 64 {
            return Err(D::Error::custom("gpu.count above 64"));
        }
        Ok(GpuRef {
            count: raw.count,
            cc_mode: raw.cc_mode,
            driver_versions: raw.driver_versions,
            vbios_versions: raw.vbios_versions,
            measurements,
        })
    }
}

/// `[platform.nvswitch]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NvSwitchRef {
    /// Exact number of attested NVSwitches.
    pub count: u32,
    /// Require trusted NVLink mode, locked, on every switch (default true).
    pub tnvl_mode: bool,
    /// Allowed firmware (VBIOS) versions; empty = any.
    pub vbios_versions: Vec<String>,
    /// Measurement index to expected hex digest, on every switch.
    pub measurements: BTreeMap<u32, HexDigest>,
}

impl<'de> Deserialize<'de> for NvSwitchRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            count: u32,
            #[serde(default = "default_true")]
            tnvl_mode: bool,
            #[serde(default)]
            vbios_versions: Vec<String>,
            #[serde(default)]
            measurements: BTreeMap<String, String>,
        }
        let raw = Raw::deserialize(d)?;
        if raw.count > 64 {
            return Err(D::Error::custom("nvswitch.count above 64"));
        }
        Ok(NvSwitchRef {
            count: raw.count,
            tnvl_mode: raw.tnvl_mode,
            vbios_versions: raw.vbios_versions,
            measurements: parse_measurements(raw.measurements).map_err(D::Error::custom)?,
        })
    }
}

fn parse_measurements(raw: BTreeMap<String, String>) -> Result<BTreeMap<u32, HexDigest>, String> {
    let mut out = BTreeMap::new();
    for (idx, v) in raw {
        let i = parse_index(&idx, 255).map_err(|e| e.to_string())?;
        out.insert(i, HexDigest::parse(&v).map_err(|e| e.to_string())?);
    }
    Ok(out)
}

/// The role of a component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// The program that is launched (exactly one per order).
    Engine,
    /// Input data.
    Dataset,
    /// Configuration for the engine.
    Config,
    /// Model weights.
    Model,
}

impl Role {
    /// The TOML name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Engine => "engine",
            Role::Dataset => "dataset",
            Role::Config => "config",
            Role::Model => "model",
        }
    }
}

/// `[[components]]`: one input, pinned by digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Component {
    pub name: Name,
    pub role: Role,
    /// The party that owns (and grants the key of) this component.
    pub owner: Name,
    /// Plaintext size in bytes.
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Hex<32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha384: Option<Hex<48>>,
    /// SHA-256 Merkle root over 1 MiB leaves (see the sealed format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree_sha256: Option<Hex<32>>,
    /// Path of the plaintext file under `{components}`; defaults to the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mount: Option<RelPath>,
    /// Whether the file is made executable.
    #[serde(default)]
    pub executable: bool,
}

impl Component {
    /// Path of the plaintext file relative to the components directory.
    pub fn mount(&self) -> &str {
        self.mount
            .as_ref()
            .map(RelPath::as_str)
            .unwrap_or(self.name.as_str())
    }
}

/// Observed facts about a decrypted component, to compare with the order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedComponent {
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub sha384: Option<[u8; 48]>,
    pub tree_sha256: Option<[u8; 32]>,
}

/// `[launch]`: how the engine is started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Launch {
    /// Program and arguments; `{components}` and `{outputs}` are replaced by
    /// the directories.
    pub argv: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default `{outputs}`).
    #[serde(default = "default_workdir")]
    pub workdir: String,
    pub memory_mb: u64,
    pub cpu_seconds: u64,
    pub timeout_seconds: u64,
}

fn default_workdir() -> String {
    "{outputs}".to_string()
}

/// The placeholders that launch strings may use.
pub const PLACEHOLDERS: [&str; 2] = ["{components}", "{outputs}"];

fn check_placeholders(what: &str, s: &str) -> Result<(), OrderError> {
    if s.contains('\0') {
        return Err(OrderError::Invalid(format!("{what}: NUL byte")));
    }
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i..];
        match PLACEHOLDERS.iter().find(|p| tail.starts_with(**p)) {
            Some(p) => rest = &tail[p.len()..],
            None => {
                return Err(OrderError::Invalid(format!(
                    "{what}: {s:?}: only {{components}} and {{outputs}} may appear in braces"
                )))
            }
        }
    }
    if rest.contains('}') {
        // a stray '}' after the last placeholder
        return Err(OrderError::Invalid(format!("{what}: {s:?}: stray '}}'")));
    }
    Ok(())
}

fn expand(s: &str, components: &str, outputs: &str) -> String {
    s.replace("{components}", components)
        .replace("{outputs}", outputs)
}

impl Launch {
    /// `argv` with placeholders replaced.
    pub fn argv_expanded(&self, components_dir: &str, outputs_dir: &str) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| expand(a, components_dir, outputs_dir))
            .collect()
    }
    /// `env` with placeholders replaced in values.
    pub fn env_expanded(
        &self,
        components_dir: &str,
        outputs_dir: &str,
    ) -> BTreeMap<String, String> {
        self.env
            .iter()
            .map(|(k, v)| (k.clone(), expand(v, components_dir, outputs_dir)))
            .collect()
    }
    /// `workdir` with placeholders replaced.
    pub fn workdir_expanded(&self, components_dir: &str, outputs_dir: &str) -> String {
        expand(&self.workdir, components_dir, outputs_dir)
    }
}

/// `[[outputs]]`: a file the engine writes, encrypted to the recipients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Output {
    pub name: Name,
    /// Path relative to `{outputs}`.
    pub path: RelPath,
    /// Parties the output is encrypted to (each has an encryption key).
    pub recipients: Vec<Name>,
    /// Largest accepted output size.
    pub max_bytes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    order: Header,
    parties: BTreeMap<String, Party>,
    platform: Platform,
    components: Vec<Component>,
    launch: Launch,
    #[serde(default)]
    outputs: Vec<Output>,
}

/// A structurally valid order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Order {
    order: Header,
    parties: BTreeMap<Name, Party>,
    platform: Platform,
    components: Vec<Component>,
    launch: Launch,
    outputs: Vec<Output>,
    #[serde(skip)]
    expires_unix: u64,
    #[serde(skip)]
    engine: usize,
}

fn check_family(s: &str) -> Result<(), OrderError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('/')
        && !s.ends_with('/')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(OrderError::BadName(format!(
            "family {s:?}: 1 to 128 of [a-z0-9._/-], not starting or ending with '/'"
        )))
    }
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 128
}

impl Order {
    /// Parse and check an order. Every structural rule of
    /// `docs/formats/order.md` is enforced here.
    pub fn from_toml(text: &str) -> Result<Order, OrderError> {
        if text.len() > MAX_ORDER_BYTES {
            return Err(OrderError::TooLarge(text.len()));
        }
        let raw: Raw = toml::from_str(text).map_err(|e| {
            // Keep the error on one line.
            OrderError::Toml(
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        })?;

        // [order]
        let h = &raw.order;
        check_family(&h.family)?;
        let expires = OffsetDateTime::parse(&h.expires, &Rfc3339)
            .map_err(|e| OrderError::BadTime(format!("{:?}: {e}", h.expires)))?;
        let expires_unix = u64::try_from(expires.unix_timestamp())
            .map_err(|_| OrderError::BadTime(format!("{:?} is before 1970", h.expires)))?;
        if let Some(d) = &h.description {
            if d.len() > 4096 {
                return Err(OrderError::Invalid("description above 4096 bytes".into()));
            }
        }

        // [parties]
        let mut parties = BTreeMap::new();
        let mut keys = BTreeSet::new();
        for (n, p) in raw.parties {
            let name = Name::new(&n)?;
            if let Some(k) = &p.signing_key {
                if !keys.insert(k.to_string()) {
                    return Err(OrderError::Duplicate(format!(
                        "party {n} reuses another party's signing key"
                    )));
                }
            }
            parties.insert(name, p);
        }
        if parties.is_empty() {
            return Err(OrderError::UnknownParty("no parties defined".into()));
        }
        let known = |n: &Name, what: &str| -> Result<(), OrderError> {
            if parties.contains_key(n) {
                Ok(())
            } else {
                Err(OrderError::UnknownParty(format!("{what} names {n}")))
            }
        };

        // signers
        let mut signers = BTreeSet::new();
        for s in &h.signers {
            known(s, "signers")?;
            if !signers.insert(s.clone()) {
                return Err(OrderError::Duplicate(format!("signer {s} listed twice")));
            }
            if parties
                .get(s)
                .and_then(|p| p.signing_key.as_ref())
                .is_none()
            {
                return Err(OrderError::Signers(format!(
                    "signer {s} has no signing_key"
                )));
            }
        }

        // components
        if raw.components.len() > 1024 {
            return Err(OrderError::Invalid("more than 1024 components".into()));
        }
        let mut names = BTreeSet::new();
        let mut mounts: Vec<RelPath> = Vec::new();
        let mut engines = Vec::new();
        for (i, c) in raw.components.iter().enumerate() {
            if !names.insert(c.name.clone()) {
                return Err(OrderError::Duplicate(format!("component {}", c.name)));
            }
            known(&c.owner, &format!("component {} owner", c.name))?;
            if !signers.contains(&c.owner) {
                return Err(OrderError::Signers(format!(
                    "{} owns component {} but is not in signers",
                    c.owner, c.name
                )));
            }
            if c.sha256.is_none() && c.sha384.is_none() && c.tree_sha256.is_none() {
                return Err(OrderError::NoDigest(c.name.to_string()));
            }
            let m = match &c.mount {
                Some(m) => m.clone(),
                None => RelPath::new(c.name.as_str())?,
            };
            if let Some(o) = mounts.iter().find(|o| o.overlaps(&m)) {
                return Err(OrderError::BadPath(format!(
                    "component {} mount {m} overlaps {o}",
                    c.name
                )));
            }
            mounts.push(m);
            if c.role == Role::Engine {
                engines.push(i);
            }
        }
        let engine = match engines.as_slice() {
            [one] => *one,
            other => return Err(OrderError::EngineCount(other.len())),
        };

        // launch
        let l = &raw.launch;
        if l.argv.is_empty() || l.argv.first().is_some_and(|a| a.is_empty()) {
            return Err(OrderError::Invalid("launch.argv needs a program".into()));
        }
        if l.argv.len() > 1024 || l.env.len() > 1024 {
            return Err(OrderError::Invalid("launch: more than 1024 entries".into()));
        }
        for a in &l.argv {
            check_placeholders("launch.argv", a)?;
        }
        for (k, v) in &l.env {
            if !is_env_name(k) {
                return Err(OrderError::Invalid(format!("launch.env: bad name {k:?}")));
            }
            check_placeholders(&format!("launch.env.{k}"), v)?;
        }
        check_placeholders("launch.workdir", &l.workdir)?;
        if l.memory_mb == 0 || l.cpu_seconds == 0 || l.timeout_seconds == 0 {
            return Err(OrderError::Invalid(
                "launch: memory_mb, cpu_seconds and timeout_seconds must be above 0".into(),
            ));
        }

        // outputs
        let mut out_names = BTreeSet::new();
        let mut out_paths: Vec<&RelPath> = Vec::new();
        for o in &raw.outputs {
            if !out_names.insert(o.name.clone()) {
                return Err(OrderError::Duplicate(format!("output {}", o.name)));
            }
            if let Some(p) = out_paths.iter().find(|p| p.overlaps(&o.path)) {
                return Err(OrderError::BadPath(format!(
                    "output {} path {} overlaps {p}",
                    o.name, o.path
                )));
            }
            out_paths.push(&o.path);
            if o.recipients.is_empty() {
                return Err(OrderError::Recipients(format!(
                    "output {} has none",
                    o.name
                )));
            }
            let mut seen = BTreeSet::new();
            for r in &o.recipients {
                known(r, &format!("output {} recipient", o.name))?;
                if !seen.insert(r) {
                    return Err(OrderError::Duplicate(format!(
                        "output {} recipient {r}",
                        o.name
                    )));
                }
                if parties
                    .get(r)
                    .and_then(|p| p.encryption_key.as_ref())
                    .is_none()
                {
                    return Err(OrderError::Recipients(format!(
                        "output {}: {r} has no encryption_key",
                        o.name
                    )));
                }
            }
            if o.max_bytes == 0 {
                return Err(OrderError::Invalid(format!(
                    "output {}: max_bytes is 0",
                    o.name
                )));
            }
        }

        // platform
        let p = &raw.platform;
        if p.allowed_tees().is_empty() {
            return Err(OrderError::Invalid(
                "platform: list allowed TEEs in `tee` or give a tdx, snp or tpm section".into(),
            ));
        }
        if p.accept_tcb.is_empty() {
            return Err(OrderError::Invalid("platform.accept_tcb is empty".into()));
        }
        if p.accept_tcb.contains(&TcbStatus::Revoked) {
            return Err(OrderError::Invalid(
                "platform.accept_tcb lists Revoked: a revoked TCB is never accepted".into(),
            ));
        }
        if let Some(s) = &p.snp {
            if s.measurement.as_ref().is_some_and(|m| m.is_empty()) {
                return Err(OrderError::Invalid(
                    "platform.snp.measurement is an empty list (omit it to accept any)".into(),
                ));
            }
        }

        let order = Order {
            order: raw.order,
            parties,
            platform: raw.platform,
            components: raw.components,
            launch: raw.launch,
            outputs: raw.outputs,
            expires_unix,
            engine,
        };
        // The engine owner is a component owner, so it was checked above.
        Ok(order)
    }

    /// The `[order]` header.
    pub fn header(&self) -> &Header {
        &self.order
    }
    /// The family, the unit of rollback protection.
    pub fn family(&self) -> &str {
        &self.order.family
    }
    /// The version within the family.
    pub fn version(&self) -> u64 {
        self.order.version
    }
    /// Expiry as unix seconds.
    pub fn expires_unix(&self) -> u64 {
        self.expires_unix
    }
    /// Expiry as RFC 3339 text, as written.
    pub fn expires(&self) -> &str {
        &self.order.expires
    }
    /// Free text description.
    pub fn description(&self) -> Option<&str> {
        self.order.description.as_deref()
    }
    /// Parties who must sign.
    pub fn signers(&self) -> &[Name] {
        &self.order.signers
    }
    /// A party by name.
    pub fn party(&self, name: &str) -> Option<&Party> {
        self.parties
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, p)| p)
    }
    /// All parties by name.
    pub fn parties(&self) -> &BTreeMap<Name, Party> {
        &self.parties
    }
    /// Platform requirements.
    pub fn platform(&self) -> &Platform {
        &self.platform
    }
    /// A component by name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name.as_str() == name)
    }
    /// All components, in order.
    pub fn components(&self) -> &[Component] {
        &self.components
    }
    /// The engine component.
    pub fn engine(&self) -> &Component {
        // `engine` indexes `components`: set by `from_toml`, and both are
        // private and immutable.
        &self.components[self.engine]
    }
    /// The launch description.
    pub fn launch(&self) -> &Launch {
        &self.launch
    }
    /// The outputs.
    pub fn outputs(&self) -> &[Output] {
        &self.outputs
    }
    /// The signing key of every signer, with the signer's name.
    pub fn signer_keys(&self) -> Vec<(&Name, &PublicKey)> {
        self.order
            .signers
            .iter()
            .filter_map(|s| {
                self.parties
                    .get(s)
                    .and_then(|p| p.signing_key.as_ref())
                    .map(|k| (s, k))
            })
            .collect()
    }

    /// Compare a decrypted component with what the order pins. Every
    /// mismatch is listed; a digest the order pins but the observation lacks
    /// is a mismatch.
    pub fn check_component(&self, observed: &ObservedComponent) -> Result<(), Vec<Failure>> {
        let Some(c) = self.component(&observed.name) else {
            return Err(vec![Failure::new(
                ReasonCode::ComponentUnknown,
                format!("component {:?} is not in the order", observed.name),
            )]);
        };
        let mut f = Vec::new();
        let name = &c.name;
        if c.size != observed.size {
            f.push(Failure::new(
                ReasonCode::ComponentSizeMismatch,
                format!("{name}: size {} expected {}", observed.size, c.size),
            ));
        }
        if let Some(want) = &c.sha256 {
            if want.0 != observed.sha256 {
                f.push(Failure::new(
                    ReasonCode::ComponentDigestMismatch,
                    format!(
                        "{name}: sha256 {} expected {want}",
                        hex::encode(observed.sha256)
                    ),
                ));
            }
        }
        if let Some(want) = &c.sha384 {
            match &observed.sha384 {
                Some(got) if got == &want.0 => {}
                got => f.push(Failure::new(
                    ReasonCode::ComponentDigestMismatch,
                    format!(
                        "{name}: sha384 {} expected {want}",
                        got.map(hex::encode)
                            .unwrap_or_else(|| "not computed".into())
                    ),
                )),
            }
        }
        if let Some(want) = &c.tree_sha256 {
            match &observed.tree_sha256 {
                Some(got) if got == &want.0 => {}
                got => f.push(Failure::new(
                    ReasonCode::ComponentDigestMismatch,
                    format!(
                        "{name}: tree_sha256 {} expected {want}",
                        got.map(hex::encode)
                            .unwrap_or_else(|| "not computed".into())
                    ),
                )),
            }
        }
        if f.is_empty() {
            Ok(())
        } else {
            Err(f)
        }
    }
}
