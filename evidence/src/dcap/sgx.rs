//! SGX quotes (version 3).
