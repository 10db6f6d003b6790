//! `tl demo`: the whole multi-party story on this machine.
//!
//! A lab and a clinic own datasets, a third party owns a training engine. The
//! demo creates their keys, seals their data, has all three sign one order,
//! starts a CA on 127.0.0.1 that trusts the simulated TEE (explicitly), serves
//! a configfs-tsm-shaped directory from the simulated TEE, starts the real
//! `trusted-loader` binary against both, lets the owners grant their keys to
//! the certified CVM key, and ends with the engine owner decrypting the trained
//! model and verifying the run report and its log inclusion. `--tamper KIND`
//! breaks one input and shows the halt instead.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use tl_evidence::sim::{SimMeasurements, SimTee};
use tl_loader::pipeline::{publish, source, SIM_PROVIDER};
use tl_loader::sim_tsm::SimTsmServer;
use tl_policy::{Algorithm, SignedOrder, SigningKey};
use tl_seal::digest::DigestSet;
use tl_seal::grant::{
    open_grant, seal_grant, GrantContext, RecipientPublicKey, RecipientSecretKey, SystemRng,
};
use tl_seal::stream::{
    open_stream, random_salt, seal_stream, ContentKey, OpenOptions, SegmentSize,
};

use crate::output;

#[path = "demo_qemu.rs"]
pub mod qemu;
#[path = "demo_tpm.rs"]
pub mod tpm;

const LAB_CSV: &[u8] = include_bytes!("../../demo-engine/data/lab.csv");
const CLINIC_CSV: &[u8] = include_bytes!("../../demo-engine/data/clinic.csv");
const FAMILY: &str = "demo/lab-clinic-training";

/// What `--tamper` breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tamper {
    /// Flip one byte of the lab's sealed dataset (host tampering): COMPONENT_CORRUPT.
    Dataset,
    /// The engine owner ships another engine than the order pins: COMPONENT_DIGEST_MISMATCH.
    Engine,
    /// Flip one byte of the signed order's payload: ORDER_SIGNATURE.
    Order,
    /// Flip one byte of the clinic's key grant: GRANT_INVALID.
    Grant,
    /// The TEE's quote is corrupted in transit: the CA refuses it (ENROLL_REJECTED).
    Quote,
    /// Run version 2 of the order, then replay version 1: ORDER_ROLLBACK.
    Rollback,
    /// The order pins another MRTD than the platform's: PLATFORM_MISMATCH.
    Platform,
    /// The CA is down when the loader starts: ENROLL_UNREACHABLE / ENROLL_TIMEOUT.
    CaDown,
    /// Intel's (simulated) collateral rates the platform's TCB OutOfDate: the
    /// CA appraises it through DCAP and refuses to certify (ENROLL_REJECTED).
    Tcb,
    /// Implies --tpm: the boot chain changes after the key was sealed (PCR 8
    /// extended again); the seed does not unseal: KEY_DERIVATION_FAILED.
    TpmPcr,
    /// Implies a simulated NVSwitch: the switch runs other firmware than the
    /// order pins (one measurement differs): PLATFORM_MISMATCH.
    Nvswitch,
}

impl Tamper {
    /// The halt codes this tamper must produce.
    pub fn expected_codes(self) -> &'static [&'static str] {
        match self {
            Tamper::Dataset => &["COMPONENT_CORRUPT"],
            Tamper::Engine => &["COMPONENT_DIGEST_MISMATCH"],
            Tamper::Order => &["ORDER_SIGNATURE"],
            Tamper::Grant => &["GRANT_INVALID"],
            Tamper::Quote => &["ENROLL_REJECTED"],
            Tamper::Rollback => &["ORDER_ROLLBACK"],
            Tamper::Platform => &["PLATFORM_MISMATCH"],
            Tamper::CaDown => &["ENROLL_UNREACHABLE", "ENROLL_TIMEOUT"],
            Tamper::Tcb => &["ENROLL_REJECTED"],
            Tamper::TpmPcr => &["KEY_DERIVATION_FAILED"],
            Tamper::Nvswitch => &["PLATFORM_MISMATCH"],
        }
    }
}

/// Run the multi-party demo: three owners who never meet, one CVM (simulated
/// TEE), one CA on 127.0.0.1, one order.
///
/// It prints each stage as it happens: keys, sealing, signing, the CA, the
/// loader's own progress (evidence, enrollment, order, components, sandboxed
/// launch, outputs, wipe, run report), then the engine owner opens the
/// trained model and verifies the run report and its log inclusion proof.
///
/// `--tamper KIND` breaks one input and shows the halt instead: the loader's
/// reason code, proof that the engine never started and that no plaintext
/// remains in its work directory. Exit status 0 means the story went as
/// expected (for a tamper: the right halt).
///
/// The demo needs the workspace binaries next to `tl` (`trusted-loader`,
/// `tl-ca`, `tl-demo-engine`); `./scripts/demo` builds them and runs this.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Break one input and show the halt.
    #[arg(long, value_enum)]
    pub tamper: Option<Tamper>,
    /// Directory for the demo's files (default: a new directory under /tmp,
    /// removed at the end unless --keep).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the demo directory.
    #[arg(long)]
    pub keep: bool,
    /// Print one JSON summary at the end (stage lines still go to stderr).
    #[arg(long)]
    pub json: bool,
    /// Give the CVM a vTPM (Debian's swtpm over TCP): the demo measures a
    /// boot chain into PCR 8 and seals the loader's key seed to it
    /// (key_mode = "tpm-sealed"); the loader quotes the vTPM beside the TDX
    /// quote, the order pins PCR 8, and the certificate carries the PCRs.
    /// (Under --qemu the guest always quotes its own vTPM.)
    #[arg(long, conflicts_with = "qemu")]
    pub tpm: bool,
    /// Give the CVM this many simulated NVIDIA GPUs (0 to 8): devices of the
    /// simulated TEE (P-384 chains to a simulated NVIDIA root, SPDM reports in
    /// NVIDIA's layout) that answer the nonces derived from the CA's; the CA
    /// trusts their root by explicit flag, the order pins their count,
    /// versions and measurements, and the certificate carries their claims.
    #[arg(long, default_value_t = 0, conflicts_with = "qemu",
          value_parser = clap::value_parser!(u32).range(0..=8))]
    pub gpus: u32,
    /// Give the CVM this many simulated NVSwitches (0 to 8), likewise
    /// (trusted NVLink mode; `[platform.nvswitch]` in the order).
    #[arg(long, default_value_t = 0, conflicts_with = "qemu",
          value_parser = clap::value_parser!(u32).range(0..=8))]
    pub nvswitches: u32,
    /// Boot the loader as PID 1 of a QEMU guest instead of running it as a
    /// process (image/README.md). The value is the kernel directory that
    /// scripts/image-deps unpacks (image/kernel).
    #[arg(long, value_name = "KERNEL_DIR", requires = "static_bins")]
    pub qemu: Option<PathBuf>,
    /// With --qemu: the directory holding the static `trusted-loader` and
    /// `tl-demo-engine` (built with `-C target-feature=+crt-static`).
    #[arg(long, value_name = "DIR")]
    pub static_bins: Option<PathBuf>,
    /// Internal to --qemu: copy stdin to a TCP connection to ADDR and the
    /// connection to stdout (QEMU runs this for each forwarded guest connection).
    #[arg(long, value_name = "ADDR", hide = true)]
    pub pipe_to: Option<String>,
}

