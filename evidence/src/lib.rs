//! Evidence formats and their verification.
//!
//! Architecture invariant: this crate does no I/O. Bytes and a verification
//! time go in; typed claims or a typed error come out. It never reads files,
//! devices, the network or the system clock.
//!
//! Architecture invariant: no verifier here accepts evidence chained to the
//! simulated TEE's root unless the caller passed that root explicitly.

pub mod binding;
pub mod bundle;
pub mod claims;
pub mod error;
pub mod hexser;
pub mod nvidia;
pub mod sim;
pub mod tdx;
pub mod verify;
mod x509;

pub use claims::{GpuClaims, PlatformClaims, TcbStatus, TeeKind};
pub use error::EvidenceError;
pub use sim::{SimMeasurements, SimTee};
pub use verify::{verify_bundle, TrustAnchors, VerifiedEvidence, VerifyOptions};
