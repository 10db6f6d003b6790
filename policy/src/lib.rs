//! Orders for the trusted loader: the signed policy that names the platform,
//! the components, the launch and the outputs of one run.
//!
//! - [`keys`]: Ed25519 / ECDSA P-256 signing keys and their text forms.
//! - [`order`]: the TOML order model; [`Order::from_toml`] checks every
//!   structural rule, so an [`Order`] is always well formed.
//! - [`dsse`]: orders in DSSE envelopes signed by every required party, and
//!   the policy digest.
//! - [`appraise`](mod@appraise): platform claims against an order, into a [`Verdict`] that
//!   lists every failed check.
//!
//! The crate is pure: no files, network, environment or clock; time is a
//! parameter. The formats are specified in `docs/formats/order.md`.

pub mod appraise;
pub mod dsse;
pub mod keys;
pub mod order;
pub mod verdict;

pub use appraise::{appraise, check_freshness, AppraisalContext};
pub use dsse::{policy_digest, SignedOrder, VerifiedOrder, PAYLOAD_TYPE};
pub use keys::{Algorithm, KeyError, PublicKey, SigningKey};
pub use order::{Component, ObservedComponent, Order, OrderError, Role};
pub use verdict::{Failure, ReasonCode, Verdict};
