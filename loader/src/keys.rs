//! The loader's key pairs for one boot.
//!
//! * the **signing key** (ECDSA P-256): named by the CSR, certified by the CA,
//!   signs the order acceptance and the run report;
//! * the **encryption key** (X25519, HPKE): owners grant component keys to it.
//!
//! In `ephemeral` mode both are fresh per boot and exist only in this
//! process's memory (the private parts are zeroized on drop). Sealed modes
//! (SNP derived key, TPM-sealed seed) derive the encryption key from a sealing
//! root instead; they plug in here.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use tl_seal::grant::RecipientSecretKey;
use zeroize::Zeroizing;

use crate::halt::{Halt, HaltCode};

/// The loader's keys.
pub struct LoaderKeys {
    signing: EcdsaKeyPair,
    signing_pkcs8: Zeroizing<Vec<u8>>,
    encryption: RecipientSecretKey,
}

impl std::fmt::Debug for LoaderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoaderKeys")
            .field("encryption_public", &self.encryption.public_key().to_text())
            .finish_non_exhaustive()
    }
}

impl LoaderKeys {
    /// Fresh keys for this boot.
    pub fn ephemeral() -> Result<Self, Halt> {
        let bad = |d: &str| Halt::new(HaltCode::KeyDerivationFailed, d);
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| bad("signing key generation failed"))?;
        let signing_pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        let signing = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &signing_pkcs8)
            .map_err(|_| bad("signing key parse failed"))?;
        let encryption = RecipientSecretKey::generate()
            .map_err(|e| bad(&format!("encryption key generation failed: {e}")))?;
        Ok(Self {
            signing,
            signing_pkcs8,
            encryption,
        })
    }

    /// The signing key pair.
    pub fn signing(&self) -> &EcdsaKeyPair {
        &self.signing
    }

    /// The encryption secret key.
    pub fn encryption(&self) -> &RecipientSecretKey {
        &self.encryption
    }

    /// The raw 32-byte X25519 public key (what the report data binds).
    pub fn encryption_public_raw(&self) -> [u8; 32] {
        *self.encryption.public_key().as_bytes()
    }

    /// A PKCS#10 request for the signing key, and the key's
    /// SubjectPublicKeyInfo DER (what the report data binds).
    pub fn csr(&self) -> Result<(Vec<u8>, Vec<u8>), Halt> {
        let bad = |d: String| Halt::new(HaltCode::KeyDerivationFailed, d);
        let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(self.signing_pkcs8.as_slice());
        let kp =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ECDSA_P256_SHA256)
                .map_err(|e| bad(format!("CSR key: {e}")))?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| bad(format!("CSR params: {e}")))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "trusted-loader");
        let csr = params
            .serialize_request(&kp)
            .map_err(|e| bad(format!("CSR: {e}")))?;
        Ok((csr.der().to_vec(), kp.public_key_der()))
    }

    /// The signing public key as an uncompressed SEC1 point.
    pub fn signing_public_point(&self) -> &[u8] {
        self.signing.public_key().as_ref()
    }
}

/// `tpm-sealed` key mode.
impl LoaderKeys {
    /// Keys whose encryption key is derived from a seed sealed to the TPM's
    /// PCRs (see [`crate::tpm::derive_encryption_key`]); the signing key is
    /// fresh per boot. A seed that does not unseal (PCRs changed, another
    /// TPM, damaged blob) is a `KEY_DERIVATION_FAILED` halt: the loader never
    /// falls back to a fresh encryption key.
    pub fn tpm_sealed(
        tpm: &mut crate::tpm::Tpm,
        sealed: &crate::tpm::SealedSeed,
        key_version: u32,
    ) -> Result<Self, Halt> {
        let encryption = crate::tpm::unseal_encryption_key(tpm, sealed, key_version)?;
        let mut keys = Self::ephemeral()?;
        keys.encryption = encryption;
        Ok(keys)
    }
}
