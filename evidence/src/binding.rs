//! The framed binding of a guest's keys and the CA nonce into the 64-byte
//! report data of its CPU evidence.
//!
//! ```text
//! report_data = SHA-512( frame("trusted-loader/report-data/v1")
//!                     || frame(nonce)
//!                     || frame(signing public key, SubjectPublicKeyInfo DER)
//!                     || frame(encryption public key, raw HPKE encoding)
//!                     || frame(SHA-256 digest of all GPU and NVSwitch evidence)
//!                     [ || frame(TPM AK digest) ] )
//! frame(x)    = u32 big-endian length of x || x
//! ```
//!
//! The last frame is present only when the bundle carries a vTPM quote
//! beside the CPU evidence (composite evidence, see
//! [`crate::bundle::TpmEvidence`]): it binds the TPM attestation key to the
//! CPU TEE's report, as Azure's HCL report binds its vTPM AK. Without a TPM
//! the encoding is unchanged, and since frames are self-delimiting no
//! encoding with the frame equals one without it.
//!
//! Every field is length-prefixed, so no two different field tuples share an
//! encoding; the domain string and its version come first, so the hash cannot
//! be confused with any other use of SHA-512 in the system.

use sha2::{Digest, Sha512};

/// Domain separation string, versioned.
pub const DOMAIN: &[u8] = b"trusted-loader/report-data/v1";

/// The values a guest binds into its evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Binding<'a> {
    /// The CA's single-use enrollment nonce.
    pub nonce: &'a [u8],
    /// The loader's signing public key (SubjectPublicKeyInfo DER).
    pub signing_public_key: &'a [u8],
    /// The loader's encryption (HPKE) public key, raw encoding.
    pub encryption_public_key: &'a [u8],
    /// SHA-256 over the framed list of GPU evidence (see [`gpu_evidence_digest`]).
    pub gpu_evidence_digest: [u8; 32],
    /// [`tpm_ak_digest`] of the vTPM attestation key whose quote the bundle
    /// carries beside the CPU evidence; `None` when it carries none.
    pub tpm_ak_digest: Option<[u8; 32]>,
}

impl Binding<'_> {
    /// The 64 bytes to place in REPORTDATA (TDX) or REPORT_DATA (SNP).
    pub fn report_data(&self) -> [u8; 64] {
        let mut h = Sha512::new();
        for field in [
            DOMAIN,
            self.nonce,
            self.signing_public_key,
            self.encryption_public_key,
            &self.gpu_evidence_digest[..],
        ] {
            frame(&mut h, field);
        }
        if let Some(ak) = &self.tpm_ak_digest {
            frame(&mut h, ak);
        }
        h.finalize().into()
    }
}

/// Domain separation string of [`tpm_ak_digest`], versioned.
pub const TPM_AK_DOMAIN: &[u8] = b"trusted-loader/tpm-ak/v1";

/// `SHA-256(frame("trusted-loader/tpm-ak/v1") || frame(ak_public))` over the
/// AK exactly as the bundle carries it (`TPM2B_PUBLIC`/`TPMT_PUBLIC` or SPKI).
pub fn tpm_ak_digest(ak_public: &[u8]) -> [u8; 32] {
    use sha2::Sha256;
    let mut h = Sha256::new();
    frame(&mut h, TPM_AK_DOMAIN);
    frame(&mut h, ak_public);
    h.finalize().into()
}

/// SHA-256 over `frame("trusted-loader/gpu-evidence/v1") || frame(count) || frame(e_0) || ...`.
/// An empty list has a digest too, so "no GPU" is bound as firmly as "these GPUs".
pub fn gpu_evidence_digest<'a>(evidence: impl IntoIterator<Item = &'a [u8]>) -> [u8; 32] {
    device_evidence_digest(evidence, [])
}

