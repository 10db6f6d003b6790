//! Key grants: a content key wrapped with HPKE (RFC 9180, base mode) to a
//! recipient's X25519 key, bound to one order and one component.
//!
//! Suite: KEM DHKEM(X25519, HKDF-SHA256) (0x0020), KDF HKDF-SHA256 (0x0001),
//! AEAD AES-256-GCM (0x0002). Binary layout (all integers big endian):
//!
//! ```text
//! magic "TLGRANT1"                 8
//! kem id, kdf id, aead id          2 + 2 + 2
//! order digest                     32
//! component name length (1..=64)   1, then the UTF-8 name
//! component sha256                 32
//! recipient public key             32
//! enc length (= 32)                2, then enc
//! ciphertext length (= 48)         2, then ciphertext (32-byte key + tag)
//! ```
//!
//! Nothing may follow. HPKE `info` is `"trusted-loader/grant/v1"`, the AAD is
//! every byte from the magic up to and including the recipient public key
//! (the length-prefixed header), so each header field is authenticated.

use aws_lc_rs::digest::SHA256;
use base64::Engine as _;
use hpke::rand_core::{CryptoRng, RngCore};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::stream::ContentKey;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::AesGcm256;

/// Magic of a grant.
pub const GRANT_MAGIC: &[u8; 8] = b"TLGRANT1";
/// HPKE info string.
pub const GRANT_INFO: &[u8] = b"trusted-loader/grant/v1";
/// DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
/// HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// AES-256-GCM.
pub const AEAD_AES_256_GCM: u16 = 0x0002;
/// PEM label of a recipient secret key file (raw 32-byte X25519 key).
pub const SECRET_KEY_PEM_LABEL: &str = "TL X25519 PRIVATE KEY";
/// Prefix of the text form of a public key.
pub const PUBLIC_KEY_PREFIX: &str = "x25519:";
/// Longest component name.
pub const MAX_NAME_LEN: usize = 64;

const ENC_LEN: usize = 32;
const CT_LEN: usize = 32 + 16;

/// Grant errors, each with a stable [`code`](Self::code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// The bytes are not a well-formed grant.
    #[error("malformed grant: {0}")]
    Malformed(&'static str),
    /// A suite other than X25519 / HKDF-SHA256 / AES-256-GCM.
    #[error("unsupported HPKE suite kem={kem:#06x} kdf={kdf:#06x} aead={aead:#06x}")]
    UnsupportedSuite {
        /// KEM id.
        kem: u16,
        /// KDF id.
        kdf: u16,
        /// AEAD id.
        aead: u16,
    },
    /// The grant is for another order.
    #[error("grant is for another order")]
    WrongOrder,
    /// The grant is for another component (name or digest).
    #[error("grant is for another component")]
    WrongComponent,
    /// The grant is wrapped to another recipient key.
    #[error("grant is for another recipient key")]
    WrongRecipient,
    /// HPKE decryption failed (tampered grant).
    #[error("grant decryption failed")]
    DecryptFailed,
    /// A component name that is empty, longer than 64 bytes.
    #[error("component name must be 1..=64 bytes")]
    BadComponentName,
    /// A public or secret key text/PEM that does not parse.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// HPKE encryption failed.
    #[error("grant encryption failed")]
    SealFailed,
    /// The random generator failed.
    #[error("random generator failed")]
    Rng,
}

impl GrantError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "GRANT_MALFORMED",
            Self::UnsupportedSuite { .. } => "GRANT_UNSUPPORTED_SUITE",
            Self::WrongOrder => "GRANT_WRONG_ORDER",
            Self::WrongComponent => "GRANT_WRONG_COMPONENT",
            Self::WrongRecipient => "GRANT_WRONG_RECIPIENT",
            Self::DecryptFailed => "GRANT_DECRYPT_FAILED",
            Self::BadComponentName => "GRANT_BAD_COMPONENT_NAME",
            Self::MalformedKey(_) => "KEY_MALFORMED",
            Self::SealFailed => "GRANT_SEAL_FAILED",
            Self::Rng => "GRANT_RNG_FAILED",
        }
    }
}

