//! Evidence formats and their verification.
//!
//! Architecture invariant: this crate does no I/O. Bytes and a verification
//! time go in; typed claims or a typed error come out. It never reads files,
//! devices, the network or the system clock.
//!
//! Architecture invariant: no verifier here accepts evidence chained to the
//! simulated TEE's root unless the caller passed that root explicitly.

pub mod accept;
pub mod binding;
pub mod bundle;
pub mod claims;
pub mod dcap;
pub mod error;
pub mod hexser;
pub mod nvidia;
pub mod sim;
pub mod snp;
pub mod tdx;
pub mod tpm;
pub mod verify;
mod x509;

pub use x509::der_to_pem;

pub use accept::AcceptPolicy;
pub use claims::{GpuClaims, NvSwitchClaims, PlatformClaims, TcbStatus, TeeKind};
pub use dcap::TdxCollateral;
pub use error::EvidenceError;
pub use sim::{SimMeasurements, SimNvDevice, SimNvKind, SimSnpMeasurements, SimTee};
pub use verify::{verify_bundle, Collateral, TrustAnchors, VerifiedEvidence, VerifyOptions};

/// The Intel SGX Root CA certificate (DER), the trust anchor of every real
/// TDX and SGX PCK chain and of DCAP collateral. Intel publishes it; it is
/// shipped here so that verifiers need no download to trust it.
pub const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("../roots/intel_sgx_root_ca.der");
