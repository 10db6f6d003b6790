//! Sealed components: a fixed header followed by AES-256-GCM segments in the
//! STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015).
//!
//! ```text
//! offset len  field
//!  0      8   magic "TLSEALED"
//!  8      1   version = 1
//!  9      1   algorithm = 1 (AES-256-GCM STREAM, HKDF-SHA256)
//! 10      2   reserved, zero
//! 12      4   segment size, u32 BE (power of two, 4 KiB ..= 16 MiB)
//! 16      8   plaintext length, u64 BE
//! 24     32   salt (random)
//! 56          segments
//! ```
//!
//! `okm = HKDF-SHA256(ikm = content key, salt = header salt,
//! info = "trusted-loader/sealed/v1" || header[0..56], L = 39)`; the file key
//! is `okm[0..32]`, the nonce prefix `okm[32..39]`. Segment `i` (0-based) is
//! sealed with nonce `prefix(7) || u32_be(i) || last(1)` where `last` is 1 for
//! the final segment and 0 otherwise, and with the 56 header bytes as AAD.
//! The number of segments is `max(1, ceil(len / segment size))`; every
//! segment holds `segment size` plaintext bytes except the last, which holds
//! the rest (zero bytes only for empty plaintext). Each ciphertext segment is
//! its plaintext followed by a 16-byte tag, so the file length is fully
//! determined by the header: truncation, extension, reordering and header
//! edits are all detected.
//!
//! **Discard on error.** [`open_stream`] writes the plaintext of each segment
//! as soon as it is authenticated. If it returns an error, the writer may
//! already hold authenticated plaintext of a prefix of the component (for
//! example when the file turns out to be truncated at a segment boundary).
//! Callers MUST discard everything written when an error is returned (the
//! loader writes into tmpfs and wipes it; `tl open` writes to a temporary
//! file and deletes it). Digests in [`OpenSummary`] must still be compared
//! with the expected ones before the plaintext is used.

use std::io::{ErrorKind, Read, Write};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;
use base64::Engine as _;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::digest::{
    leaf_hash, merkle_root, tree_root_with_length, DigestSet, Digests, FlatHasher, TREE_LEAF_SIZE,
};

/// Magic bytes at the start of every sealed component.
pub const MAGIC: &[u8; 8] = b"TLSEALED";
/// The only format version.
pub const VERSION: u8 = 1;
/// AES-256-GCM STREAM with HKDF-SHA256 key derivation.
pub const ALG_AES256GCM_STREAM_HKDF_SHA256: u8 = 1;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 56;
/// AES-GCM tag length appended to each segment.
pub const TAG_LEN: usize = 16;
/// HKDF info prefix for the file key.
pub const KDF_INFO: &[u8] = b"trusted-loader/sealed/v1";

const MAX_SEGMENTS: u64 = 1 << 32;
const MAX_BUFFER_BYTES: usize = 48 << 20;

