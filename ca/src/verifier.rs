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
/// the simulated TEE's root unless it was configured explicitly. `nonce` is
/// the enrollment nonce the bundle answers: GPU reports must answer
/// `tl_evidence::binding::gpu_nonce(nonce, index)`.
pub trait EvidenceVerifier: Send + Sync {
    fn verify(
        &self,
        bundle: &EvidenceBundle,
        nonce: &[u8],
        now_unix: u64,
    ) -> Result<PlatformClaims, Rejection>;
}

/// The evidence crate's verifier ([`tl_evidence::verify::verify_bundle`])
/// with fixed trust anchors. The simulated TEE's root is trusted only when it
/// is set in the anchors, which `tl-ca serve` does only with
/// `--allow-simulated-root FILE`.
#[derive(Clone, Debug)]
pub struct SimAwareVerifier {
    anchors: tl_evidence::verify::TrustAnchors,
}

impl SimAwareVerifier {
    /// A verifier trusting exactly `anchors`.
    pub fn new(anchors: tl_evidence::verify::TrustAnchors) -> Self {
        Self { anchors }
    }

    /// True when the simulated root is among the anchors.
    pub fn allows_simulated(&self) -> bool {
        self.anchors.simulated_root_der.is_some()
    }
}

impl EvidenceVerifier for SimAwareVerifier {
    fn verify(
        &self,
        bundle: &EvidenceBundle,
        nonce: &[u8],
        now_unix: u64,
    ) -> Result<PlatformClaims, Rejection> {
        let mut opts = tl_evidence::verify::VerifyOptions::new(now_unix, self.anchors.clone());
        opts.expected_nonce = Some(nonce.to_vec());
        tl_evidence::verify::verify_bundle(bundle, &opts)
            .map(|v| v.claims)
            .map_err(|e| Rejection {
                code: e.code(),
                detail: e.to_string(),
            })
    }
}