/// A recipient's X25519 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientPublicKey {
    raw: [u8; 32],
    pk: <Kem as hpke::Kem>::PublicKey,
}

impl std::fmt::Debug for RecipientPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecipientPublicKey({})", self.to_text())
    }
}

impl RecipientPublicKey {
    /// From the raw 32 bytes.
    pub fn from_bytes(raw: [u8; 32]) -> Result<Self, GrantError> {
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&raw)
            .map_err(|_| GrantError::MalformedKey("x25519 public key"))?;
        Ok(Self { raw, pk })
    }
    /// Raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.raw
    }
    /// `x25519:<base64 standard padded>`.
    pub fn to_text(&self) -> String {
        format!(
            "{PUBLIC_KEY_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(self.raw)
        )
    }
    /// Parse the text form; surrounding whitespace is ignored.
    pub fn from_text(text: &str) -> Result<Self, GrantError> {
        let b64 = text
            .trim()
            .strip_prefix(PUBLIC_KEY_PREFIX)
            .ok_or(GrantError::MalformedKey("expected x25519:<base64>"))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| GrantError::MalformedKey("bad base64"))?;
        let raw: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| GrantError::MalformedKey("expected 32 bytes"))?;
        Self::from_bytes(raw)
    }
}

impl std::str::FromStr for RecipientPublicKey {
    type Err = GrantError;
    fn from_str(s: &str) -> Result<Self, GrantError> {
        Self::from_text(s)
    }
}

/// A recipient's X25519 secret key (zeroized on drop).
#[derive(Clone)]
pub struct RecipientSecretKey {
    raw: Zeroizing<[u8; 32]>,
    sk: <Kem as hpke::Kem>::PrivateKey,
    public: RecipientPublicKey,
}

impl std::fmt::Debug for RecipientSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecipientSecretKey(public: {})", self.public.to_text())
    }
}

impl RecipientSecretKey {
    fn from_hpke(sk: <Kem as hpke::Kem>::PrivateKey) -> Result<Self, GrantError> {
        let pk = Kem::sk_to_pk(&sk);
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&sk.to_bytes());
        let mut praw = [0u8; 32];
        praw.copy_from_slice(&pk.to_bytes());
        Ok(Self {
            raw,
            sk,
            public: RecipientPublicKey { raw: praw, pk },
        })
    }

    /// Deterministic key pair from a 32-byte seed: HPKE `DeriveKeyPair`
    /// (RFC 9180 section 7.1.3) of DHKEM(X25519, HKDF-SHA256).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let (sk, _) = Kem::derive_keypair(seed);
        let pk = Kem::sk_to_pk(&sk);
        let mut raw = Zeroizing::new([0u8; 32]);
        raw.copy_from_slice(&sk.to_bytes());
        let mut praw = [0u8; 32];
        praw.copy_from_slice(&pk.to_bytes());
        Self {
            raw,
            sk,
            public: RecipientPublicKey { raw: praw, pk },
        }
    }

    /// A fresh random key pair (seed from aws-lc's generator).
    pub fn generate() -> Result<Self, GrantError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(seed.as_mut()).map_err(|_| GrantError::Rng)?;
        Ok(Self::from_seed(&seed))
    }

    /// From the raw 32-byte X25519 secret.
    pub fn from_bytes(raw: &[u8; 32]) -> Result<Self, GrantError> {
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(raw)
            .map_err(|_| GrantError::MalformedKey("x25519 secret key"))?;
        Self::from_hpke(sk)
    }

    /// The raw 32-byte secret.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.raw
    }

    /// The matching public key.
    pub fn public_key(&self) -> &RecipientPublicKey {
        &self.public
    }

    /// PEM with label `TL X25519 PRIVATE KEY` around the raw 32 bytes.
    pub fn to_pem(&self) -> Zeroizing<String> {
        let b64 =
            Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.raw.as_ref()));
        Zeroizing::new(format!(
            "-----BEGIN {SECRET_KEY_PEM_LABEL}-----\n{}\n-----END {SECRET_KEY_PEM_LABEL}-----\n",
            b64.as_str()
        ))
    }

    /// Parse [`to_pem`](Self::to_pem)'s output (strict label, 32 bytes).
    pub fn from_pem(pem: &str) -> Result<Self, GrantError> {
        let begin = format!("-----BEGIN {SECRET_KEY_PEM_LABEL}-----");
        let end = format!("-----END {SECRET_KEY_PEM_LABEL}-----");
        let mut lines = pem.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(begin.as_str()) {
            return Err(GrantError::MalformedKey(
                "expected BEGIN TL X25519 PRIVATE KEY",
            ));
        }
        let mut b64 = Zeroizing::new(String::new());
        let mut ended = false;
        for l in lines.by_ref() {
            if l == end {
                ended = true;
                break;
            }
            b64.push_str(l);
        }
        if !ended || lines.next().is_some() {
            return Err(GrantError::MalformedKey("bad PEM framing"));
        }
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| GrantError::MalformedKey("bad base64"))?,
        );
        let arr: &[u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| GrantError::MalformedKey("expected 32 bytes"))?;
        Self::from_bytes(arr)
    }
}

