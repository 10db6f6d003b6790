//! The in-guest trusted loader: building blocks of its path (see ARCHITECTURE.md).
//!
//! * [`halt`]: the one halt path (stable codes, wipes, failure event, exit / power-off);
//! * [`tsm`]: configfs-tsm report client; [`sim_tsm`]: the simulated TEE's configfs-tsm-shaped
//!   directory server;
//! * [`workdir`]: the plaintext work area (tmpfs) and its wipe;
//! * [`sandbox`]: the engine's unprivileged, namespaced launch and supervision;
//! * [`cel`] (pure): canonical event log and software register replay;
//! * [`gpu`]: NVIDIA GPU inventory (sysfs) and attestation evidence (NVML at run time);
//! * [`pid1`]: PID 1 helpers; [`config`]: the loader configuration.

pub mod cel;
pub mod client;
pub mod config;
pub mod gpu;
pub mod halt;
pub mod keys;
pub mod nscq;
pub mod pid1;
pub mod pipeline;
pub mod qgs;
pub mod relay;
pub mod sandbox;
pub mod sim_tsm;
pub mod snp;
pub mod tdx;
pub mod tpm;
pub mod tsm;
pub mod workdir;
