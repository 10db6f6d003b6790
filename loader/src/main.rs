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
