//! The certification authority of trusted-loader.
//!
//! Pure modules (no files, network, environment or clock; time is a
//! parameter): [`canonical`], [`nonce`], [`claims_ext`], [`issue`], [`certs`],
//! [`log`], [`report`], [`orders`], [`issuance_policy`], [`verifier`].
//! The service lives in [`store`] (the state directory), [`collateral`]
//! (DCAP collateral files, read at start), [`vcek_cache`] (SEV-SNP VCEKs and
//! AMD CRLs, read from directories), [`kds`] (the explicit fetch from AMD's
//! KDS into those directories) and [`server`] (HTTPS over rustls).

pub mod canonical;
pub mod certs;
pub mod claims_ext;
pub mod collateral;
pub mod issuance_policy;
pub mod issue;
pub mod kds;
pub mod log;
pub mod nonce;
pub mod orders;
pub mod pccs;
pub mod report;
pub mod server;
pub mod store;
pub mod vcek_cache;
pub mod verifier;

pub use certs::{verify_leaf, VerifiedLeaf};
pub use claims_ext::CertClaims;
pub use verifier::{CollateralStore, DcapVerifier, EvidenceVerifier, Rejection, SimAwareVerifier};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// ECDSA P-256 / SHA-256 (ASN.1 DER) signature of `message` by `key`.
pub fn sign_p256(
    key: &aws_lc_rs::signature::EcdsaKeyPair,
    message: &[u8],
) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    key.sign(&rng, message).map(|s| s.as_ref().to_vec())
}