/// Errors of the sealed-component format. Each has a stable [`code`](Self::code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Not a sealed component, or an invalid header field.
    #[error("malformed sealed header: {0}")]
    MalformedHeader(&'static str),
    /// A version this build does not know.
    #[error("unsupported sealed format version {0}")]
    UnsupportedVersion(u8),
    /// An algorithm id this build does not know.
    #[error("unsupported sealed algorithm id {0}")]
    UnsupportedAlgorithm(u8),
    /// A segment failed authentication (wrong key, edited, reordered or header edited).
    #[error("segment {segment} failed authentication (wrong key or tampered data)")]
    AuthFailed {
        /// 0-based segment index.
        segment: u64,
    },
    /// The input ended before the last segment.
    #[error("sealed data is truncated (ended in segment {segment})")]
    Truncated {
        /// 0-based segment index where the input ended.
        segment: u64,
    },
    /// Bytes follow the last segment.
    #[error("data follows the last segment")]
    TrailingData,
    /// The plaintext reader gave a different number of bytes than announced.
    #[error("plaintext length differs from the announced {expected} bytes")]
    InputLengthMismatch {
        /// The announced length.
        expected: u64,
    },
    /// Invalid segment size.
    #[error("invalid segment size {0} (power of two from 4 KiB to 16 MiB)")]
    BadSegmentSize(u64),
    /// The plaintext needs more than 2^32 segments.
    #[error("plaintext too large for this segment size")]
    TooLarge,
    /// A content key text that is not `ck:<base64 of 32 bytes>`.
    #[error("malformed content key (expected ck:<base64 of 32 bytes>)")]
    MalformedKey,
    /// Reading the input failed.
    #[error("read failed: {0}")]
    Read(std::io::Error),
    /// Writing the output failed.
    #[error("write failed: {0}")]
    Write(std::io::Error),
    /// The system random generator failed.
    #[error("random generator failed")]
    Rng,
    /// Key wrapping for an output recipient failed.
    #[error(transparent)]
    Grant(#[from] crate::grant::GrantError),
    /// A broken internal invariant (a hashing thread died).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl SealError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedHeader(_) => "SEALED_MALFORMED_HEADER",
            Self::UnsupportedVersion(_) => "SEALED_UNSUPPORTED_VERSION",
            Self::UnsupportedAlgorithm(_) => "SEALED_UNSUPPORTED_ALGORITHM",
            Self::AuthFailed { .. } => "SEALED_AUTH_FAILED",
            Self::Truncated { .. } => "SEALED_TRUNCATED",
            Self::TrailingData => "SEALED_TRAILING_DATA",
            Self::InputLengthMismatch { .. } => "SEALED_INPUT_LENGTH_MISMATCH",
            Self::BadSegmentSize(_) => "SEALED_BAD_SEGMENT_SIZE",
            Self::TooLarge => "SEALED_TOO_LARGE",
            Self::MalformedKey => "SEALED_MALFORMED_KEY",
            Self::Read(_) => "SEALED_READ_FAILED",
            Self::Write(_) => "SEALED_WRITE_FAILED",
            Self::Rng => "SEALED_RNG_FAILED",
            Self::Grant(g) => g.code(),
            Self::Internal(_) => "SEALED_INTERNAL",
        }
    }
}

/// A 32-byte content key. Zeroized on drop; never printed by `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct ContentKey([u8; 32]);

impl std::fmt::Debug for ContentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentKey(..)")
    }
}

impl ContentKey {
    /// Prefix of the text form.
    pub const TEXT_PREFIX: &'static str = "ck:";

    /// A fresh random key from aws-lc's generator.
    pub fn generate() -> Result<Self, SealError> {
        let mut k = [0u8; 32];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| SealError::Rng)?;
        Ok(Self(k))
    }
    /// Wrap raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Text form `ck:<base64 standard, padded>` (the key handle file content).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut s = String::from(Self::TEXT_PREFIX);
        base64::engine::general_purpose::STANDARD.encode_string(self.0, &mut s);
        Zeroizing::new(s)
    }
    /// Parse the text form; surrounding whitespace is ignored.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let b64 = text
            .trim()
            .strip_prefix(Self::TEXT_PREFIX)
            .ok_or(SealError::MalformedKey)?;
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| SealError::MalformedKey)?,
        );
        let arr: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| SealError::MalformedKey)?;
        Ok(Self(arr))
    }
}

/// A valid segment size: a power of two from 4 KiB to 16 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSize(u32);

impl SegmentSize {
    /// 4 KiB.
    pub const MIN: u32 = 4 << 10;
    /// 16 MiB.
    pub const MAX: u32 = 16 << 20;
    /// The default, 1 MiB.
    pub const DEFAULT: Self = Self(1 << 20);

    /// Check a size.
    pub fn new(bytes: u32) -> Result<Self, SealError> {
        if bytes.is_power_of_two() && (Self::MIN..=Self::MAX).contains(&bytes) {
            Ok(Self(bytes))
        } else {
            Err(SealError::BadSegmentSize(bytes.into()))
        }
    }
    /// The size in bytes.
    pub fn get(self) -> u32 {
        self.0
    }
    fn usize(self) -> usize {
        self.0 as usize
    }
}

