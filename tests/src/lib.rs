//! End-to-end tests live in `tests/tests/`. They drive the workspace's real
//! binaries (`tl`, `trusted-loader`, `tl-ca`, `tl-demo-engine`), which must be
//! built first: `./scripts/test` runs `cargo build --workspace --bins` before
//! `cargo test`.