/// `frame(domain) || frame(count as u32 BE) || frame(item_0) || ...`
fn frame_list<'a>(h: &mut impl Digest, domain: &[u8], items: impl IntoIterator<Item = &'a [u8]>) {
    let items: Vec<&[u8]> = items.into_iter().collect();
    frame(h, domain);
    // The count is framed as a 4-byte big-endian value; a list of more than
    // u32::MAX items cannot be built in memory anyway, so saturate.
    let count = u32::try_from(items.len()).unwrap_or(u32::MAX);
    frame(h, &count.to_be_bytes());
    for item in items {
        frame(h, item);
    }
}

/// Domain separation string of the NVSwitch section of [`device_evidence_digest`].
pub const NVSWITCH_EVIDENCE_DOMAIN: &[u8] = b"trusted-loader/nvswitch-evidence/v1";

/// The digest of all GPU-side evidence: GPUs, then NVSwitches.
///
/// Without switches it is exactly [`gpu_evidence_digest`] of the GPU
/// reports. With switches, the GPU frames are followed by
/// `frame("trusted-loader/nvswitch-evidence/v1") || frame(count) || frame(s_0) || ...`;
/// the GPU list is delimited by its count, so no list of GPUs alone encodes
/// like a list of GPUs and switches, and a report cannot move from one list
/// to the other.
pub fn device_evidence_digest<'a>(
    gpus: impl IntoIterator<Item = &'a [u8]>,
    switches: impl IntoIterator<Item = &'a [u8]>,
) -> [u8; 32] {
    use sha2::Sha256;
    let mut h = Sha256::new();
    frame_list(&mut h, b"trusted-loader/gpu-evidence/v1", gpus);
    let switches: Vec<&[u8]> = switches.into_iter().collect();
    if !switches.is_empty() {
        frame_list(&mut h, NVSWITCH_EVIDENCE_DOMAIN, switches);
    }
    h.finalize().into()
}

/// Domain separation string of [`nvswitch_nonce`], versioned.
pub const NVSWITCH_NONCE_DOMAIN: &[u8] = b"trusted-loader/nvswitch-nonce/v1";

/// The 32-byte SPDM nonce that NVSwitch `index` must answer, derived like
/// [`gpu_nonce`] under its own domain, so a GPU report can never answer a
/// switch's nonce or the other way round.
pub fn nvswitch_nonce(cpu_nonce: &[u8], index: u32) -> [u8; 32] {
    use sha2::Sha256;
    let mut h = Sha256::new();
    frame(&mut h, NVSWITCH_NONCE_DOMAIN);
    frame(&mut h, cpu_nonce);
    frame(&mut h, &index.to_be_bytes());
    h.finalize().into()
}

/// Domain separation string of [`gpu_nonce`], versioned.
pub const GPU_NONCE_DOMAIN: &[u8] = b"trusted-loader/gpu-nonce/v1";

/// The 32-byte SPDM nonce that GPU `gpu_index` must answer, derived from the
/// CA's enrollment nonce:
/// `SHA-256(frame("trusted-loader/gpu-nonce/v1") || frame(cpu_nonce) || frame(gpu_index as u32 BE))`.
/// Each GPU gets its own nonce, so a report cannot be moved to another index.
pub fn gpu_nonce(cpu_nonce: &[u8], gpu_index: u32) -> [u8; 32] {
    use sha2::Sha256;
    let mut h = Sha256::new();
    frame(&mut h, GPU_NONCE_DOMAIN);
    frame(&mut h, cpu_nonce);
    frame(&mut h, &gpu_index.to_be_bytes());
    h.finalize().into()
}