/// What a grant is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantContext {
    /// Digest of the order (signed policy) the grant is for.
    pub order_digest: [u8; 32],
    /// Component name in that order (1..=64 bytes).
    pub component_name: String,
    /// SHA-256 of the component's plaintext.
    pub component_sha256: [u8; 32],
}

/// Serialized header: magic through recipient public key (also the AAD).
fn header_bytes(ctx: &GrantContext, recipient: &[u8; 32]) -> Result<Vec<u8>, GrantError> {
    let name = ctx.component_name.as_bytes();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(GrantError::BadComponentName);
    }
    let mut h = Vec::with_capacity(8 + 6 + 32 + 1 + name.len() + 64);
    h.extend_from_slice(GRANT_MAGIC);
    h.extend_from_slice(&KEM_X25519_HKDF_SHA256.to_be_bytes());
    h.extend_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
    h.extend_from_slice(&AEAD_AES_256_GCM.to_be_bytes());
    h.extend_from_slice(&ctx.order_digest);
    // name.len() <= 64 checked above.
    h.push(name.len() as u8);
    h.extend_from_slice(name);
    h.extend_from_slice(&ctx.component_sha256);
    h.extend_from_slice(recipient);
    Ok(h)
}

/// Wrap `key` to `recipient` for `ctx`. `rng` supplies the HPKE ephemeral
/// key (use [`crate::SystemRng`]; tests pass a seeded generator).
pub fn seal_grant<R: CryptoRng + RngCore>(
    recipient: &RecipientPublicKey,
    key: &ContentKey,
    ctx: &GrantContext,
    rng: &mut R,
) -> Result<Vec<u8>, GrantError> {
    let mut out = header_bytes(ctx, &recipient.raw)?;
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem, R>(
        &OpModeS::Base,
        &recipient.pk,
        GRANT_INFO,
        key.as_bytes(),
        &out,
        rng,
    )
    .map_err(|_| GrantError::SealFailed)?;
    let enc = enc.to_bytes();
    if enc.len() != ENC_LEN || ct.len() != CT_LEN {
        return Err(GrantError::SealFailed);
    }
    out.extend_from_slice(&(ENC_LEN as u16).to_be_bytes());
    out.extend_from_slice(&enc);
    out.extend_from_slice(&(CT_LEN as u16).to_be_bytes());
    out.extend_from_slice(&ct);
    Ok(out)
}

/// A parsed grant (no cryptographic check yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedGrant {
    /// Bound context.
    pub context: GrantContext,
    /// Recipient public key bytes named in the grant.
    pub recipient: [u8; 32],
    enc: [u8; ENC_LEN],
    ct: [u8; CT_LEN],
    header_len: usize,
}

