//! AK certificates: an ECDSA P-256 AK certified by a P-256 CA chain that
//! ends at a configured root (for example the CA that provisioned the
//! loader's TPM AK). Chains are checked with the same rules as PCK chains:
//! names, signatures, CA constraints, validity at the verification time.

use super::attest::TPM_ECC_NIST_P256;
use super::public::AkPublic;
use crate::error::EvidenceError;
use crate::x509::{self, P256Cert, MAX_CHAIN_LEN};

/// An AK whose certificate chain verified to a configured root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedAk {
    pub(crate) ak: AkPublic,
    /// The AK certificate (DER).
    pub leaf_der: Vec<u8>,
}

fn untrusted(e: EvidenceError) -> EvidenceError {
    match e {
        EvidenceError::TdxPckChain(w) => EvidenceError::TpmAkUntrusted(w),
        EvidenceError::BadTrustAnchor(_) => {
            EvidenceError::TpmAkUntrusted("AK root does not decode")
        }
        other => other,
    }
}

impl CertifiedAk {
    /// Verify `chain` (AK certificate first, intermediates after, the root
    /// optional at the end) to `root_der` at `now_unix`.
    pub fn verify(
        chain: &[Vec<u8>],
        root_der: &[u8],
        now_unix: u64,
    ) -> Result<CertifiedAk, EvidenceError> {
        if chain.is_empty() || chain.len() > MAX_CHAIN_LEN {
            return Err(EvidenceError::TpmAkUntrusted("AK certificate chain length"));
        }
        let root = P256Cert::parse(root_der, EvidenceError::BadTrustAnchor("AK root"))
            .map_err(untrusted)?;
        let mut certs = Vec::with_capacity(chain.len() + 1);
        for der in chain {
            certs.push(P256Cert::parse(
                der,
                EvidenceError::TpmAkUntrusted("AK certificate does not decode"),
            )?);
        }
        if certs.last().map(|c| c.der.as_slice()) != Some(root_der) {
            certs.push(root.clone());
        }
        x509::check_links(&certs, now_unix).map_err(untrusted)?;
        let top = certs
            .last()
            .ok_or(EvidenceError::TpmAkUntrusted("empty chain"))?;
        if !x509::is_anchor(top, &root, now_unix).map_err(untrusted)? {
            return Err(EvidenceError::TpmAkUntrusted(
                "chain does not end at the AK root",
            ));
        }
        let leaf = certs
            .first()
            .ok_or(EvidenceError::TpmAkUntrusted("empty chain"))?;
        Ok(CertifiedAk {
            ak: AkPublic::Ecc {
                curve: TPM_ECC_NIST_P256,
                point: leaf.public_key.clone(),
            },
            leaf_der: leaf.der.clone(),
        })
    }

    /// The certified AK.
    pub fn ak(&self) -> &AkPublic {
        &self.ak
    }
}
