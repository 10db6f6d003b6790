//! `tl`: the tool for people outside the CVM (data and model owners, engine
//! owners, reviewers). A thin adapter: every decision is made in the pure
//! crates; this binary reads files, calls them and prints the result.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd_demo;
mod cmd_evidence;
mod cmd_keygen;
mod cmd_measure;
mod cmd_policy;
mod cmd_report;
mod cmd_seal;
mod output;

/// tl: seal data for a confidential VM, sign its orders, open its outputs and
/// verify what it reports.
///
/// Typical flow for a data owner: `tl keygen` once, `tl seal` a dataset,
/// `tl policy sign` the order you agreed to, then `tl grant` the dataset's key
/// to the CVM's certified public key for that order. Every command accepts
/// `--json` for machine-readable output and exits non-zero on any failure.
#[derive(Debug, Parser)]
#[command(name = "tl", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Generate a key pair: a signing key (ed25519, ecdsa-p256) for orders, or
    /// an encryption key (x25519) for receiving outputs.
    Keygen(cmd_keygen::Args),
    /// Write, sign, verify and show orders (signed policies).
    #[command(subcommand)]
    Policy(cmd_policy::Cmd),
    /// Encrypt a file into a sealed component; prints its digests and key handle.
    Seal(cmd_seal::SealArgs),
    /// Grant a sealed component's content key to a CVM for one order.
    Grant(cmd_seal::GrantArgs),
    /// Decrypt a sealed file with a content key or with a grant and the recipient's key.
    Open(cmd_seal::OpenArgs),
    /// Run the whole multi-party story on this machine (simulated TEE, local CA).
    Demo(cmd_demo::Args),
    /// Verify a loader's signed run report and its transparency-log inclusion.
    #[command(subcommand)]
    Report(cmd_report::ReportCmd),
    /// Verify a loader's certificate and print the claims the CA certified.
    #[command(subcommand)]
    Cert(cmd_report::CertCmd),
    /// Verify attestation evidence (TDX/SGX quotes with DCAP collateral, SEV-SNP reports,
    /// NVIDIA GPU reports, evidence bundles) and appraise it.
    #[command(subcommand)]
    Evidence(cmd_evidence::Cmd),
    /// Reproduce launch measurements (SEV-SNP, TDX MRTD/RTMRs, UKI PCR 11) and
    /// compare a quote's registers with expected values.
    #[command(subcommand)]
    Measure(cmd_measure::Cmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Keygen(a) => cmd_keygen::run(a),
        Cmd::Policy(c) => cmd_policy::run(c),
        Cmd::Seal(a) => cmd_seal::seal(a),
        Cmd::Grant(a) => cmd_seal::grant(a),
        Cmd::Open(a) => cmd_seal::open(a),
        Cmd::Demo(a) => cmd_demo::run(a),
        Cmd::Report(c) => cmd_report::run_report(c),
        Cmd::Cert(c) => cmd_report::run_cert(c),
        Cmd::Evidence(c) => cmd_evidence::run(c),
        Cmd::Measure(c) => cmd_measure::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&e);
            ExitCode::FAILURE
        }
    }
}