/// How the loader is run: as a local process, or as PID 1 of a QEMU guest.
enum Runner {
    Process {
        tpm: Option<tpm::DemoTpm>,
        /// The loader's `[gpu.simulated]` section, with simulated devices.
        gpus: Option<String>,
    },
    Qemu {
        setup: qemu::QemuSetup,
        seed: [u8; 32],
    },
}

/// The demo's result.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub ok: bool,
    pub tamper: Option<Tamper>,
    pub loader_exit: Option<i32>,
    pub halt_code: Option<String>,
    pub engine_started: bool,
    pub plaintext_left: Vec<String>,
    pub model: Option<serde_json::Value>,
    pub report_verified: bool,
    pub log_index: Option<u64>,
    /// The loader's own time from start to engine launch, excluding the wait
    /// for the order and component decryption (from its timing log line).
    pub loader_overhead_ms: Option<f64>,
    /// The claims of the CVM's certificate as the owners read them (when it
    /// got one).
    pub certified_claims: Option<serde_json::Value>,
    pub dir: PathBuf,
}

struct Party {
    name: &'static str,
    signing: SigningKey,
    encryption: RecipientSecretKey,
}

struct Sealed {
    name: &'static str,
    key: ContentKey,
    sha256: [u8; 32],
    tree: [u8; 32],
    size: u64,
}

struct Bins {
    loader: PathBuf,
    ca: PathBuf,
    engine: PathBuf,
}

/// Prints a stage line on stderr (stdout stays for `--json`).
fn say(stage: &str, text: &str) {
    eprintln!("==> {stage:<8} {text}");
}

pub fn run(a: Args) -> Result<()> {
    if let Some(addr) = &a.pipe_to {
        return qemu::pipe(addr);
    }
    let dir = match &a.dir {
        Some(d) => {
            fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            let d = std::env::temp_dir().join(format!("tl-demo-{}", std::process::id()));
            fs::create_dir_all(&d)?;
            d
        }
    };
    let dir = fs::canonicalize(&dir)?;
    let result = run_in(&a, &dir);
    if !a.keep && a.dir.is_none() {
        let _ = fs::remove_dir_all(&dir);
    }
    let outcome = result?;
    let ok = outcome.ok;
    output::emit(a.json, &outcome, |o| {
        match (o.ok, &o.tamper, &o.halt_code) {
        (true, None, _) => eprintln!("==> demo     the order ran end to end; everything verified"),
        (true, Some(t), Some(code)) => eprintln!(
            "==> demo     tamper {t:?}: halted with {code}; the engine never started; no plaintext left"
        ),
        _ => {}
    }
    })?;
    if !ok {
        bail!("the demo did not end as expected (see the stages above)");
    }
    Ok(())
}

