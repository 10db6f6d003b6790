//! The transparency log's Merkle tree (RFC 6962 / RFC 9162, SHA-256) and its
//! signed tree head. Pure: storage lives in [`crate::store`].
//!
//! * leaf hash `SHA-256(0x00 || data)`, node hash `SHA-256(0x01 || left || right)`;
//!   the root of the empty tree is `SHA-256("")`.
//! * inclusion proofs are RFC 9162 §2.1.3 audit paths, verified with the
//!   algorithm of §2.1.3.2 ([`verify_inclusion`]).
//! * the signed tree head (STH) is an ECDSA P-256 / SHA-256 (ASN.1 DER)
//!   signature by the CA key over
//!   `"tl-log/v1" || tree_size (u64 BE) || root (32 bytes) || timestamp (u64 BE, unix ms)`.

use aws_lc_rs::digest::{digest, Context, SHA256};
use aws_lc_rs::signature::{self, EcdsaKeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// A SHA-256 value.
pub type Hash = [u8; 32];

/// Domain prefix of the signed tree head message.
pub const STH_DOMAIN: &[u8] = b"tl-log/v1";

/// Longest proof accepted (a tree of 2^64 leaves needs 64 hashes).
pub const MAX_PROOF_LEN: usize = 64;

/// Log errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("leaf index {index} is not below tree size {tree_size}")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("inclusion proof does not lead to the root")]
    ProofMismatch,
    #[error("inclusion proof has the wrong length")]
    ProofLength,
    #[error("tree size {0} exceeds the log size")]
    SizeOutOfRange(u64),
    #[error("signed tree head signature is invalid")]
    SthSignature,
    #[error("malformed hex hash")]
    MalformedHash,
    #[error("signing failed")]
    Signing,
}

impl LogError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IndexOutOfRange { .. } => "LOG_INDEX_OUT_OF_RANGE",
            Self::ProofMismatch => "LOG_PROOF_MISMATCH",
            Self::ProofLength => "LOG_PROOF_LENGTH",
            Self::SizeOutOfRange(_) => "LOG_SIZE_OUT_OF_RANGE",
            Self::SthSignature => "LOG_STH_SIGNATURE",
            Self::MalformedHash => "LOG_MALFORMED_HASH",
            Self::Signing => "LOG_SIGNING",
        }
    }
}

fn sha256_parts(parts: &[&[u8]]) -> Hash {
    let mut c = Context::new(&SHA256);
    for p in parts {
        c.update(p);
    }
    let d = c.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// `SHA-256(0x00 || data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256_parts(&[&[0x00], data])
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_parts(&[&[0x01], left, right])
}

/// The root of the empty tree, `SHA-256("")`.
pub fn empty_root() -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, b"").as_ref());
    out
}

/// Largest power of two strictly below `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of a list of leaf hashes.
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [one] => *one,
        _ => {
            let (l, r) = leaves.split_at(split(leaves.len()));
            node_hash(&root_of(l), &root_of(r))
        }
    }
}

/// The audit path of `index` in the tree of `leaves` (RFC 9162 PATH).
/// Returns an empty path when `index` is out of range.
pub fn inclusion_path(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    let mut path = Vec::new();
    path_rec(index, leaves, &mut path);
    path
}

fn path_rec(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    if leaves.len() <= 1 || m >= leaves.len() {
        return;
    }
    let k = split(leaves.len());
    let (l, r) = leaves.split_at(k);
    if m < k {
        path_rec(m, l, out);
        out.push(root_of(r));
    } else {
        path_rec(m - k, r, out);
        out.push(root_of(l));
    }
}

/// Verifies that `leaf_data` sits at `index` in the tree of `tree_size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_data: &[u8],
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LogError> {
    verify_inclusion_hash(&leaf_hash(leaf_data), index, tree_size, proof, root)
}

/// [`verify_inclusion`] for a leaf given by its leaf hash.
pub fn verify_inclusion_hash(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LogError> {
    if index >= tree_size {
        return Err(LogError::IndexOutOfRange { index, tree_size });
    }
    if proof.len() > MAX_PROOF_LEN {
        return Err(LogError::ProofLength);
    }
    let mut f = index;
    let mut s = tree_size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(LogError::ProofLength);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(LogError::ProofLength);
    }
    if &r != root {
        return Err(LogError::ProofMismatch);
    }
    Ok(())
}

