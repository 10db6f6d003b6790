//! Launch-measurement reproduction: bytes in, digests out.
//!
//! * [`ovmf`]: the OVMF GUIDed footer table, SEV (`ASEV`) and TDVF metadata.
//! * [`snp`]: the AMD SEV-SNP launch digest (and the SEV / SEV-ES digests), as
//!   `sev-snp-measure` 0.0.13 computes them.
//! * [`tdx`]: Intel TDX MRTD (both page-add orders) and RTMR1/RTMR2 for QEMU direct boot.
//! * [`pe`]: bounds-checked PE parsing and the Authenticode image hash.
//! * [`uki`]: TPM PCR 11 prediction for a unified kernel image, PCR 4 digest.
//! * [`eventlog`]: TCG PC Client event logs (crypto-agile and SHA-1) and TDX CCEL:
//!   typed events, replay into every bank, comparison reporting every mismatch.
//!
//! Every function is pure: no file, process, clock or environment access. Result
//! structures derive `serde::Serialize` so a front end can print every input digest and
//! every intermediate digest as JSON. See `docs/measurements.md`.

pub mod digest;
pub mod eventlog;
pub mod ovmf;
pub mod pe;
pub mod snp;
pub mod tdx;
pub mod uki;

pub use digest::{Digest32, Digest48};