impl Default for SegmentSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::str::FromStr for SegmentSize {
    type Err = SealError;
    /// Accepts `65536`, `64K`, `64KiB`, `1M`, `1MiB` (binary units).
    fn from_str(s: &str) -> Result<Self, SealError> {
        let s = s.trim();
        let (num, mul) = if let Some(n) = s.strip_suffix("KiB").or_else(|| s.strip_suffix('K')) {
            (n, 1u64 << 10)
        } else if let Some(n) = s.strip_suffix("MiB").or_else(|| s.strip_suffix('M')) {
            (n, 1u64 << 20)
        } else {
            (s, 1)
        };
        let n: u64 = num.parse().map_err(|_| SealError::BadSegmentSize(0))?;
        let bytes = n
            .checked_mul(mul)
            .ok_or(SealError::BadSegmentSize(u64::MAX))?;
        let b32 = u32::try_from(bytes).map_err(|_| SealError::BadSegmentSize(bytes))?;
        Self::new(b32)
    }
}

/// The parsed fixed header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedHeader {
    /// Segment size.
    pub segment_size: SegmentSize,
    /// Exact plaintext length.
    pub plaintext_len: u64,
    /// Random salt for the key derivation.
    pub salt: [u8; 32],
}

impl SealedHeader {
    /// Serialize to the 56 header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8] = VERSION;
        h[9] = ALG_AES256GCM_STREAM_HKDF_SHA256;
        h[12..16].copy_from_slice(&self.segment_size.0.to_be_bytes());
        h[16..24].copy_from_slice(&self.plaintext_len.to_be_bytes());
        h[24..56].copy_from_slice(&self.salt);
        h
    }

    /// Parse and check the 56 header bytes.
    pub fn parse(h: &[u8; HEADER_LEN]) -> Result<Self, SealError> {
        let (magic, rest) = h.split_at(8);
        if magic != MAGIC {
            return Err(SealError::MalformedHeader(
                "bad magic (not a sealed component)",
            ));
        }
        let (ver, rest) = rest.split_at(1);
        if ver != [VERSION] {
            return Err(SealError::UnsupportedVersion(
                ver.first().copied().unwrap_or(0),
            ));
        }
        let (alg, rest) = rest.split_at(1);
        if alg != [ALG_AES256GCM_STREAM_HKDF_SHA256] {
            return Err(SealError::UnsupportedAlgorithm(
                alg.first().copied().unwrap_or(0),
            ));
        }
        let (reserved, rest) = rest.split_at(2);
        if reserved != [0, 0] {
            return Err(SealError::MalformedHeader("reserved bytes are not zero"));
        }
        let (seg, rest) = rest.split_at(4);
        let (len, salt) = rest.split_at(8);
        let seg = u32::from_be_bytes(
            seg.try_into()
                .map_err(|_| SealError::MalformedHeader("length"))?,
        );
        let segment_size = SegmentSize::new(seg)
            .map_err(|_| SealError::MalformedHeader("invalid segment size"))?;
        let plaintext_len = u64::from_be_bytes(
            len.try_into()
                .map_err(|_| SealError::MalformedHeader("length"))?,
        );
        let salt: [u8; 32] = salt
            .try_into()
            .map_err(|_| SealError::MalformedHeader("length"))?;
        let hdr = Self {
            segment_size,
            plaintext_len,
            salt,
        };
        if hdr.segment_count() > MAX_SEGMENTS {
            return Err(SealError::MalformedHeader("too many segments"));
        }
        Ok(hdr)
    }

    /// Number of segments: `max(1, ceil(len / segment size))`.
    pub fn segment_count(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.segment_size.0))
            .max(1)
    }

    /// Total length of the sealed component in bytes.
    pub fn sealed_len(&self) -> u64 {
        (HEADER_LEN as u64)
            .saturating_add(self.plaintext_len)
            .saturating_add(self.segment_count().saturating_mul(TAG_LEN as u64))
    }
}