/// The in-memory tree: the leaf hashes, in order.
#[derive(Debug, Default, Clone)]
pub struct MerkleTree {
    leaves: Vec<Hash>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Appends a leaf's data; returns its index.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.leaves.push(leaf_hash(data));
        self.size() - 1
    }

    /// The root of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, LogError> {
        let n = usize::try_from(size).map_err(|_| LogError::SizeOutOfRange(size))?;
        let leaves = self.leaves.get(..n).ok_or(LogError::SizeOutOfRange(size))?;
        Ok(root_of(leaves))
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        root_of(&self.leaves)
    }

    /// The inclusion proof of `index` in the tree of the first `size` leaves.
    pub fn proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        let n = usize::try_from(size).map_err(|_| LogError::SizeOutOfRange(size))?;
        let leaves = self.leaves.get(..n).ok_or(LogError::SizeOutOfRange(size))?;
        if index >= size {
            return Err(LogError::IndexOutOfRange {
                index,
                tree_size: size,
            });
        }
        // index < size <= usize::MAX here.
        let m = usize::try_from(index).map_err(|_| LogError::SizeOutOfRange(size))?;
        Ok(inclusion_path(m, leaves))
    }
}

/// A signed tree head, as served in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTreeHead {
    pub tree_size: u64,
    /// Root hash, hex.
    #[serde(with = "tl_evidence::hexser::array")]
    pub root: Hash,
    /// Unix time in milliseconds.
    pub timestamp: u64,
    /// ECDSA P-256 SHA-256 ASN.1 DER signature over [`sth_message`], base64.
    pub signature: String,
}

/// The bytes the CA signs for a tree head.
pub fn sth_message(tree_size: u64, root: &Hash, timestamp_ms: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(STH_DOMAIN.len() + 8 + 32 + 8);
    m.extend_from_slice(STH_DOMAIN);
    m.extend_from_slice(&tree_size.to_be_bytes());
    m.extend_from_slice(root);
    m.extend_from_slice(&timestamp_ms.to_be_bytes());
    m
}

impl SignedTreeHead {
    /// Signs a tree head with the CA key.
    pub fn sign(
        key: &EcdsaKeyPair,
        tree_size: u64,
        root: Hash,
        timestamp_ms: u64,
    ) -> Result<Self, LogError> {
        use base64::{engine::general_purpose::STANDARD, Engine};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = key
            .sign(&rng, &sth_message(tree_size, &root, timestamp_ms))
            .map_err(|_| LogError::Signing)?;
        Ok(Self {
            tree_size,
            root,
            timestamp: timestamp_ms,
            signature: STANDARD.encode(sig.as_ref()),
        })
    }

    /// Verifies the signature with the CA's public key (uncompressed P-256 point,
    /// as in [`crate::certs::VerifiedLeaf::public_key`] or the root's SPKI).
    pub fn verify(&self, ca_public_key: &[u8]) -> Result<(), LogError> {
        use base64::{engine::general_purpose::STANDARD, Engine};
        let sig = STANDARD
            .decode(&self.signature)
            .map_err(|_| LogError::SthSignature)?;
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, ca_public_key)
            .verify(
                &sth_message(self.tree_size, &self.root, self.timestamp),
                &sig,
            )
            .map_err(|_| LogError::SthSignature)
    }
}

