//! The seam between the CA and evidence verification. Pure.

use tl_evidence::bundle::EvidenceBundle;
use tl_evidence::PlatformClaims;

/// Why evidence was refused: a stable code (from the verifier) and detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Rejection {
    pub code: &'static str,
    pub detail: String,
}

/// Verifies an evidence bundle at a time and returns the platform's claims.
///
/// Implementations must check every signature and chain and must not accept
/// the simulated TEE's root unless it was configured explicitly.
pub trait EvidenceVerifier: Send + Sync {
    fn verify(&self, bundle: &EvidenceBundle, now_unix: u64) -> Result<PlatformClaims, Rejection>;
}
