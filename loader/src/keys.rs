//! The loader's key pairs for one boot.
//!
//! * the **signing key** (ECDSA P-256): named by the CSR, certified by the CA,
//!   signs the order acceptance and the run report;
//! * the **encryption key** (X25519, HPKE): owners grant component keys to it.
//!
//! In `ephemeral` mode both are fresh per boot and exist only in this
//! process's memory (the private parts are zeroized on drop). In a sealed mode
//! the signing key is still fresh per boot (the CA certifies it for this boot
//! only) but the encryption key is derived from a sealing root bound to the
//! measurement, so owners can grant to it before the CVM boots:
//!
//! * `snp-derived`: [`derive_snp_sealed_key`] over the key that the AMD
//!   firmware derives for this guest (`SNP_GET_DERIVED_KEY`, see
//!   [`crate::snp`]); the derivation itself is pure and lives here.

use aws_lc_rs::hkdf;
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

/// Domain string of the SNP sealed-key derivation (versioned).
pub const SNP_SEALED_KEY_DOMAIN: &[u8] = b"trusted-loader/sealed-key/snp/v1";

/// The key version the loader uses today. A new version gives a new key for
/// the same image and platform; it is part of the derivation context.
pub const SNP_SEALED_KEY_VERSION: u32 = 1;

/// Which sealing root the encryption key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// Fresh per boot.
    Ephemeral,
    /// Derived from the SEV-SNP firmware's derived key.
    SnpDerived,
}

impl KeySource {
    /// Name as in the configuration's `key_mode`.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeySource::Ephemeral => "ephemeral",
            KeySource::SnpDerived => "snp-derived",
        }
    }
}

/// The HKDF `info` of the SNP sealed-key derivation: each field framed as a
/// u32 big-endian length followed by its bytes, integers big-endian:
///
/// ```text
/// frame("trusted-loader/sealed-key/snp/v1") || frame(key_version u32)
///   || frame(measurement, 48 bytes) || frame(policy u64) || frame(tcb u64)
/// ```
pub fn snp_sealed_key_info(
    measurement: &[u8; 48],
    policy: u64,
    tcb: u64,
    key_version: u32,
) -> Vec<u8> {
    let mut info = Vec::with_capacity(4 * 5 + SNP_SEALED_KEY_DOMAIN.len() + 4 + 48 + 8 + 8);
    for field in [
        SNP_SEALED_KEY_DOMAIN,
        &key_version.to_be_bytes()[..],
        &measurement[..],
        &policy.to_be_bytes()[..],
        &tcb.to_be_bytes()[..],
    ] {
        // Every field is a constant or fixed-size value, far below 4 GiB.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        info.extend_from_slice(&len.to_be_bytes());
        info.extend_from_slice(field);
    }
    info
}

struct SeedLen;

impl hkdf::KeyType for SeedLen {
    fn len(&self) -> usize {
        32
    }
}

/// The loader's sealed X25519 key pair from the SEV-SNP derived key. Pure.
///
/// `seed = HKDF-SHA256(salt = "", ikm = derived_key, info =`
/// [`snp_sealed_key_info`]`(measurement, policy, tcb, key_version), L = 32)`,
/// then the key pair is HPKE `DeriveKeyPair(seed)`
/// ([`RecipientSecretKey::from_seed`]). The firmware already mixes the
/// measurement, policy and TCB into `derived_key` (`GUEST_FIELD_SELECT`,
/// see [`crate::snp::SEALING_FIELD_SELECT`]); they are framed into the
/// context again so that the key names what it is bound to and so that a
/// request made with other fields cannot give the same key.
pub fn derive_snp_sealed_key(
    derived_key: &[u8; 32],
    measurement: &[u8; 48],
    policy: u64,
    tcb: u64,
    key_version: u32,
) -> RecipientSecretKey {
    let info = snp_sealed_key_info(measurement, policy, tcb, key_version);
    let info_parts = [info.as_slice()];
    let mut seed = Zeroizing::new([0u8; 32]);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(derived_key);
    // `expand` fails only when L exceeds 255 * HashLen and `fill` only when
    // the buffer length differs from L; L is 32 and the buffer 32 bytes, so
    // neither can fail.
    prk.expand(&info_parts, SeedLen)
        .and_then(|okm| okm.fill(seed.as_mut()))
        .expect("HKDF-SHA256 expand of 32 bytes");
    RecipientSecretKey::from_seed(&seed)
}

