//! Sealed components, key grants and component digests. Pure: no files,
//! devices, network or clock; only generic `Read`/`Write` streams.
//!
//! - [`stream`]: the sealed component format (AES-256-GCM in the STREAM
//!   construction) with one-pass, pipelined open + hash.
//! - [`digest`]: flat SHA-256/SHA-384 and the parallel tree digest.
//! - [`grant`]: content keys wrapped with HPKE (RFC 9180) to a recipient,
//!   bound to an order and a component.
//! - [`output`]: outputs sealed to recipients (both formats reused).
//!
//! The format is specified in `docs/formats/sealed.md`.

pub mod digest;
pub mod grant;
pub mod output;
pub mod stream;

pub use digest::{sha256, tree_sha256, DigestSet, Digests, TREE_LEAF_SIZE};
pub use grant::{
    grant_digest, open_grant, parse_grant, seal_grant, GrantContext, GrantError, ParsedGrant,
    RecipientPublicKey, RecipientSecretKey, SystemRng,
};
pub use output::{output_context, seal_to_recipients, SealedOutput};
pub use stream::{
    open_stream, random_salt, read_header, seal_stream, ContentKey, OpenOptions, OpenSummary,
    SealError, SealSummary, SealedHeader, SegmentSize,
};