struct OkmLen(usize);
impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// File key and nonce prefix: `okm[0..32]` and `okm[32..39]`.
pub(crate) fn derive_file_key(
    key: &ContentKey,
    header: &[u8; HEADER_LEN],
    salt: &[u8; 32],
) -> Result<(Zeroizing<[u8; 32]>, [u8; 7]), SealError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(key.as_bytes());
    let info: [&[u8]; 2] = [KDF_INFO, header];
    let okm = prk
        .expand(&info, OkmLen(39))
        .map_err(|_| SealError::Internal("hkdf expand"))?;
    let mut out = Zeroizing::new([0u8; 39]);
    okm.fill(out.as_mut())
        .map_err(|_| SealError::Internal("hkdf fill"))?;
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&out[..32]);
    let mut p = [0u8; 7];
    p.copy_from_slice(&out[32..39]);
    Ok((k, p))
}

fn aead_key(
    key: &ContentKey,
    header: &[u8; HEADER_LEN],
    salt: &[u8; 32],
) -> Result<(LessSafeKey, [u8; 7]), SealError> {
    let (k, prefix) = derive_file_key(key, header, salt)?;
    let unbound =
        UnboundKey::new(&AES_256_GCM, k.as_ref()).map_err(|_| SealError::Internal("aead key"))?;
    Ok((LessSafeKey::new(unbound), prefix))
}

fn nonce(prefix: &[u8; 7], index: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    // index < 2^32 is guaranteed by the MAX_SEGMENTS check on the header.
    n[7..11].copy_from_slice(&(index as u32).to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// Read until `buf` is full or EOF; returns the number of bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, SealError> {
    let mut n = 0;
    while n < buf.len() {
        let rest = buf.get_mut(n..).ok_or(SealError::Internal("read offset"))?;
        match r.read(rest) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(SealError::Read(e)),
        }
    }
    Ok(n)
}

/// Options for [`open_stream`].
#[derive(Debug, Clone, Copy)]
pub struct OpenOptions {
    /// Which digests to compute.
    pub digests: DigestSet,
    /// Threads hashing tree leaves (ignored for flat digests, which use one
    /// thread). Pass the number of cores; at least 1 is used.
    pub hash_threads: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            digests: DigestSet::SHA256,
            hash_threads: 2,
        }
    }
}

/// Result of a successful [`open_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSummary {
    /// Plaintext bytes written.
    pub plaintext_len: u64,
    /// Digests of the plaintext, as selected in [`OpenOptions`].
    pub digests: Digests,
}

/// Result of a successful [`seal_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealSummary {
    /// The header written.
    pub header: SealedHeader,
    /// Plaintext length.
    pub plaintext_len: u64,
    /// Total bytes written.
    pub sealed_len: u64,
    /// Digests of the plaintext.
    pub digests: Digests,
}

/// A fresh random 32-byte salt from aws-lc's generator.
pub fn random_salt() -> Result<[u8; 32], SealError> {
    let mut s = [0u8; 32];
    aws_lc_rs::rand::fill(&mut s).map_err(|_| SealError::Rng)?;
    Ok(s)
}

/// One batch of plaintext, shared read-only by the consumers. Dropping the
/// last reference returns the buffer to the pool, whichever thread (or
/// dropped channel) held it, so buffers are never lost on error paths.
struct Batch {
    buf: Vec<u8>,
    len: usize,
    first_leaf: usize,
    free: mpsc::Sender<Vec<u8>>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        // The receiver is gone only when the producer has finished.
        let _ = self.free.send(std::mem::take(&mut self.buf));
    }
}

