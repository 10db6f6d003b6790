//! See ARCHITECTURE.md.

pub mod eventlog;