fn run_in(a: &Args, dir: &Path) -> Result<Outcome> {
    let mut bins = locate_bins()?;
    if let (Some(_), Some(sb)) = (&a.qemu, &a.static_bins) {
        // The engine runs inside the guest: it must be the static build too.
        bins.loader = sb.join("trusted-loader");
        bins.engine = sb.join("tl-demo-engine");
        if a.tamper == Some(Tamper::Quote) {
            bail!("--tamper quote corrupts the quote on the host; under --qemu the quote is made in the guest");
        }
    }
    let now = crate::cmd_report::now_unix();
    let mut paths = DemoPaths::new(dir)?;
    if a.qemu.is_some() {
        paths.marker_arg = PathBuf::from(qemu::GUEST_MARKER);
    }

    // The parties and their keys.
    let parties = [
        party("engine-owner", Algorithm::Ed25519)?,
        party("lab", Algorithm::EcdsaP256)?,
        party("clinic", Algorithm::Ed25519)?,
    ];
    for p in &parties {
        say(
            "keys",
            &format!(
                "{:<12} signs with {} and receives with {}",
                p.name,
                p.signing.public_key(),
                p.encryption.public_key().to_text()
            ),
        );
    }

    // Each owner seals what it brings.
    let engine_bytes = fs::read(&bins.engine).with_context(|| bins.engine.display().to_string())?;
    let mut sealed = vec![
        seal_component("engine", &engine_bytes, &paths.components)?,
        seal_component("lab", LAB_CSV, &paths.components)?,
        seal_component("clinic", CLINIC_CSV, &paths.components)?,
    ];
    for s in &sealed {
        say(
            "seal",
            &format!(
                "{:<12} {:>8} bytes, sha256 {}",
                s.name,
                s.size,
                hex::encode(s.sha256)
            ),
        );
    }
    if a.tamper == Some(Tamper::Engine) {
        // The engine owner swaps in another program under the same key: the
        // ciphertext authenticates, the digest does not match the order.
        let other = fs::read("/bin/true").context("reading /bin/true as the swapped engine")?;
        let s = &mut sealed[0];
        write_sealed(&s.key, &other, &paths.components.join("engine.sealed"))?;
        say(
            "tamper",
            "engine owner ships another binary than the order pins",
        );
    }

    // The simulated TEE and the CA that trusts it (explicitly).
    // --tamper nvswitch needs a switch to tamper with.
    let nvswitches = if a.tamper == Some(Tamper::Nvswitch) {
        a.nvswitches.max(1)
    } else {
        a.nvswitches
    };
    let mut seed = [0u8; 32];
    aws_lc_rs::rand::fill(&mut seed).map_err(|_| anyhow!("random seed"))?;
    let sim = SimTee::from_seed(seed);
    let runner = match &a.qemu {
        Some(kernel_dir) => Runner::Qemu {
            setup: qemu::QemuSetup {
                kernel_dir: kernel_dir.clone(),
                loader: bins.loader.clone(),
            },
            seed,
        },
        None => {
            let tpm = if a.tpm || a.tamper == Some(Tamper::TpmPcr) {
                let t = tpm::DemoTpm::provision(&paths.dir.join("cvm"))?;
                say(
                    "tpm",
                    &format!(
                        "swtpm (TPM 2.0) on {}; boot chain measured into PCR {} = {}...",
                        t.socket.display(),
                        tpm::PCR,
                        &hex::encode(t.pcr)[..16]
                    ),
                );
                say(
                    "tpm",
                    &format!(
                        "provisioned: a fresh seed sealed to PCR {}; the loader's key will be {}",
                        tpm::PCR,
                        t.public_key
                    ),
                );
                Some(t)
            } else {
                None
            };
            let gpus = if a.gpus + nvswitches > 0 {
                let seed_path = paths.dir.join("cvm").join("sim-seed");
                fs::write(&seed_path, seed)?;
                say(
                    "gpu",
                    &format!(
                        "{} SIMULATED GPU(s) and {} NVSwitch(es), derived from the simulated TEE's seed",
                        a.gpus, nvswitches
                    ),
                );
                Some(format!(
                    "\n[gpu.simulated]\nseed_file = \"{}\"\ngpus = {}\nnvswitches = {}\n",
                    seed_path.display(),
                    a.gpus,
                    nvswitches
                ))
            } else {
                None
            };
            Runner::Process { tpm, gpus }
        }
    };
    let tpm_pcr = match &runner {
        Runner::Process { tpm: Some(t), .. } => Some(t.pcr),
        _ => None,
    };
    if a.tamper == Some(Tamper::TpmPcr) {
        if let Runner::Process { tpm: Some(t), .. } = &runner {
            let now = t.change_boot_chain()?;
            say(
                "tamper",
                &format!(
                    "another boot chain: PCR {} is now {}... (sealed to {}...)",
                    tpm::PCR,
                    &hex::encode(now)[..16],
                    &hex::encode(t.pcr)[..16]
                ),
            );
        }
    }
    let meas = SimMeasurements::default();
    fs::write(paths.ca.join("sim-root.pem"), sim.root_certificate_pem())?;
    // The simulated platform's DCAP collateral (TCB info, QE identity, CRLs),
    // so the CA appraises simulated quotes through the same DCAP code as
    // real ones.
    fs::write(
        paths.ca.join("sim-collateral.json"),
        sim.tdx_collateral_json(&{
            let mut o = tl_evidence::sim::SimCollateralOptions::at(now);
            if a.tamper == Some(Tamper::Tcb) {
                o.platform_status = tl_evidence::TcbStatus::OutOfDate;
            }
            o
        }),
    )?;
    if a.tamper == Some(Tamper::Tcb) {
        say(
            "tamper",
            "the platform's collateral says its TCB is OutOfDate",
        );
    }
    let sim_devices = a.gpus + nvswitches > 0;
    if sim_devices {
        fs::write(paths.ca.join("sim-gpu-root.der"), sim.nvidia_root_der())?;
    }
    let ca = CaProcess::start(&bins.ca, &paths.ca, sim_devices)?;
    say("ca", &format!("tl-ca on https://{} (root sha256 {}), trusting the SIMULATED TEE root by explicit flag, with its DCAP collateral", ca.addr, &ca.root_sha256[..16]));

    // The order, signed by all three.
    let version = if a.tamper == Some(Tamper::Rollback) {
        1
    } else {
        2
    };
    let mrtd = if a.tamper == Some(Tamper::Platform) {
        [0x42u8; 48]
    } else {
        meas.mrtd
    };
    let toml = order_toml(
        &parties,
        &sealed,
        &paths,
        version,
        now + 3600,
        &mrtd,
        &meas,
        tpm_pcr.as_ref(),
    );
    let devices = device_sections(&sim, a.gpus, nvswitches, a.tamper == Some(Tamper::Nvswitch));
    if a.tamper == Some(Tamper::Nvswitch) {
        say(
            "tamper",
            "the order pins other NVSwitch firmware than the switch runs",
        );
    }
    let toml = with_device_sections(toml, &devices);
    fs::write(paths.dir.join("order.toml"), &toml)?;
    let mut env = SignedOrder::sign_new(&toml, &parties[0].signing)
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    for p in &parties[1..] {
        env.add_signature(&p.signing)
            .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    }
    let order_digest = env.digest();
    say(
        "order",
        &format!(
            "{FAMILY} v{version} signed by engine-owner, lab, clinic (digest {})",
            &hex::encode(order_digest)[..16]
        ),
    );

    // The simulated TEE's configfs-tsm directory.
    let corrupt_quote = a.tamper == Some(Tamper::Quote);
    let sim_q = sim.clone();
    let meas_q = meas.clone();
    let quote_fn: tl_loader::sim_tsm::QuoteFn = Arc::new(move |rd: &[u8; 64]| {
        let mut q = sim_q.tdx_quote(rd, &meas_q);
        if corrupt_quote {
            if let Some(b) = q.get_mut(48 + 136) {
                *b ^= 0x01; // a byte of MRTD: the quote signature no longer verifies
            }
        }
        q
    });
    // Under --qemu the loader serves the simulated TEE inside the guest.
    let _tsm = if a.qemu.is_none() {
        let t = SimTsmServer::start(paths.tsm.clone(), SIM_PROVIDER, quote_fn)
            .context("starting the simulated TEE")?;
        say(
            "tee",
            &format!(
                "simulated TDX serving a configfs-tsm-shaped directory at {}",
                paths.tsm.display()
            ),
        );
        Some(t)
    } else {
        None
    };

    if a.tamper == Some(Tamper::Rollback) {
        // First a run of version 2 (the CA records it), then version 1 below.
        say(
            "tamper",
            "running version 2 first, then replaying version 1",
        );
        let toml2 = order_toml(
            &parties,
            &sealed,
            &paths,
            2,
            now + 3600,
            &mrtd,
            &meas,
            tpm_pcr.as_ref(),
        );
        let toml2 = with_device_sections(toml2, &devices);
        let mut env2 = SignedOrder::sign_new(&toml2, &parties[0].signing)
            .map_err(|e| anyhow!("{}: {e}", e.code()))?;
        for p in &parties[1..] {
            env2.add_signature(&p.signing)
                .map_err(|e| anyhow!("{}: {e}", e.code()))?;
        }
        let first = run_loader(
            &bins, &runner, &paths, &ca, &parties, &sealed, &env2, None, "v2 ",
        )?;
        if first.code() != Some(0) {
            bail!("the first (version 2) run failed");
        }
        paths.reset_run()?;
    }

    let mut ca = ca;
    if a.tamper == Some(Tamper::CaDown) {
        ca.stop();
        say("tamper", "the CA is stopped before the loader starts");
    }
    let status = run_loader(
        &bins, &runner, &paths, &ca, &parties, &sealed, &env, a.tamper, "",
    )?;
    let mut code = status.code();

    // What the halt left behind (or did not).
    let mut engine_started = paths.marker.exists();
    let plaintext_left = leftover_files(&paths.work);
    let halt_code = read_halt_code(&paths.loader_log);
    if let Runner::Qemu { .. } = runner {
        // The guest powered off either way; what the loader did is on its
        // console: "done" or a halt, and a launch line only if it launched.
        // Its plaintext lived in guest memory, gone with the power-off.
        let console = fs::read_to_string(&paths.loader_log).unwrap_or_default();
        engine_started = console.contains("[trusted-loader] launch ");
        code = if console.contains("[trusted-loader] done ") {
            Some(0)
        } else {
            halt_code
                .as_deref()
                .and_then(tl_loader::halt::HaltCode::from_code)
                .map(|c| c.exit_status())
        };
        say(
            "vm",
            &format!(
                "QEMU exited with {:?}; serial console log: {}",
                status.code(),
                paths.loader_log.display()
            ),
        );
    }

    let mut outcome = Outcome {
        ok: false,
        tamper: a.tamper,
        loader_exit: code,
        halt_code: halt_code.clone(),
        engine_started,
        plaintext_left: plaintext_left.clone(),
        model: None,
        report_verified: false,
        log_index: None,
        loader_overhead_ms: read_overhead(&paths.loader_log),
        certified_claims: fs::read(paths.dir.join("certified-claims.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok()),
        dir: dir.to_path_buf(),
    };

    if let Some(t) = a.tamper {
        say(
            "check",
            &format!(
                "loader exit status {code:?}, halt code {}",
                halt_code.as_deref().unwrap_or("none")
            ),
        );
        say(
            "check",
            &format!(
                "engine started: {engine_started}; plaintext files left in the work area: {}",
                plaintext_left.len()
            ),
        );
        outcome.ok = code.is_some_and(|c| c != 0)
            && halt_code
                .as_deref()
                .is_some_and(|c| t.expected_codes().contains(&c))
            && !engine_started
            && plaintext_left.is_empty();
        return Ok(outcome);
    }
    if code != Some(0) {
        say(
            "check",
            &format!(
                "loader failed: exit {code:?}, halt {}",
                halt_code.as_deref().unwrap_or("none")
            ),
        );
        return Ok(outcome);
    }

    // The engine owner opens the model; anyone verifies the run report.
    let ca_root_der = tl_ca::certs::pem_to_certs(&fs::read_to_string(
        paths.ca.join("state").join(tl_ca::store::CA_ROOT_FILE),
    )?)
    .ok()
    .and_then(|v| v.into_iter().next())
    .context("CA root")?;
    let report_text = fs::read(&paths.report)?;
    let verdict = crate::cmd_report::verify_report_file(&report_text, &ca_root_der, true)?;
    say(
        "verify",
        &format!(
            "run report signature, certificate chain and log inclusion (index {} of {}) verified",
            verdict.log_index.unwrap_or_default(),
            verdict.log_tree_size.unwrap_or_default()
        ),
    );
    let out_rec = verdict
        .report
        .outputs
        .iter()
        .find(|o| o.name == "model")
        .context("report names no model output")?;
    let grant = fs::read(paths.outputs.join("model.engine-owner.grant"))?;
    let ctx = tl_seal::output::output_context(order_digest, "model", out_rec.plaintext_sha256)
        .map_err(|e| anyhow!("{e}"))?;
    let key = open_grant(&grant, &parties[0].encryption, &ctx)
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    let mut plain = Vec::new();
    let sealed_model = fs::read(paths.outputs.join("model.sealed"))?;
    let s = open_stream(
        &key,
        &mut sealed_model.as_slice(),
        &mut plain,
        OpenOptions::default(),
    )
    .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    if s.digests.sha256 != Some(out_rec.plaintext_sha256) {
        bail!("model digest differs from the run report");
    }
    let model: serde_json::Value = serde_json::from_slice(&plain).context("model.json")?;
    say(
        "model",
        &format!(
            "engine owner decrypted model.json: holdout accuracy {}, features {}",
            model
                .get("accuracy_holdout")
                .map(|v| v.to_string())
                .unwrap_or_default(),
            model
                .get("features")
                .map(|v| v.to_string())
                .unwrap_or_default()
        ),
    );
    if a.qemu.is_none() {
        say(
            "check",
            &format!(
                "plaintext files left in the CVM's work area: {}",
                plaintext_left.len()
            ),
        );
    }
    outcome.model = Some(model);
    outcome.report_verified = true;
    outcome.log_index = verdict.log_index;
    outcome.ok = plaintext_left.is_empty() && engine_started;
    Ok(outcome)
}

fn party(name: &'static str, alg: Algorithm) -> Result<Party> {
    Ok(Party {
        name,
        signing: SigningKey::generate(alg).map_err(|e| anyhow!("{name}: {e}"))?,
        encryption: RecipientSecretKey::generate().map_err(|e| anyhow!("{name}: {e}"))?,
    })
}

fn write_sealed(
    key: &ContentKey,
    data: &[u8],
    path: &Path,
) -> Result<tl_seal::stream::SealSummary> {
    let mut out = fs::File::create(path).with_context(|| path.display().to_string())?;
    let s = seal_stream(
        key,
        SegmentSize::DEFAULT,
        data.len() as u64,
        &mut &data[..],
        &mut out,
        random_salt().map_err(|e| anyhow!("{e}"))?,
        DigestSet::ALL,
        2,
    )
    .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    out.flush()?;
    Ok(s)
}

fn seal_component(name: &'static str, data: &[u8], dir: &Path) -> Result<Sealed> {
    let key = ContentKey::generate().map_err(|e| anyhow!("{e}"))?;
    let s = write_sealed(&key, data, &dir.join(format!("{name}.sealed")))?;
    Ok(Sealed {
        name,
        sha256: s.digests.sha256.context("sha256")?,
        tree: s.digests.tree_sha256.context("tree")?,
        size: s.plaintext_len,
        key,
    })
}

struct DemoPaths {
    dir: PathBuf,
    ca: PathBuf,
    tsm: PathBuf,
    input: PathBuf,
    components: PathBuf,
    grants: PathBuf,
    publish: PathBuf,
    outputs: PathBuf,
    work: PathBuf,
    report: PathBuf,
    marker_dir: PathBuf,
    marker: PathBuf,
    /// The marker path the order gives the engine (inside the guest under --qemu).
    marker_arg: PathBuf,
    loader_log: PathBuf,
}

impl DemoPaths {
    fn new(dir: &Path) -> Result<Self> {
        let cvm = dir.join("cvm");
        let input = cvm.join("order-in");
        let p = DemoPaths {
            dir: dir.to_path_buf(),
            ca: dir.join("ca"),
            tsm: cvm.join("tsm"),
            components: input.join(source::COMPONENTS),
            grants: input.join(source::GRANTS),
            input,
            publish: cvm.join("publish"),
            outputs: cvm.join("outputs"),
            work: cvm.join("work"),
            report: cvm.join("report.json"),
            marker_dir: dir.join("markers"),
            marker: dir.join("markers").join("engine-started"),
            marker_arg: dir.join("markers").join("engine-started"),
            loader_log: cvm.join("loader.log"),
        };
        for d in [
            &p.ca,
            &p.tsm,
            &p.components,
            &p.grants,
            &p.publish,
            &p.outputs,
            &p.work,
            &p.marker_dir,
        ] {
            fs::create_dir_all(d).with_context(|| d.display().to_string())?;
        }
        // The engine runs as uid 65534 and must be able to reach the marker
        // directory and (for the sandbox) every ancestor of its work area.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&p.marker_dir, fs::Permissions::from_mode(0o777))?;
        for d in [dir, &cvm, &p.work] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        }
        Ok(p)
    }

    /// Clear what one loader run leaves, for a second run.
    fn reset_run(&self) -> Result<()> {
        for f in [
            self.input.join(source::READY),
            self.input.join(source::ORDER),
            self.report.clone(),
            self.marker.clone(),
        ] {
            let _ = fs::remove_file(f);
        }
        for d in [&self.publish, &self.outputs, &self.grants] {
            let _ = fs::remove_dir_all(d);
            fs::create_dir_all(d)?;
        }
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn order_toml(
    parties: &[Party; 3],
    sealed: &[Sealed],
    p: &DemoPaths,
    version: u64,
    expires: u64,
    mrtd: &[u8; 48],
    meas: &SimMeasurements,
    tpm_pcr: Option<&[u8; 32]>,
) -> String {
    let expires =
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(expires).unwrap_or(i64::MAX))
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| "2099-01-01T00:00:00Z".into());
    let mut t = String::new();
    t.push_str(&format!(
        "[order]\nfamily = \"{FAMILY}\"\nversion = {version}\nexpires = \"{expires}\"\ndescription = \"Train a risk model on the lab's and the clinic's data with the engine owner's trainer\"\nsigners = [\"engine-owner\", \"lab\", \"clinic\"]\n\n"
    ));
    for party in parties {
        t.push_str(&format!(
            "[parties.{}]\nsigning_key = \"{}\"\nencryption_key = \"{}\"\n\n",
            party.name,
            party.signing.public_key(),
            party.encryption.public_key().to_text()
        ));
    }
    t.push_str(&format!(
        "[platform]\nallow_simulated = true\nallow_debug = false\naccept_tcb = [\"UpToDate\"]\ntee = [\"tdx\"]\n\n[platform.tdx]\nmrtd = \"{}\"\nrtmr0 = \"{}\"\nrtmr1 = \"{}\"\nrtmr2 = \"{}\"\n\n",
        hex::encode(mrtd),
        hex::encode(meas.rtmr[0]),
        hex::encode(meas.rtmr[1]),
        hex::encode(meas.rtmr[2]),
    ));
    if let Some(v) = tpm_pcr {
        t.push_str(&format!(
            "[platform.tpm.pcrs.sha256]\n\"{}\" = \"{}\"\n\n",
            tpm::PCR,
            hex::encode(v)
        ));
    }
    fn owner(n: &str) -> &str {
        match n {
            "engine" => "engine-owner",
            other => other,
        }
    }
    for s in sealed {
        let (role, mount, exec) = match s.name {
            "engine" => ("engine", "engine/tl-demo-engine".to_owned(), true),
            n => ("dataset", format!("{n}.csv"), false),
        };
        t.push_str(&format!(
            "[[components]]\nname = \"{}\"\nrole = \"{role}\"\nowner = \"{}\"\nsize = {}\nsha256 = \"{}\"\ntree_sha256 = \"{}\"\nmount = \"{mount}\"\nexecutable = {exec}\n\n",
            s.name,
            owner(s.name),
            s.size,
            hex::encode(s.sha256),
            hex::encode(s.tree),
        ));
    }
    t.push_str(&format!(
        "[launch]\nargv = [\"{{components}}/engine/tl-demo-engine\", \"--data\", \"{{components}}/lab.csv\", \"--data\", \"{{components}}/clinic.csv\", \"--out\", \"{{outputs}}\", \"--marker\", \"{}\"]\nworkdir = \"{{outputs}}\"\nmemory_mb = 512\ncpu_seconds = 60\ntimeout_seconds = 60\n\n",
        p.marker_arg.display()
    ));
    t.push_str("[[outputs]]\nname = \"model\"\npath = \"model.json\"\nrecipients = [\"engine-owner\"]\nmax_bytes = 1048576\n");
    t
}

/// The order's `[platform.gpu]` and `[platform.nvswitch]` sections for the
/// simulated devices: exact counts, versions and every measurement pinned
/// (empty without devices: the order then admits none).
fn device_sections(
    sim: &SimTee,
    gpus: u32,
    nvswitches: u32,
    other_switch_firmware: bool,
) -> String {
    use tl_evidence::sim::{
        SimNvKind, SIM_GPU_DRIVER_VERSION, SIM_GPU_VBIOS_VERSION, SIM_NVSWITCH_VBIOS_VERSION,
        SIM_NV_MEASUREMENTS,
    };
    let measurements = |kind, other: bool| {
        let d = sim.nvidia_device(kind, 0);
        (1..=SIM_NV_MEASUREMENTS)
            .map(|i| {
                let mut m = d.measurement(i);
                if other && i == 1 {
                    m[0] ^= 0x01;
                }
                format!("{i} = \"{}\"", hex::encode(m))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut t = String::new();
    if gpus > 0 {
        t.push_str(&format!(
            "[platform.gpu]\ncount = {gpus}\ndriver_versions = [\"{SIM_GPU_DRIVER_VERSION}\"]\nvbios_versions = [\"{SIM_GPU_VBIOS_VERSION}\"]\nmeasurements = {{ {} }}\n\n",
            measurements(SimNvKind::Gpu, false)
        ));
    }
    if nvswitches > 0 {
        t.push_str(&format!(
            "[platform.nvswitch]\ncount = {nvswitches}\nvbios_versions = [\"{SIM_NVSWITCH_VBIOS_VERSION}\"]\nmeasurements = {{ {} }}\n\n",
            measurements(SimNvKind::NvSwitch, other_switch_firmware)
        ));
    }
    t
}

/// `order` with `sections` placed before its first component (the platform
/// tables end there).
fn with_device_sections(order: String, sections: &str) -> String {
    match order.find("[[components]]") {
        Some(at) if !sections.is_empty() => {
            format!("{}{sections}{}", &order[..at], &order[at..])
        }
        _ => order,
    }
}

struct CaProcess {
    child: Option<Child>,
    addr: String,
    root_sha256: String,
    root_pem: String,
}

impl CaProcess {
    fn start(bin: &Path, dir: &Path, sim_devices: bool) -> Result<Self> {
        let state = dir.join("state");
        let log = fs::File::create(dir.join("ca.log"))?;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--init", "--listen", "127.0.0.1:0", "--dir"])
            .arg(&state)
            .arg("--allow-simulated-root")
            .arg(dir.join("sim-root.pem"))
            .arg("--sim-collateral")
            .arg(dir.join("sim-collateral.json"));
        if sim_devices {
            cmd.arg("--allow-simulated-gpu-root")
                .arg(dir.join("sim-gpu-root.der"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("CA stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let v: serde_json::Value = serde_json::from_str(line.trim()).with_context(|| {
            format!(
                "the CA did not start (see {}): {line:?}",
                dir.join("ca.log").display()
            )
        })?;
        let addr = v
            .get("listening")
            .and_then(|x| x.as_str())
            .context("listening")?
            .to_owned();
        let root_sha256 = v
            .get("ca_root_sha256")
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned();
        let root_pem = fs::read_to_string(state.join(tl_ca::store::CA_ROOT_FILE))?;
        fs::write(dir.join("ca-root.pem"), &root_pem)?;
        Ok(CaProcess {
            child: Some(child),
            addr,
            root_sha256,
            root_pem,
        })
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for CaProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start the loader, act as the owners once it has published its
/// certificate, and wait for it to end.
#[allow(clippy::too_many_arguments)]
fn run_loader(
    bins: &Bins,
    runner: &Runner,
    p: &DemoPaths,
    ca: &CaProcess,
    parties: &[Party; 3],
    sealed: &[Sealed],
    env: &SignedOrder,
    tamper: Option<Tamper>,
    tag: &str,
) -> Result<std::process::ExitStatus> {
    let ca_root_path = p.ca.join("ca-root.pem");
    fs::write(&ca_root_path, &ca.root_pem)?;
    let is_root = nix::unistd::geteuid().is_root();
    let cfg = format!(
        "ca_url = \"https://{}\"\nca_root = \"{}\"\ntee = \"sim\"\nallow_simulation = true\ntsm_root = \"{}\"\norder_source_dir = \"{}\"\ndeadline_seconds = 60\nwork_base = \"{}\"\ntmpfs = {}\nkey_mode = \"ephemeral\"\nreport_out = \"{}\"\npublish_dir = \"{}\"\noutput_dir = \"{}\"\nca_timeout_seconds = {}\n",
        ca.addr,
        ca_root_path.display(),
        p.tsm.display(),
        p.input.display(),
        p.work.display(),
        is_root,
        p.report.display(),
        p.publish.display(),
        p.outputs.display(),
        if tamper == Some(Tamper::CaDown) { 3 } else { 20 },
    );
    let cfg = match runner {
        Runner::Qemu { setup, seed } => {
            return run_in_qemu(setup, *seed, p, ca, parties, sealed, env, tamper, tag);
        }
        Runner::Process { tpm, gpus } => {
            let cfg = match tpm {
                Some(t) => {
                    cfg.replace("key_mode = \"ephemeral\"", "key_mode = \"tpm-sealed\"")
                        + &t.loader_section()
                }
                None => cfg,
            };
            cfg + gpus.as_deref().unwrap_or_default()
        }
    };
    let cfg_path = p.dir.join("cvm").join("loader.toml");
    fs::write(&cfg_path, cfg)?;
    say(
        "loader",
        &format!(
            "{tag}starting trusted-loader (service mode, --config {})",
            cfg_path.display()
        ),
    );
    let log = fs::File::create(&p.loader_log)?;
    let mut child = Command::new(&bins.loader)
        .arg("run")
        .arg("--config")
        .arg(&cfg_path)
        .stdout(Stdio::from(log))
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bins.loader.display()))?;
    let stderr = child.stderr.take().context("loader stderr")?;
    let console = p.loader_log.with_extension("console");
    let tag_owned = tag.to_owned();
    let echo = std::thread::spawn(move || {
        let mut kept = fs::File::create(console).ok();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("    | {tag_owned}{line}");
            if let Some(f) = kept.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    });

    // The owners wait for the CVM's certificate, verify it, then grant.
    let cert_path = p.publish.join(publish::CERTIFICATE);
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if cert_path.exists() {
            break None;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            bail!("the loader published no certificate within 90 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if status.is_none() {
        owners_grant(p, ca, parties, sealed, env, tamper)?;
    }
    let status = match status {
        Some(s) => s,
        None => child.wait()?,
    };
    let _ = echo.join();
    Ok(status)
}

/// Boot the guest, act as the owners once its certificate arrives through
/// the relay, and wait for the power-off.
#[allow(clippy::too_many_arguments)]
fn run_in_qemu(
    setup: &qemu::QemuSetup,
    seed: [u8; 32],
    p: &DemoPaths,
    ca: &CaProcess,
    parties: &[Party; 3],
    sealed: &[Sealed],
    env: &SignedOrder,
    tamper: Option<Tamper>,
    tag: &str,
) -> Result<std::process::ExitStatus> {
    let inputs = qemu::GuestInputs {
        ca_root_pem: &ca.root_pem,
        sim_seed: seed,
        ca_timeout_seconds: if tamper == Some(Tamper::CaDown) {
            3
        } else {
            30
        },
    };
    let dirs = qemu::RelayDirs {
        input: p.input.clone(),
        publish: p.publish.clone(),
        outputs: p.outputs.clone(),
        report: p.report.clone(),
    };
    let (mut boot, initrd_sha) = qemu::boot(
        setup,
        &inputs,
        &ca.addr,
        dirs,
        &p.dir.join("vm"),
        &p.loader_log,
    )?;
    say(
        "loader",
        &format!(
            "{tag}booting QEMU (TCG, OVMF, swtpm) with trusted-loader as PID 1 (initramfs sha256 {}...); serial console in {}",
            &initrd_sha[..16],
            boot.serial.display()
        ),
    );
    let cert_path = p.publish.join(publish::CERTIFICATE);
    let limit = Duration::from_secs(240);
    let mut granted = false;
    let status = loop {
        if let Some(st) = boot.qemu.try_wait()? {
            break st;
        }
        if !granted && cert_path.exists() {
            say(
                "vm",
                &format!(
                    "the guest published its certificate {:.1} s after power-on",
                    boot.started.elapsed().as_secs_f64()
                ),
            );
            owners_grant(p, ca, parties, sealed, env, tamper)?;
            granted = true;
        }
        if boot.started.elapsed() > limit {
            bail!(
                "the guest did not power off within {} s; serial console: {}",
                limit.as_secs(),
                boot.serial.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    say(
        "vm",
        &format!(
            "the guest powered off {:.1} s after power-on",
            boot.started.elapsed().as_secs_f64()
        ),
    );
    for line in fs::read_to_string(&boot.serial).unwrap_or_default().lines() {
        eprintln!("    | {tag}{}", line.trim_end());
    }
    Ok(status)
}

fn owners_grant(
    p: &DemoPaths,
    ca: &CaProcess,
    parties: &[Party; 3],
    sealed: &[Sealed],
    env: &SignedOrder,
    tamper: Option<Tamper>,
) -> Result<()> {
    let chain = fs::read_to_string(p.publish.join(publish::CERTIFICATE))?;
    let root_der = tl_ca::certs::pem_to_certs(&ca.root_pem)
        .ok()
        .and_then(|v| v.into_iter().next())
        .context("CA root")?;
    let leaf = tl_ca::certs::verify_leaf_pem(&chain, &root_der, crate::cmd_report::now_unix())
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    let claims = &leaf.claims;
    let recipient =
        RecipientPublicKey::from_text(&claims.encryption_public_key).map_err(|e| anyhow!("{e}"))?;
    let mrtd = claims
        .platform
        .tdx
        .as_ref()
        .map(|t| hex::encode(t.mrtd))
        .unwrap_or_default();
    say(
        "owners",
        &format!(
        "each owner verifies the CVM certificate: chains to the CA, TEE {:?}{}, MRTD {}..., key {}",
        claims.platform.tee,
        if claims.platform.simulated { " (simulated)" } else { "" },
        &mrtd[..mrtd.len().min(16)],
        claims.encryption_public_key
    ),
    );
    if !claims.platform.gpus.is_empty() || !claims.platform.nvswitches.is_empty() {
        let g: Vec<String> = claims
            .platform
            .gpus
            .iter()
            .map(|g| {
                format!(
                    "GPU {} driver {} VBIOS {}",
                    g.index, g.driver_version, g.vbios_version
                )
            })
            .chain(claims.platform.nvswitches.iter().map(|s| {
                format!(
                    "NVSwitch {} firmware {}{}",
                    s.index,
                    s.vbios_version,
                    if s.tnvl_mode && s.locked {
                        " TNVL locked"
                    } else {
                        ""
                    }
                )
            }))
            .collect();
        say(
            "owners",
            &format!(
                "the certificate carries the attested devices: {}",
                g.join("; ")
            ),
        );
    }
    if let Some(t) = &claims.platform.tpm {
        let pcrs: Vec<String> = t
            .pcrs
            .iter()
            .flat_map(|(bank, m)| m.keys().map(move |i| format!("{bank}:{i}")))
            .collect();
        say(
            "owners",
            &format!(
                "the certificate also carries the vTPM's quoted PCRs ({}){}",
                pcrs.join(" "),
                match &t.event_log_sha256 {
                    Some(d) => format!(
                        ", explained by the firmware event log (sha256 {}...) the CA replayed",
                        &d[..16]
                    ),
                    None => String::new(),
                }
            ),
        );
    }
    // For reviewers (and the tests): what the CA certified.
    fs::write(
        p.dir.join("certified-claims.json"),
        serde_json::to_vec_pretty(claims)?,
    )?;
    let digest = env.digest();
    for s in sealed {
        let owner = if s.name == "engine" {
            &parties[0]
        } else if s.name == "lab" {
            &parties[1]
        } else {
            &parties[2]
        };
        let ctx = GrantContext {
            order_digest: digest,
            component_name: s.name.to_owned(),
            component_sha256: s.sha256,
        };
        let mut g = seal_grant(&recipient, &s.key, &ctx, &mut SystemRng)
            .map_err(|e| anyhow!("{}: {e}", e.code()))?;
        if tamper == Some(Tamper::Grant) && s.name == "clinic" {
            let i = g.len() / 2;
            g[i] ^= 0x80;
            say(
                "tamper",
                "one byte of the clinic's grant is flipped in transit",
            );
        }
        fs::write(p.grants.join(format!("{}.grant", s.name)), g)?;
        say(
            "grant",
            &format!(
                "{:<12} grants the {} key to the CVM for order {}",
                owner.name,
                s.name,
                &hex::encode(digest)[..16]
            ),
        );
    }
    let mut order_json = env.to_json();
    if tamper == Some(Tamper::Order) {
        let mut v: serde_json::Value = serde_json::from_slice(&order_json)?;
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = v["payload"].as_str().context("payload")?;
        let mut bytes = b64.decode(payload)?;
        if let Some(pos) = bytes.windows(12).position(|w| w == b"memory_mb = ") {
            bytes[pos + 12] = b'9'; // 512 -> 912: more memory than all parties signed for
        }
        v["payload"] = serde_json::Value::String(b64.encode(bytes));
        order_json = serde_json::to_vec(&v)?;
        say(
            "tamper",
            "the host edits the order's memory limit after it was signed",
        );
    }
    if tamper == Some(Tamper::Dataset) {
        let path = p.components.join("lab.sealed");
        let mut b = fs::read(&path)?;
        let i = b.len() / 2;
        b[i] ^= 0x01;
        fs::write(&path, b)?;
        say(
            "tamper",
            "the host flips one byte of the lab's sealed dataset",
        );
    }
    fs::write(p.input.join(source::ORDER), order_json)?;
    fs::write(p.input.join(source::READY), b"")?;
    say(
        "order",
        "order, grants and sealed components placed in the CVM's input directory",
    );
    Ok(())
}

fn locate_bins() -> Result<Bins> {
    let me = std::env::current_exe().context("locating tl")?;
    let dir = me.parent().context("tl has no directory")?;
    let find = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            bail!("{} not found next to tl: build the workspace binaries first (./scripts/demo does: cargo build --release --bins)", p.display())
        }
    };
    Ok(Bins {
        loader: find("trusted-loader")?,
        ca: find("tl-ca")?,
        engine: find("tl-demo-engine")?,
    })
}

fn leftover_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(_) => out.push(path.display().to_string()),
                Err(_) => {}
            }
        }
    }
    out
}

/// The halt code from the loader's JSON log line, if it halted.
pub fn read_halt_code(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        v.get("halt")
            .and_then(|h| h.get("code").or(Some(h)))
            .or_else(|| v.get("code"))
            .and_then(|c| c.as_str())
            .map(str::to_owned)
    })
}

/// The loader's `{"event":"timing"}` log line, if it got that far.
fn read_overhead(log: &Path) -> Option<f64> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v.get("event")?.as_str()? == "timing").then(|| v.get("overhead_to_launch_ms")?.as_f64())?
    })
}