fn frame(h: &mut impl Digest, field: &[u8]) {
    // Fields are keys, nonces and digests; none comes near 4 GiB, and a field
    // that did would be cut at the length prefix, so saturating keeps
    // the function total without changing any real encoding.
    let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(field);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b<'a>(nonce: &'a [u8], sk: &'a [u8], ek: &'a [u8]) -> Binding<'a> {
        Binding {
            nonce,
            signing_public_key: sk,
            encryption_public_key: ek,
            gpu_evidence_digest: gpu_evidence_digest([]),
            tpm_ak_digest: None,
        }
    }

    #[test]
    fn framing_separates_fields() {
        // Moving a byte from one field to the next must change the result.
        let a = b(b"ab", b"c", b"d").report_data();
        let c = b(b"a", b"bc", b"d").report_data();
        assert_ne!(a, c);
    }

    #[test]
    fn every_field_is_bound() {
        let base = b(b"n", b"s", b"e").report_data();
        assert_ne!(base, b(b"N", b"s", b"e").report_data());
        assert_ne!(base, b(b"n", b"S", b"e").report_data());
        assert_ne!(base, b(b"n", b"s", b"E").report_data());
        let mut with_gpu = b(b"n", b"s", b"e");
        with_gpu.gpu_evidence_digest = gpu_evidence_digest([&b"gpu0"[..]]);
        assert_ne!(base, with_gpu.report_data());
        let mut with_tpm = b(b"n", b"s", b"e");
        with_tpm.tpm_ak_digest = Some(tpm_ak_digest(b"ak"));
        assert_ne!(base, with_tpm.report_data());
        let mut other_ak = with_tpm;
        other_ak.tpm_ak_digest = Some(tpm_ak_digest(b"AK"));
        assert_ne!(with_tpm.report_data(), other_ak.report_data());
    }

    #[test]
    fn tpm_frame_is_appended_last() {
        // Pinned construction: the AK frame follows the five v1 frames.
        let ak = tpm_ak_digest(b"ak");
        let mut h = Sha512::new();
        for f in [
            DOMAIN,
            b"n",
            b"s",
            b"e",
            &gpu_evidence_digest([])[..],
            &ak[..],
        ] {
            h.update((f.len() as u32).to_be_bytes());
            h.update(f);
        }
        let want: [u8; 64] = h.finalize().into();
        let mut with_tpm = b(b"n", b"s", b"e");
        with_tpm.tpm_ak_digest = Some(ak);
        assert_eq!(with_tpm.report_data(), want);
    }

    #[test]
    fn gpu_nonce_binds_nonce_and_index() {
        let n = gpu_nonce(b"nonce", 0);
        assert_ne!(n, gpu_nonce(b"nonce", 1));
        assert_ne!(n, gpu_nonce(b"nonc", 0));
        assert_eq!(n, gpu_nonce(b"nonce", 0));
        // Pinned vector: any change to the derivation is a format change.
        let mut h = sha2::Sha256::new();
        for f in [&b"trusted-loader/gpu-nonce/v1"[..], b"nonce", &[0, 0, 0, 0]] {
            h.update((f.len() as u32).to_be_bytes());
            h.update(f);
        }
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(n, want);
    }

    #[test]
    fn switch_section_is_appended_and_separate() {
        let gpus = [&b"g0"[..], &b"g1"[..]];
        // Without switches: the GPU digest, unchanged (pinned below).
        assert_eq!(device_evidence_digest(gpus, []), gpu_evidence_digest(gpus));
        let mut h = sha2::Sha256::new();
        for f in [
            &b"trusted-loader/gpu-evidence/v1"[..],
            &[0, 0, 0, 2],
            b"g0",
            b"g1",
        ] {
            h.update((f.len() as u32).to_be_bytes());
            h.update(f);
        }
        let want: [u8; 32] = h.finalize().into();
        assert_eq!(gpu_evidence_digest(gpus), want);
        // A report moved from the GPU list to the switch list changes it.
        let with = device_evidence_digest([&b"g0"[..]], [&b"g1"[..]]);
        assert_ne!(with, gpu_evidence_digest(gpus));
        assert_ne!(with, device_evidence_digest(gpus, [&b"s"[..]]));
        // Switch nonces are not GPU nonces.
        assert_ne!(nvswitch_nonce(b"n", 0), gpu_nonce(b"n", 0));
        assert_ne!(nvswitch_nonce(b"n", 0), nvswitch_nonce(b"n", 1));
    }

    #[test]
    fn gpu_list_order_and_split_matter() {
        let one = gpu_evidence_digest([&b"ab"[..]]);
        let two = gpu_evidence_digest([&b"a"[..], &b"b"[..]]);
        let swapped = gpu_evidence_digest([&b"b"[..], &b"a"[..]]);
        assert_ne!(one, two);
        assert_ne!(two, swapped);
    }
}