/// Run `produce` on the calling thread while digest threads hash each batch
/// it produces. `produce` fills the buffer (of `batch_cap` bytes) with the
/// next batch of plaintext and returns its length, or `None` at the end.
/// Every batch but the last is a whole number of tree leaves.
fn pipeline<F, S>(
    set: DigestSet,
    threads: usize,
    batch_cap: usize,
    mut produce: F,
    sink: Option<&mut S>,
) -> Result<(u64, Digests), SealError>
where
    F: FnMut(&mut [u8]) -> Result<Option<usize>, SealError>,
    S: Write + ?Sized,
{
    let tree_workers = if set.tree_sha256 { threads.max(1) } else { 0 };
    let consumers = tree_workers + usize::from(set.flat()) + usize::from(sink.is_some());
    let mut sink = sink;
    let n_bufs = (consumers + 3)
        .min(MAX_BUFFER_BYTES / batch_cap.max(1))
        .max(2);

    std::thread::scope(|s| {
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        let mut flat_tx = None;
        let mut flat_handle = None;
        if set.flat() {
            let (tx, rx) = mpsc::sync_channel::<Arc<Batch>>(n_bufs);
            flat_tx = Some(tx);
            flat_handle = Some(s.spawn(move || {
                let mut h = FlatHasher::new(set);
                for b in rx {
                    h.update(b.buf.get(..b.len).unwrap_or_default());
                    drop(b);
                }
                h.finish()
            }));
        }
        let (res_tx, res_rx) = mpsc::channel::<(usize, [u8; 32])>();
        let mut tree_tx = None;
        let mut tree_handles = Vec::new();
        if tree_workers > 0 {
            let (tx, rx) = mpsc::sync_channel::<Arc<Batch>>(n_bufs);
            let rx = Arc::new(Mutex::new(rx));
            tree_tx = Some(tx);
            for _ in 0..tree_workers {
                let rx = Arc::clone(&rx);
                let res = res_tx.clone();
                tree_handles.push(s.spawn(move || loop {
                    let next = match rx.lock() {
                        Ok(guard) => guard.recv(),
                        Err(_) => return,
                    };
                    let Ok(b) = next else { return };
                    let data = b.buf.get(..b.len).unwrap_or_default();
                    for (i, leaf) in data.chunks(TREE_LEAF_SIZE).enumerate() {
                        let _ = res.send((b.first_leaf + i, leaf_hash(leaf)));
                    }
                    drop(b);
                }));
            }
        }
        drop(res_tx);
        // The sink is written on this thread, right after the batch is handed
        // to the hashers: on two cores that keeps hashing on one core and
        // read + decrypt + write on the other, instead of three threads
        // time-sliced over two cores.
        let mut allocated = 0usize;
        let mut total: u64 = 0;
        let mut leaves = 0usize;
        loop {
            let mut buf = match free_rx.try_recv() {
                Ok(b) => b,
                Err(_) if allocated < n_bufs => {
                    allocated += 1;
                    vec![0u8; batch_cap]
                }
                // free_tx lives until the end of this loop, and every batch
                // returns its buffer when dropped.
                Err(_) => free_rx
                    .recv()
                    .map_err(|_| SealError::Internal("buffer pool closed"))?,
            };
            let Some(len) = produce(&mut buf)? else { break };
            total += len as u64;
            let batch = Arc::new(Batch {
                buf,
                len,
                first_leaf: leaves,
                free: free_tx.clone(),
            });
            leaves += len.div_ceil(TREE_LEAF_SIZE);
            // The producer keeps no reference: the last consumer to finish
            // with a batch returns its buffer to the pool.
            for t in [&tree_tx, &flat_tx].into_iter().flatten() {
                t.send(Arc::clone(&batch))
                    .map_err(|_| SealError::Internal("pipeline thread stopped"))?;
            }
            if let Some(w) = sink.as_mut() {
                w.write_all(batch.buf.get(..batch.len).unwrap_or_default())
                    .map_err(SealError::Write)?;
            }
            drop(batch);
        }
        if let Some(w) = sink.as_mut() {
            w.flush().map_err(SealError::Write)?;
        }
        drop(flat_tx);
        drop(tree_tx);
        let (sha256, sha384) = match flat_handle {
            Some(h) => h
                .join()
                .map_err(|_| SealError::Internal("hash thread panicked"))?,
            None => (None, None),
        };
        for h in tree_handles {
            h.join()
                .map_err(|_| SealError::Internal("tree thread panicked"))?;
        }
        let tree_sha256 = if set.tree_sha256 {
            let mut hashes = vec![[0u8; 32]; leaves];
            let mut seen = 0usize;
            for (i, h) in res_rx {
                *hashes.get_mut(i).ok_or(SealError::Internal("leaf index"))? = h;
                seen += 1;
            }
            if seen != leaves {
                return Err(SealError::Internal("missing leaf hashes"));
            }
            Some(tree_root_with_length(total, &merkle_root(&hashes)))
        } else {
            None
        };
        Ok((
            total,
            Digests {
                sha256,
                sha384,
                tree_sha256,
            },
        ))
    })
}

