//! Plaintext digests of a component: flat SHA-256, flat SHA-384 and the
//! parallel tree digest `tree_sha256`.
//!
//! # Tree digest
//!
//! The plaintext is cut into leaves of [`TREE_LEAF_SIZE`] bytes (1 MiB); the
//! last leaf may be shorter; empty plaintext has no leaves. The Merkle tree
//! hash `MTH` follows RFC 6962 section 2.1:
//!
//! ```text
//! MTH({})      = SHA-256()                       (empty string)
//! MTH({d0})    = SHA-256(0x00 || d0)
//! MTH(D[n])    = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
//!                where k is the largest power of two smaller than n
//! tree_sha256  = SHA-256(0x02 || u64_be(plaintext length) || MTH(leaves))
//! ```
//!
//! Leaves are independent, so a large component is hashed on every core.

use aws_lc_rs::digest::{self, Context, SHA256, SHA384};

/// Size of one leaf of the tree digest: 1 MiB.
pub const TREE_LEAF_SIZE: usize = 1 << 20;

/// Which digests to compute while opening or sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestSet {
    /// Flat SHA-256 of the plaintext (sequential: one core).
    pub sha256: bool,
    /// Flat SHA-384 of the plaintext (sequential: one core).
    pub sha384: bool,
    /// Tree digest (parallel).
    pub tree_sha256: bool,
}

impl DigestSet {
    /// Flat SHA-256 only.
    pub const SHA256: Self = Self {
        sha256: true,
        sha384: false,
        tree_sha256: false,
    };
    /// Tree digest only: the fastest on many cores.
    pub const TREE: Self = Self {
        sha256: false,
        sha384: false,
        tree_sha256: true,
    };
    /// Everything (what `tl seal` prints).
    pub const ALL: Self = Self {
        sha256: true,
        sha384: true,
        tree_sha256: true,
    };

    pub(crate) fn flat(&self) -> bool {
        self.sha256 || self.sha384
    }
}

impl Default for DigestSet {
    fn default() -> Self {
        Self::SHA256
    }
}

/// Digests of a plaintext. A field is `Some` exactly when the corresponding
/// [`DigestSet`] flag was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Flat SHA-256.
    pub sha256: Option<[u8; 32]>,
    /// Flat SHA-384.
    pub sha384: Option<[u8; 48]>,
    /// Tree digest (see the module documentation).
    pub tree_sha256: Option<[u8; 32]>,
}

/// Sequential hasher for the flat digests.
pub(crate) struct FlatHasher {
    sha256: Option<Context>,
    sha384: Option<Context>,
}

impl FlatHasher {
    pub(crate) fn new(set: DigestSet) -> Self {
        Self {
            sha256: set.sha256.then(|| Context::new(&SHA256)),
            sha384: set.sha384.then(|| Context::new(&SHA384)),
        }
    }
    pub(crate) fn update(&mut self, data: &[u8]) {
        if let Some(c) = &mut self.sha256 {
            c.update(data);
        }
        if let Some(c) = &mut self.sha384 {
            c.update(data);
        }
    }
    pub(crate) fn finish(self) -> (Option<[u8; 32]>, Option<[u8; 48]>) {
        let a = self.sha256.map(|c| to_array::<32>(c.finish().as_ref()));
        let b = self.sha384.map(|c| to_array::<48>(c.finish().as_ref()));
        (a, b)
    }
}

fn to_array<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    // Digest outputs have the fixed length of their algorithm (N here).
    out.copy_from_slice(s);
    out
}

/// Hash of one leaf: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(&[0x00]);
    c.update(leaf);
    to_array(c.finish().as_ref())
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(&[0x01]);
    c.update(left);
    c.update(right);
    to_array(c.finish().as_ref())
}

/// RFC 6962 Merkle tree hash over precomputed leaf hashes.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves {
        [] => to_array(digest::digest(&SHA256, b"").as_ref()),
        [one] => *one,
        _ => {
            let n = leaves.len();
            // Largest power of two strictly smaller than n (n >= 2).
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (l, r) = leaves.split_at(k);
            node_hash(&merkle_root(l), &merkle_root(r))
        }
    }
}

/// `SHA-256(0x02 || u64_be(len) || root)`.
pub fn tree_root_with_length(len: u64, root: &[u8; 32]) -> [u8; 32] {
    let mut c = Context::new(&SHA256);
    c.update(&[0x02]);
    c.update(&len.to_be_bytes());
    c.update(root);
    to_array(c.finish().as_ref())
}

/// Tree digest of an in-memory plaintext, leaves hashed in parallel.
pub fn tree_sha256(data: &[u8]) -> [u8; 32] {
    use rayon::prelude::*;
    let leaves: Vec<[u8; 32]> = data.par_chunks(TREE_LEAF_SIZE).map(leaf_hash).collect();
    tree_root_with_length(data.len() as u64, &merkle_root(&leaves))
}

/// Flat SHA-256 of an in-memory buffer.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    to_array(digest::digest(&SHA256, data).as_ref())
}

/// All digests of an in-memory plaintext (sequential reference).
pub fn digests_of(data: &[u8], set: DigestSet) -> Digests {
    let mut f = FlatHasher::new(set);
    f.update(data);
    let (sha256, sha384) = f.finish();
    Digests {
        sha256,
        sha384,
        tree_sha256: set.tree_sha256.then(|| tree_sha256(data)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_rfc6962() {
        // With 3 leaves the split is 2 + 1; with 5 it is 4 + 1.
        let h: Vec<[u8; 32]> = (0u8..5).map(|i| leaf_hash(&[i])).collect();
        assert_eq!(
            merkle_root(&h[..3]),
            node_hash(&node_hash(&h[0], &h[1]), &h[2])
        );
        let four = node_hash(&node_hash(&h[0], &h[1]), &node_hash(&h[2], &h[3]));
        assert_eq!(merkle_root(&h), node_hash(&four, &h[4]));
    }

    #[test]
    fn parallel_matches_sequential_leaves() {
        let data: Vec<u8> = (0..(3 * TREE_LEAF_SIZE + 5))
            .map(|i| (i % 251) as u8)
            .collect();
        let leaves: Vec<[u8; 32]> = data.chunks(TREE_LEAF_SIZE).map(leaf_hash).collect();
        assert_eq!(leaves.len(), 4);
        let want = tree_root_with_length(data.len() as u64, &merkle_root(&leaves));
        assert_eq!(tree_sha256(&data), want);
    }
}