impl LoaderKeys {
    /// Fresh keys for this boot.
    pub fn ephemeral() -> Result<Self, Halt> {
        let encryption = RecipientSecretKey::generate().map_err(|e| {
            Halt::new(
                HaltCode::KeyDerivationFailed,
                format!("encryption key generation failed: {e}"),
            )
        })?;
        Self::with_encryption(encryption)
    }

    /// A fresh signing key for this boot and the given (sealed) encryption key.
    pub fn with_encryption(encryption: RecipientSecretKey) -> Result<Self, Halt> {
        let bad = |d: &str| Halt::new(HaltCode::KeyDerivationFailed, d);
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| bad("signing key generation failed"))?;
        let signing_pkcs8 = Zeroizing::new(doc.as_ref().to_vec());
        let signing = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &signing_pkcs8)
            .map_err(|_| bad("signing key parse failed"))?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const DK: [u8; 32] = [0x11; 32];
    const M: [u8; 48] = [0x22; 48];
    const POLICY: u64 = 0x30000;
    const TCB: u64 = 0xd315_0000_0000_0004;

    fn public(k: &RecipientSecretKey) -> String {
        hex::encode(k.public_key().as_bytes())
    }

    #[test]
    fn info_is_framed() {
        let info = snp_sealed_key_info(&M, POLICY, TCB, 1);
        let mut want = Vec::new();
        want.extend_from_slice(&32u32.to_be_bytes());
        want.extend_from_slice(b"trusted-loader/sealed-key/snp/v1");
        want.extend_from_slice(&4u32.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(&48u32.to_be_bytes());
        want.extend_from_slice(&M);
        want.extend_from_slice(&8u32.to_be_bytes());
        want.extend_from_slice(&POLICY.to_be_bytes());
        want.extend_from_slice(&8u32.to_be_bytes());
        want.extend_from_slice(&TCB.to_be_bytes());
        assert_eq!(info, want);
    }

    /// The vector documented in docs/formats/snp.md.
    #[test]
    fn fixed_vector() {
        let k = derive_snp_sealed_key(&DK, &M, POLICY, TCB, 1);
        assert_eq!(hex::encode(k.as_bytes()), VECTOR_SECRET);
        assert_eq!(public(&k), VECTOR_PUBLIC);
    }

    // Cross-checked with an independent HKDF / RFC 9180 DeriveKeyPair
    // implementation (Python hmac + cryptography's X25519).
    const VECTOR_SECRET: &str = "9f21abcb62f6e02180c3d11c29b1f1712d4b55c827d8965e7dafea42390a6924";
    const VECTOR_PUBLIC: &str = "943bcde06ae798968bc5fcc11b1bd24d577ae66f957fc69caf960682e1330f1d";

    #[test]
    fn same_inputs_same_key_any_change_another() {
        let base = public(&derive_snp_sealed_key(&DK, &M, POLICY, TCB, 1));
        assert_eq!(
            base,
            public(&derive_snp_sealed_key(&DK, &M, POLICY, TCB, 1))
        );
        let mut m2 = M;
        m2[47] ^= 1;
        let mut dk2 = DK;
        dk2[0] ^= 0x80;
        let others = [
            derive_snp_sealed_key(&dk2, &M, POLICY, TCB, 1),
            derive_snp_sealed_key(&DK, &m2, POLICY, TCB, 1),
            derive_snp_sealed_key(&DK, &M, POLICY | 1 << 19, TCB, 1),
            derive_snp_sealed_key(&DK, &M, POLICY, TCB + 1, 1),
            derive_snp_sealed_key(&DK, &M, POLICY, TCB, 2),
        ];
        let mut seen = std::collections::HashSet::new();
        seen.insert(base);
        for k in &others {
            assert!(seen.insert(public(k)), "a changed input gave a known key");
        }
    }

    #[test]
    fn sealed_keys_keep_the_encryption_key_and_sign_fresh() {
        let a =
            LoaderKeys::with_encryption(derive_snp_sealed_key(&DK, &M, POLICY, TCB, 1)).unwrap();
        let b =
            LoaderKeys::with_encryption(derive_snp_sealed_key(&DK, &M, POLICY, TCB, 1)).unwrap();
        assert_eq!(a.encryption_public_raw(), b.encryption_public_raw());
        assert_ne!(a.signing_public_point(), b.signing_public_point());
        let e = LoaderKeys::ephemeral().unwrap();
        assert_ne!(e.encryption_public_raw(), a.encryption_public_raw());
    }
}
