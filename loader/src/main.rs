//! `trusted-loader`: the in-guest trusted loader.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tl_loader::config::LoaderConfig;
use tl_loader::halt::{halt, HaltContext, HaltMode};

/// In-guest trusted loader for confidential VMs.
///
/// Proves what it runs (hardware quote), enrolls with a CA, verifies a signed order, decrypts
/// the order's components inside the TEE, runs the engine in a sandbox, encrypts its outputs
/// and publishes a signed run report. Any failure halts with a stable code
/// (docs/halt-codes.md) and launches nothing.
///
/// Service mode:  trusted-loader run --config /etc/trusted-loader/loader.toml
/// PID 1 mode:    boot with the loader as init (rdinit=/trusted-loader); when its pid is 1 it
///                mounts /proc, /sys, /dev, /run, /tmp, configfs and securityfs, reads the
///                configuration from /etc/trusted-loader/loader.toml and powers off at the end.
#[derive(Debug, Parser)]
#[command(name = "trusted-loader", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run one order in service mode; exits non-zero with a halt code on failure.
    Run {
        /// Loader configuration (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Provision `key_mode = "tpm-sealed"`: seal a fresh random seed to the TPM's current
    /// SHA-256 PCR values and write it to the configuration's `tpm.sealed_seed`.
    ///
    /// Run it once on the machine (same image, same boot chain) whose PCRs the key is bound
    /// to. Prints the encryption public key the seed derives to (`x25519:...`): owners can
    /// grant to it in advance, and every later boot with the same PCR values derives the same
    /// key; any other boot chain cannot unseal it and halts with KEY_DERIVATION_FAILED.
    /// Refuses to overwrite an existing sealed seed.
    TpmSeal {
        /// Loader configuration (TOML) with a [tpm] section naming sealed_seed.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// SHA-256 PCRs to seal to, comma-separated (default: the configuration's tpm.pcrs).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        pcrs: Option<Vec<u32>>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Configuration path in PID 1 mode.
const PID1_CONFIG: &str = "/etc/trusted-loader/loader.toml";

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Sandbox stages re-execute this binary; they never return.
    tl_loader::sandbox::stage_main(&args);

    if nix::unistd::getpid().as_raw() == 1 {
        let mut ctx = HaltContext::new(HaltMode::Pid1);
        if let Err((target, e)) = tl_loader::pid1::mount_early() {
            let h = tl_loader::halt::Halt::new(
                tl_loader::halt::HaltCode::ConfigInvalid,
                format!("mount {target}: {e}"),
            );
            halt(&h, &mut ctx);
        }
        match LoaderConfig::load(std::path::Path::new(PID1_CONFIG)) {
            Ok(config) => {
                pid1_devices(&config, &mut ctx);
                run_pipeline(&config, &mut ctx);
                tl_loader::pid1::power_off()
            }
            Err(h) => halt(&h, &mut ctx),
        }
    }

    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Run { config }) => {
            let mut ctx = HaltContext::new(HaltMode::Service);
            match LoaderConfig::load(&config) {
                Ok(config) => run_pipeline(&config, &mut ctx),
                Err(h) => halt(&h, &mut ctx),
            }
        }
        Some(Cmd::TpmSeal { config, pcrs, json }) => {
            if let Err(h) = tpm_seal(&config, pcrs, json) {
                eprintln!("trusted-loader tpm-seal: {}: {}", h.code(), h.detail);
                std::process::exit(1);
            }
        }
        None => {
            use clap::CommandFactory;
            let _ = Cli::command().print_help();
            std::process::exit(2);
        }
    }
}

/// PID 1 mode: load the configured kernel modules, then configure the network.
fn pid1_devices(config: &LoaderConfig, ctx: &mut HaltContext) {
    if !config.kernel_modules.is_empty() {
        match tl_loader::pid1::load_modules(&config.kernel_modules) {
            Ok(names) => eprintln!("[trusted-loader] modules   {}", names.join(" ")),
            Err(h) => halt(&h, ctx),
        }
    }
    if let Some(net) = &config.network {
        match tl_loader::pid1::configure_network(net, std::time::Duration::from_secs(10)) {
            Ok(()) => eprintln!(
                "[trusted-loader] network   {} {}/{}",
                net.interface, net.address, net.prefix_len
            ),
            Err(h) => halt(&h, ctx),
        }
    }
}

/// Run the order; any failure goes to the halt path and never returns.
fn run_pipeline(config: &LoaderConfig, ctx: &mut HaltContext) {
    let mut progress =
        |stage: &str, detail: &str| eprintln!("[trusted-loader] {stage:<9} {detail}");
    match tl_loader::pipeline::run(config, ctx, &mut progress) {
        Ok(summary) => eprintln!(
            "[trusted-loader] done      run report {} (log index {})",
            summary.report_path.display(),
            summary.inclusion.index
        ),
        Err(h) => halt(&h, ctx),
    }
}

/// `trusted-loader tpm-seal`.
fn tpm_seal(
    config: &std::path::Path,
    pcrs: Option<Vec<u32>>,
    json: bool,
) -> Result<(), tl_loader::halt::Halt> {
    use tl_loader::halt::{Halt, HaltCode};
    let cfg = LoaderConfig::load(config)?;
    let bad = |d: &str| Halt::new(HaltCode::ConfigInvalid, d.to_owned());
    let sec = cfg.tpm.as_ref().ok_or_else(|| bad("no [tpm] section"))?;
    let out = sec
        .sealed_seed
        .as_ref()
        .ok_or_else(|| bad("tpm.sealed_seed is not set"))?;
    let mut sel = sec.quote_selection();
    if let Some(p) = pcrs {
        if p.is_empty() || p.iter().any(|i| *i > 23) {
            return Err(bad("--pcrs: PCR indexes 0..=23"));
        }
        sel[0].pcrs = p;
    }
    let fail = |e: tl_loader::tpm::TpmError| e.halt(HaltCode::KeyDerivationFailed, "sealing");
    let mut tpm = tl_loader::tpm::Tpm::open(&sec.transport()).map_err(fail)?;
    let (sealed, key) =
        tl_loader::tpm::provision_sealed_seed(&mut tpm, &sel, sec.key_version).map_err(fail)?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| bad(&format!("{}: {e}", out.display())))?;
    f.write_all(&sealed.to_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| bad(&format!("{}: {e}", out.display())))?;
    let public = key.public_key().to_text();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "sealed_seed": out,
                "pcrs": sel[0].pcrs,
                "bank": "sha256",
                "key_version": sec.key_version,
                "encryption_public_key": public,
            })
        );
    } else {
        println!(
            "sealed a fresh seed to SHA-256 PCRs {:?} in {}\nencryption public key (key version {}): {public}",
            sel[0].pcrs,
            out.display(),
            sec.key_version
        );
    }
    Ok(())
}
