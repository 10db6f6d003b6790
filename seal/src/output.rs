//! Outputs: a run's output file sealed to one or more recipients. Outputs
//! reuse both formats: the file is a sealed component under a fresh content
//! key, and that key is wrapped to each recipient as a grant whose context is
//! `{order digest, "output:<name>", SHA-256 of the output plaintext}`.

use std::io::{Read, Write};

use hpke::rand_core::{CryptoRng, RngCore};

use crate::digest::DigestSet;
use crate::grant::{seal_grant, GrantContext, GrantError, RecipientPublicKey};
use crate::stream::{seal_stream, ContentKey, SealError, SealSummary, SegmentSize};

/// Prefix of an output's component name in its grants.
pub const OUTPUT_NAME_PREFIX: &str = "output:";

/// The grant context of output `name` of an order.
pub fn output_context(
    order_digest: [u8; 32],
    name: &str,
    sha256: [u8; 32],
) -> Result<GrantContext, GrantError> {
    let component_name = format!("{OUTPUT_NAME_PREFIX}{name}");
    if component_name.len() > crate::grant::MAX_NAME_LEN || name.is_empty() {
        return Err(GrantError::BadComponentName);
    }
    Ok(GrantContext {
        order_digest,
        component_name,
        component_sha256: sha256,
    })
}

/// A sealed output: the summary of the sealed file and one grant per recipient.
#[derive(Debug)]
pub struct SealedOutput {
    /// Digests and header of the sealed file.
    pub summary: SealSummary,
    /// The context every grant is bound to.
    pub context: GrantContext,
    /// `(recipient, grant bytes)` in the order the recipients were given.
    pub grants: Vec<(RecipientPublicKey, Vec<u8>)>,
}

/// Seal `plaintext_len` bytes from `r` to `w` under a fresh content key and
/// wrap that key to every recipient. The key itself is dropped (zeroized).
#[allow(clippy::too_many_arguments)]
pub fn seal_to_recipients<R: Read, W: Write, G: CryptoRng + RngCore>(
    recipients: &[RecipientPublicKey],
    order_digest: [u8; 32],
    output_name: &str,
    plaintext_len: u64,
    r: &mut R,
    w: &mut W,
    rng: &mut G,
) -> Result<SealedOutput, SealError> {
    if recipients.is_empty() {
        return Err(SealError::Grant(GrantError::Malformed("no recipients")));
    }
    // Validate the name before writing anything.
    output_context(order_digest, output_name, [0; 32])?;
    let key = ContentKey::generate()?;
    let mut salt = [0u8; 32];
    rng.fill_bytes(&mut salt);
    let summary = seal_stream(
        &key,
        SegmentSize::DEFAULT,
        plaintext_len,
        r,
        w,
        salt,
        DigestSet {
            sha256: true,
            sha384: false,
            tree_sha256: true,
        },
        2,
    )?;
    let sha = summary
        .digests
        .sha256
        .ok_or(SealError::Internal("sha256 not computed"))?;
    let context = output_context(order_digest, output_name, sha)?;
    let mut grants = Vec::with_capacity(recipients.len());
    for rcp in recipients {
        grants.push((rcp.clone(), seal_grant(rcp, &key, &context, rng)?));
    }
    Ok(SealedOutput {
        summary,
        context,
        grants,
    })
}