/// Plaintext bytes a batch aims for: writes of 4 MiB cover whole 2 MiB
/// pages of a huge-page tmpfs (a partial write makes the kernel zero the
/// rest of a fresh page first), and stay well inside the buffer budget.
const BATCH_TARGET: usize = 4 << 20;

/// Plaintext bytes per batch: a whole number of segments and of tree leaves
/// (segment sizes and the leaf size are powers of two), at least
/// [`BATCH_TARGET`], and no larger than the plaintext needs (a small
/// component gets small buffers).
fn batch_plaintext(seg: SegmentSize, plaintext_len: u64) -> usize {
    let seg = seg.usize();
    let unit = seg.max(TREE_LEAF_SIZE);
    let want = BATCH_TARGET.max(unit);
    // Round the plaintext length up to a whole unit; at least one unit.
    let needed = usize::try_from(plaintext_len)
        .unwrap_or(usize::MAX)
        .div_ceil(unit)
        .max(1)
        .saturating_mul(unit);
    want.min(needed)
}

/// Encrypt exactly `plaintext_len` bytes from `r` into a sealed component on
/// `w`, computing the `digests` of the plaintext on the way. `salt` must be
/// fresh and random ([`random_salt`]); it is a parameter so tests can fix it.
#[allow(clippy::too_many_arguments)]
pub fn seal_stream<R: Read, W: Write>(
    key: &ContentKey,
    segment_size: SegmentSize,
    plaintext_len: u64,
    r: &mut R,
    w: &mut W,
    salt: [u8; 32],
    digests: DigestSet,
    hash_threads: usize,
) -> Result<SealSummary, SealError> {
    let header = SealedHeader {
        segment_size,
        plaintext_len,
        salt,
    };
    let n_segs = header.segment_count();
    if n_segs > MAX_SEGMENTS {
        return Err(SealError::TooLarge);
    }
    let hbytes = header.to_bytes();
    let (aead, prefix) = aead_key(key, &hbytes, &salt)?;
    w.write_all(&hbytes).map_err(SealError::Write)?;

    let seg = segment_size.usize();
    let batch_pt = batch_plaintext(segment_size, plaintext_len);
    let mut scratch = vec![0u8; seg];
    let mut next_seg: u64 = 0;
    let mut consumed: u64 = 0;

    let produce = |buf: &mut [u8]| -> Result<Option<usize>, SealError> {
        if next_seg >= n_segs {
            return Ok(None);
        }
        let remaining = plaintext_len - consumed;
        let want =
            usize::try_from(remaining.min(batch_pt as u64)).map_err(|_| SealError::TooLarge)?;
        let dst = buf
            .get_mut(..want)
            .ok_or(SealError::Internal("batch buffer"))?;
        if read_full(r, dst)? != want {
            return Err(SealError::InputLengthMismatch {
                expected: plaintext_len,
            });
        }
        consumed += want as u64;
        let mut off = 0usize;
        loop {
            let last = next_seg == n_segs - 1;
            let pt_len = if last {
                want - off
            } else {
                seg.min(want - off)
            };
            let out = scratch
                .get_mut(..pt_len)
                .ok_or(SealError::Internal("segment buffer"))?;
            out.copy_from_slice(
                dst.get(off..off + pt_len)
                    .ok_or(SealError::Internal("segment"))?,
            );
            let tag = aead
                .seal_in_place_separate_tag(nonce(&prefix, next_seg, last), Aad::from(&hbytes), out)
                .map_err(|_| SealError::Internal("seal"))?;
            w.write_all(out).map_err(SealError::Write)?;
            w.write_all(tag.as_ref()).map_err(SealError::Write)?;
            off += pt_len;
            next_seg += 1;
            if last || off >= want {
                break;
            }
        }
        if next_seg == n_segs {
            let mut probe = [0u8; 1];
            if read_full(r, &mut probe)? != 0 {
                return Err(SealError::InputLengthMismatch {
                    expected: plaintext_len,
                });
            }
        }
        Ok(Some(want))
    };
    let (total, d) = pipeline(
        digests,
        hash_threads,
        batch_pt,
        produce,
        None::<&mut std::io::Sink>,
    )?;
    w.flush().map_err(SealError::Write)?;
    Ok(SealSummary {
        sealed_len: header.sealed_len(),
        header,
        plaintext_len: total,
        digests: d,
    })
}