struct Cursor<'a>(&'a [u8]);
impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], GrantError> {
        if self.0.len() < n {
            return Err(GrantError::Malformed(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], GrantError> {
        self.take(N, what)?
            .try_into()
            .map_err(|_| GrantError::Malformed(what))
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, GrantError> {
        Ok(u16::from_be_bytes(self.arr::<2>(what)?))
    }
}

/// Strictly parse a grant: exact lengths, known suite, no trailing bytes.
pub fn parse_grant(bytes: &[u8]) -> Result<ParsedGrant, GrantError> {
    let mut c = Cursor(bytes);
    if c.take(8, "magic")? != GRANT_MAGIC {
        return Err(GrantError::Malformed("bad magic (not a grant)"));
    }
    let (kem, kdf, aead) = (c.u16("kem id")?, c.u16("kdf id")?, c.u16("aead id")?);
    if (kem, kdf, aead) != (KEM_X25519_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_256_GCM) {
        return Err(GrantError::UnsupportedSuite { kem, kdf, aead });
    }
    let order_digest = c.arr::<32>("order digest")?;
    let name_len = usize::from(c.arr::<1>("name length")?[0]);
    if name_len == 0 || name_len > MAX_NAME_LEN {
        return Err(GrantError::Malformed("component name length"));
    }
    let name = std::str::from_utf8(c.take(name_len, "component name")?)
        .map_err(|_| GrantError::Malformed("component name is not UTF-8"))?
        .to_owned();
    let component_sha256 = c.arr::<32>("component sha256")?;
    let recipient = c.arr::<32>("recipient key")?;
    let header_len = bytes.len() - c.0.len();
    if usize::from(c.u16("enc length")?) != ENC_LEN {
        return Err(GrantError::Malformed("enc length"));
    }
    let enc = c.arr::<ENC_LEN>("enc")?;
    if usize::from(c.u16("ciphertext length")?) != CT_LEN {
        return Err(GrantError::Malformed("ciphertext length"));
    }
    let ct = c.arr::<CT_LEN>("ciphertext")?;
    if !c.0.is_empty() {
        return Err(GrantError::Malformed("trailing bytes"));
    }
    Ok(ParsedGrant {
        context: GrantContext {
            order_digest,
            component_name: name,
            component_sha256,
        },
        recipient,
        enc,
        ct,
        header_len,
    })
}

/// Open a grant for `expected`: it must name exactly that order, component
/// and this recipient, and decrypt.
pub fn open_grant(
    bytes: &[u8],
    sk: &RecipientSecretKey,
    expected: &GrantContext,
) -> Result<ContentKey, GrantError> {
    let g = parse_grant(bytes)?;
    if g.context.order_digest != expected.order_digest {
        return Err(GrantError::WrongOrder);
    }
    if g.context.component_name != expected.component_name
        || g.context.component_sha256 != expected.component_sha256
    {
        return Err(GrantError::WrongComponent);
    }
    if g.recipient != sk.public.raw {
        return Err(GrantError::WrongRecipient);
    }
    let aad = bytes
        .get(..g.header_len)
        .ok_or(GrantError::Malformed("header"))?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&g.enc)
        .map_err(|_| GrantError::DecryptFailed)?;
    let pt = Zeroizing::new(
        hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &sk.sk,
            &enc,
            GRANT_INFO,
            &g.ct,
            aad,
        )
        .map_err(|_| GrantError::DecryptFailed)?,
    );
    let arr: [u8; 32] = pt
        .as_slice()
        .try_into()
        .map_err(|_| GrantError::DecryptFailed)?;
    Ok(ContentKey::from_bytes(arr))
}

/// SHA-256 of a grant's bytes (for logs and run reports).
pub fn grant_digest(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&SHA256, bytes).as_ref());
    out
}

/// A `CryptoRng` backed by aws-lc's system generator.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRng;

impl RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        // aws-lc's RAND_bytes fails only when the OS entropy source is
        // unusable, which aws-lc itself treats as fatal; there is no way to
        // report an error through RngCore.
        #[allow(clippy::expect_used)]
        aws_lc_rs::rand::fill(dst).expect("system random generator failed");
    }
}
impl CryptoRng for SystemRng {}