/// Parses a list of hex hashes (as served in proofs).
pub fn parse_hex_hashes(items: &[String]) -> Result<Vec<Hash>, LogError> {
    if items.len() > MAX_PROOF_LEN {
        return Err(LogError::ProofLength);
    }
    items
        .iter()
        .map(|s| {
            let mut h = [0u8; 32];
            hex::decode_to_slice(s, &mut h).map_err(|_| LogError::MalformedHash)?;
            Ok(h)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    // Roots of the first n leaves, n = 0..=8 (CT reference test data).
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn ct_tree() -> MerkleTree {
        let mut t = MerkleTree::new();
        for l in CT_LEAVES {
            t.push(&hex::decode(l).unwrap());
        }
        t
    }

    fn h(s: &str) -> Hash {
        parse_hex_hashes(&[s.to_string()]).unwrap()[0]
    }

    #[test]
    fn reference_roots() {
        let t = ct_tree();
        for (n, root) in CT_ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(t.root_at(n as u64).unwrap()), *root, "size {n}");
        }
        assert_eq!(t.root_at(9).unwrap_err().code(), "LOG_SIZE_OUT_OF_RANGE");
    }

    #[test]
    fn reference_inclusion_proofs() {
        let t = ct_tree();
        let root = h(CT_ROOTS[8]);
        let p0 = [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ]
        .map(h);
        let p5 = [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ]
        .map(h);
        assert_eq!(t.proof(0, 8).unwrap(), p0.to_vec());
        assert_eq!(t.proof(5, 8).unwrap(), p5.to_vec());
        verify_inclusion(b"", 0, 8, &p0, &root).unwrap();
        verify_inclusion(&hex::decode(CT_LEAVES[5]).unwrap(), 5, 8, &p5, &root).unwrap();
        // Wrong index, wrong leaf, wrong size.
        assert_eq!(
            verify_inclusion(b"", 1, 8, &p0, &root).unwrap_err(),
            LogError::ProofMismatch
        );
        assert_eq!(
            verify_inclusion(b"x", 0, 8, &p0, &root).unwrap_err(),
            LogError::ProofMismatch
        );
        // Sizes whose audit path for leaf 0 has another shape fail (the size
        // itself is bound by the signed tree head, not by the path).
        assert_eq!(
            verify_inclusion(b"", 0, 4, &p0, &root).unwrap_err(),
            LogError::ProofLength
        );
        assert_eq!(
            verify_inclusion(b"", 8, 8, &p0, &root).unwrap_err().code(),
            "LOG_INDEX_OUT_OF_RANGE"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn every_index_verifies_and_tampering_fails(size in 1usize..70, flip in any::<(usize, usize, u8)>()) {
            let mut t = MerkleTree::new();
            for i in 0..size {
                t.push(&(i as u32).to_be_bytes());
            }
            let root = t.root();
            for i in 0..size {
                let leaf = (i as u32).to_be_bytes();
                let proof = t.proof(i as u64, size as u64).unwrap();
                prop_assert!(verify_inclusion(&leaf, i as u64, size as u64, &proof, &root).is_ok());
                // A proof with one byte flipped fails.
                if !proof.is_empty() {
                    let mut bad = proof.clone();
                    let j = flip.0 % bad.len();
                    let b = flip.1 % 32;
                    bad[j][b] ^= flip.2 | 1;
                    prop_assert_eq!(verify_inclusion(&leaf, i as u64, size as u64, &bad, &root), Err(LogError::ProofMismatch));
                    // Truncated and extended proofs fail.
                    prop_assert!(verify_inclusion(&leaf, i as u64, size as u64, &proof[1..], &root).is_err());
                }
                let mut longer = proof.clone();
                longer.push([0; 32]);
                prop_assert!(verify_inclusion(&leaf, i as u64, size as u64, &longer, &root).is_err());
            }
            // A proof against an older size verifies against that size's root.
            let old = size / 2 + 1;
            let proof = t.proof(0, old as u64).unwrap();
            prop_assert!(verify_inclusion(&0u32.to_be_bytes(), 0, old as u64, &proof, &t.root_at(old as u64).unwrap()).is_ok());
        }
    }

    #[test]
    fn sth_sign_verify_and_tamper() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                .unwrap();
        use aws_lc_rs::signature::KeyPair;
        let pk = key.public_key().as_ref().to_vec();
        let sth = SignedTreeHead::sign(&key, 8, h(CT_ROOTS[8]), 1234).unwrap();
        sth.verify(&pk).unwrap();
        let mut bad = sth.clone();
        bad.tree_size = 7;
        assert_eq!(bad.verify(&pk).unwrap_err().code(), "LOG_STH_SIGNATURE");
        let mut bad = sth.clone();
        bad.timestamp += 1;
        assert!(bad.verify(&pk).is_err());
        let mut bad = sth;
        bad.root[0] ^= 1;
        assert!(bad.verify(&pk).is_err());
    }
}