/// Read only the header of a sealed component.
pub fn read_header<R: Read>(r: &mut R) -> Result<(SealedHeader, [u8; HEADER_LEN]), SealError> {
    let mut h = [0u8; HEADER_LEN];
    let n = read_full(r, &mut h)?;
    if n < 8 || h.get(..8) != Some(MAGIC.as_slice()) {
        return Err(SealError::MalformedHeader(
            "bad magic (not a sealed component)",
        ));
    }
    if n != HEADER_LEN {
        return Err(SealError::Truncated { segment: 0 });
    }
    Ok((SealedHeader::parse(&h)?, h))
}

/// Decrypt a sealed component from `r` to `w`, hashing the plaintext in the
/// same pass. Reading and decryption run on the calling thread, writing on
/// one thread, flat hashing on another and tree leaves on `hash_threads`
/// more, all at once; at most a few batches of `max(segment size, 1 MiB)`
/// are in memory.
///
/// **On error, discard everything written to `w`**: authenticated plaintext
/// of earlier segments may have been written before the error (for example a
/// truncation is only seen at the end). See the module documentation.
pub fn open_stream<R: Read, W: Write>(
    key: &ContentKey,
    r: &mut R,
    w: &mut W,
    opts: OpenOptions,
) -> Result<OpenSummary, SealError> {
    let (header, hbytes) = read_header(r)?;
    let (aead, prefix) = aead_key(key, &hbytes, &header.salt)?;
    let n_segs = header.segment_count();
    let len = header.plaintext_len;
    let seg = header.segment_size.usize();
    let batch_pt = batch_plaintext(header.segment_size, len);
    let mut next_seg: u64 = 0;

    let produce = |buf: &mut [u8]| -> Result<Option<usize>, SealError> {
        if next_seg >= n_segs {
            return Ok(None);
        }
        let mut off = 0usize;
        while off < batch_pt && next_seg < n_segs {
            let last = next_seg == n_segs - 1;
            let pt_len = if last {
                // (n_segs - 1) * seg < len, so this fits in one segment.
                usize::try_from(len - (n_segs - 1) * seg as u64).map_err(|_| SealError::TooLarge)?
            } else {
                seg
            };
            let ct = buf
                .get_mut(off..off + pt_len + TAG_LEN)
                .ok_or(SealError::Internal("batch buffer"))?;
            if read_full(r, ct)? != ct.len() {
                return Err(SealError::Truncated { segment: next_seg });
            }
            aead.open_in_place(nonce(&prefix, next_seg, last), Aad::from(&hbytes), ct)
                .map_err(|_| SealError::AuthFailed { segment: next_seg })?;
            off += pt_len;
            next_seg += 1;
        }
        if next_seg == n_segs {
            let mut probe = [0u8; 1];
            if read_full(r, &mut probe)? != 0 {
                return Err(SealError::TrailingData);
            }
        }

        Ok(Some(off))
    };
    let (total, digests) = pipeline(
        opts.digests,
        opts.hash_threads,
        batch_pt + TAG_LEN,
        produce,
        Some(w),
    )?;
    Ok(OpenSummary {
        plaintext_len: total,
        digests,
    })
}
