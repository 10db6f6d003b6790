//! The loader's path for one boot and one order (DESIGN "The loader's path").
//!
//! Every stage returns `Result<_, Halt>`; [`run`] threads them in order and the
//! caller sends any `Err` to the one halt path. The launch step is reachable
//! only after every check before it returned `Ok`: there is no flag, retry or
//! fallback between a failed check and [`crate::sandbox::launch`].
//!
//! Decisions are made by the pure crates (`tl-policy` appraises, `tl-seal`
//! authenticates and hashes, `tl-evidence` binds); this module moves bytes
//! between them, the devices and the CA.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::STANDARD, Engine};
use tl_ca::report::{ComponentRecord, ExitStatus, OrderRef, OutputRecord, RunReport, Timestamp};
use tl_ca::server::EnrollRequest;
use tl_evidence::binding::Binding;
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_policy::{appraise, AppraisalContext, ObservedComponent, SignedOrder, VerifiedOrder};
use tl_seal::digest::DigestSet;
use tl_seal::grant::{open_grant, GrantContext, RecipientPublicKey};
use tl_seal::stream::{open_stream, OpenOptions};

use crate::cel::Event;
use crate::client::CaClient;
use crate::config::{KeyMode, LoaderConfig, TeeChoice};
use crate::halt::{Halt, HaltCode, HaltContext};
use crate::keys::LoaderKeys;
use crate::sandbox::{self, EngineExit, LaunchOptions, LaunchSpec};
use crate::tsm::{TsmClient, TsmProvider};
use crate::workdir::WorkDir;

/// The provider name the simulated TEE writes into its configfs-tsm-shaped
/// directory. A loader configured for real TDX expects `tdx_guest` and so
/// refuses a simulated directory.
pub const SIM_PROVIDER: &str = "sim_tdx_guest";

/// File names in the order source directory.
pub mod source {
    /// The signed order (DSSE envelope).
    pub const ORDER: &str = "order.dsse.json";
    /// Sealed components: `components/<name>.sealed`.
    pub const COMPONENTS: &str = "components";
    /// Key grants: `grants/<name>.grant`.
    pub const GRANTS: &str = "grants";
    /// Written last by whoever places the order: the directory is complete.
    pub const READY: &str = "READY";
}

/// File names in the publish directory.
pub mod publish {
    /// The loader's certificate chain (PEM).
    pub const CERTIFICATE: &str = "certificate.pem";
    /// The loader's encryption public key (`x25519:<base64>`).
    pub const ENCRYPTION_KEY: &str = "encryption.pub";
    /// The claims the CA certified (JSON).
    pub const CLAIMS: &str = "claims.json";
    /// The evidence bundle the CA verified (JSON; its SHA-256 is the
    /// certificate's evidence digest), for `tl evidence verify`.
    pub const EVIDENCE: &str = "evidence.json";
    /// The CA's enrollment nonce that the evidence answers (hex), for
    /// `tl evidence verify --nonce` (GPU and NVSwitch nonces derive from it).
    pub const NONCE: &str = "nonce";
}

/// What a successful run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The signed run report as submitted.
    pub report: tl_ca::report::SignedRunReport,
    /// The CA log's receipt for it.
    pub inclusion: tl_ca::server::LogInclusion,
    /// Where the receipt and report were written.
    pub report_path: PathBuf,
}

/// One line of progress per stage, for the console.
pub type Progress<'a> = &'a mut dyn FnMut(&str, &str);

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn io_halt(code: HaltCode, what: &str, path: &Path, e: impl std::fmt::Display) -> Halt {
    Halt::new(code, format!("{what} {}: {e}", path.display()))
}

/// Run the whole path. On `Err`, the caller halts with `ctx` (which holds the
/// wipes this function registered).
pub fn run(
    cfg: &LoaderConfig,
    ctx: &mut HaltContext,
    progress: Progress,
) -> Result<RunSummary, Halt> {
    let started = now_unix();
    let clock = Instant::now();
    let mut excluded = Duration::ZERO;
    let mut stages: Vec<(&str, f64)> = Vec::new();
    let mut mark = clock;
    let mut lap = |name: &'static str, stages: &mut Vec<(&str, f64)>| {
        stages.push((name, mark.elapsed().as_secs_f64() * 1000.0));
        mark = Instant::now();
    };
    // The hardware register (TDX RTMR3) first, so every event reaches it.
    crate::tdx::install(cfg, ctx)?;
    let started_ev = ctx.event_log.record(Event::LoaderStarted {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        config_sha256: hex::encode(tl_ca::sha256(cfg.source_text().as_bytes())),
    });
    extend(ctx, &started_ev)?;

    // 1. TEE and keys. Local keys exist before the quote so the quote binds them.
    let provider = provider_for(cfg)?;
    let _sim_tee = start_sim_tee(cfg, progress)?;
    // The TPM, when configured: its sealed seed, the firmware log's replay
    // and the quote beside the CPU evidence all go through this one handle.
    let mut tpm = open_tpm(cfg, progress)?;
    let firmware_log = record_firmware_log(cfg, ctx, progress, tpm.as_mut())?;
    // TDX on a kernel without configfs-tsm: the TDREPORT, quoted by the QGS.
    let tdx_via_qgs = provider == TsmProvider::Tdx && !cfg.tsm_root.exists();
    let tee_line = if tdx_via_qgs {
        format!(
            "tdx without configfs-tsm (no {}): TDREPORT quoted by the host's QGS",
            cfg.tsm_root.display()
        )
    } else {
        format!(
            "{} via configfs-tsm at {}",
            provider.as_str(),
            cfg.tsm_root.display()
        )
    };
    progress("tee", &tee_line);
    let (keys, key_source) = match cfg.key_mode {
        KeyMode::Ephemeral => (LoaderKeys::ephemeral()?, "ephemeral"),
        // Never an ephemeral fallback: a failed derivation halts.
        KeyMode::SnpDerived => {
            let (enc, _) =
                crate::snp::sealed_encryption_key_from(Path::new(crate::snp::SEV_GUEST_DEVICE))?;
            (
                LoaderKeys::with_encryption(enc)?,
                "SEV-SNP derived (sealed)",
            )
        }
        // Never an ephemeral fallback either: PCRs that moved halt here.
        KeyMode::TpmSealed => {
            let (Some(t), Some(sec)) = (tpm.as_mut(), cfg.tpm.as_ref()) else {
                return Err(Halt::new(
                    HaltCode::KeyDerivationFailed,
                    "key_mode = \"tpm-sealed\" without a TPM",
                ));
            };
            (tpm_sealed_keys(t, sec)?, "TPM-sealed")
        }
    };
    lap("keys", &mut stages);
    let (csr_der, spki_der) = keys.csr()?;
    let enc_pub = keys.encryption_public_raw();
    lap("csr", &mut stages);
    progress(
        "keys",
        &format!(
            "ephemeral signing key (P-256) and {key_source} encryption key {}",
            keys.encryption().public_key().to_text()
        ),
    );

    // 2. Evidence bound to the CA's nonce and both public keys.
    let ca_root_pem = fs::read_to_string(&cfg.ca_root)
        .map_err(|e| io_halt(HaltCode::ConfigInvalid, "reading CA root", &cfg.ca_root, e))?;
    let ca_root_der = tl_ca::certs::pem_to_certs(&ca_root_pem)
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| Halt::new(HaltCode::ConfigInvalid, "ca_root holds no certificate"))?;
    let client = CaClient::with_tls_name(
        &cfg.ca_url,
        cfg.ca_tls_name.as_deref(),
        &ca_root_der,
        Duration::from_secs(cfg.ca_timeout_seconds),
        Duration::from_secs(cfg.ca_timeout_seconds.min(10)),
    )?;
    let relay = cfg
        .publish_url
        .as_ref()
        .map(|_| crate::relay::client(&ca_root_der, Duration::from_secs(cfg.ca_timeout_seconds)))
        .transpose()?;
    lap("ca_client", &mut stages);
    let nonce = client.nonce()?;
    lap("ca_nonce", &mut stages);
    let nonce_bytes = STANDARD
        .decode(&nonce.nonce)
        .map_err(|e| Halt::new(HaltCode::CaResponseInvalid, format!("nonce: {e}")))?;
    // GPU evidence answers nonces derived from the CA's and is bound into
    // the CPU quote below; any GPU present but not attested halts here.
    let mut gpus = crate::gpu::collect(&cfg.gpu, &nonce_bytes)?;
    if cfg.gpu.simulated.is_some() {
        progress(
            "gpu",
            &format!(
                "SIMULATED: {} GPU and {} NVSwitch report(s) from the simulated TEE's seed (no PCI scan, NVML or NSCQ)",
                gpus.evidence.len(),
                gpus.nvswitches.len()
            ),
        );
    } else {
        progress(
            "gpu",
            &format!(
                "{} NVIDIA GPU(s) on the PCI bus, {} attestation report(s) in CC mode{}",
                gpus.inventory.len(),
                gpus.evidence.len(),
                if gpus.nvswitches.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} NVSwitch report(s) in trusted NVLink mode",
                        gpus.nvswitches.len()
                    )
                }
            ),
        );
    }
    // The evidence moves into the bundle; the session stays for set_ready.
    let bundle_gpus = std::mem::take(&mut gpus.evidence);
    let bundle_switches = std::mem::take(&mut gpus.nvswitches);
    let gpu_digest = tl_evidence::binding::device_evidence_digest(
        bundle_gpus.iter().map(|g| g.report.as_slice()),
        bundle_switches.iter().map(|s| s.report.as_slice()),
    );
    // The vTPM's AK is bound into the CPU report data; its quote then answers
    // that same report data (composite evidence).
    let tpm_ak = match (tpm.as_mut(), cfg.tpm.as_ref()) {
        (Some(t), Some(sec)) if sec.quote => Some(
            t.create_ak(crate::tpm::Hierarchy::Endorsement)
                .map_err(|e| e.halt(HaltCode::EvidenceCollectFailed, "TPM attestation key"))?,
        ),
        _ => None,
    };
    let report_data = Binding {
        nonce: &nonce_bytes,
        signing_public_key: &spki_der,
        encryption_public_key: &enc_pub,
        gpu_evidence_digest: gpu_digest,
        tpm_ak_digest: tpm_ak
            .as_ref()
            .map(|ak| tl_evidence::binding::tpm_ak_digest(&ak.public)),
    }
    .report_data();
    let tpm_evidence = match (tpm.as_mut(), tpm_ak, cfg.tpm.as_ref()) {
        (Some(t), Some(ak), Some(sec)) => {
            let ev = t.quote_evidence(&ak, &report_data, &sec.quote_selection());
            let _ = t.flush(ak.handle);
            let ev = ev.map_err(|e| e.halt(HaltCode::EvidenceCollectFailed, "TPM quote"))?;
            let with_log = if firmware_log.is_some() {
                ", with the firmware event log"
            } else {
                ""
            };
            progress(
                "tpm",
                &format!(
                    "quoted SHA-256 PCRs {:?} over the report data{with_log}",
                    sec.pcrs
                ),
            );
            Some(tl_evidence::bundle::TpmEvidence {
                quote: ev.to_json(),
                event_log: firmware_log.unwrap_or_default(),
            })
        }
        _ => None,
    };
    let (cpu, what) = if provider == TsmProvider::Snp {
        let ev = crate::snp::collect_evidence(
            &cfg.tsm_root,
            Path::new(crate::snp::SEV_GUEST_DEVICE),
            &report_data,
        )?;
        let what = format!(
            "SEV-SNP report via {:?}, {} certificate(s){}",
            ev.source,
            ev.cpu.certificates.len(),
            ev.table_note.map(|n| format!(" ({n})")).unwrap_or_default()
        );
        (ev.cpu, what)
    } else if tdx_via_qgs {
        let qgs = cfg.qgs_address()?;
        let device = cfg
            .tdx_guest_device
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::tdx::GUEST_DEVICE));
        lap("gpu_and_binding", &mut stages);
        let quote = crate::tdx::quote_via_qgs(
            &device,
            &qgs,
            &report_data,
            Duration::from_secs(cfg.ca_timeout_seconds),
        )?;
        lap("quote", &mut stages);
        let what = format!(
            "TDX quote ({} bytes, TDREPORT from {} quoted by the QGS at {qgs})",
            quote.len(),
            device.display()
        );
        let cpu = CpuEvidence {
            kind: CpuEvidenceKind::TdxQuote,
            quote,
            certificates: vec![],
        };
        (cpu, what)
    } else {
        let tsm = TsmClient::new(cfg.tsm_root.clone(), provider.clone());
        lap("gpu_and_binding", &mut stages);
        let report = tsm.get_report(&report_data).map_err(Halt::from)?;
        lap("quote", &mut stages);
        let what = format!(
            "TDX quote ({} bytes, generation {})",
            report.outblob.len(),
            report.generation
        );
        let cpu = CpuEvidence {
            kind: CpuEvidenceKind::TdxQuote,
            quote: report.outblob,
            certificates: vec![],
        };
        (cpu, what)
    };
    if provider == TsmProvider::Tdx {
        check_ccel(cfg, &cpu.quote, ctx, progress)?;
    }
    let bundle = EvidenceBundle {
        gpus: bundle_gpus,
        nvswitches: bundle_switches,
        tpm: tpm_evidence,
        ..EvidenceBundle::new(cpu)
    };
    progress(
        "evidence",
        &format!(
            "{what} binding nonce, signing key, encryption key, {} GPU and {} NVSwitch report(s){}",
            bundle.gpus.len(),
            bundle.nvswitches.len(),
            if bundle.tpm.is_some() {
                " and the vTPM's attestation key"
            } else {
                ""
            }
        ),
    );

    // 3. Enrollment: the CA verifies, appraises and certifies.
    let enrolled = client.enroll(&EnrollRequest {
        nonce: nonce.nonce.clone(),
        evidence: bundle.clone(),
        csr: STANDARD.encode(&csr_der),
        encryption_public_key: keys.encryption().public_key().to_text(),
    })?;
    let leaf = tl_ca::certs::verify_leaf_pem(&enrolled.certificate_pem, &ca_root_der, now_unix())
        .map_err(|e| Halt::new(HaltCode::CaResponseInvalid, format!("certificate: {e}")))?;
    if leaf.spki_der != spki_der {
        return Err(Halt::new(
            HaltCode::CaResponseInvalid,
            "certificate names another signing key",
        ));
    }
    if leaf.claims.encryption_key_bytes().ok() != Some(enc_pub) {
        return Err(Halt::new(
            HaltCode::CaResponseInvalid,
            "certificate names another encryption key",
        ));
    }
    if leaf.claims.evidence_digest != bundle.digest() {
        return Err(Halt::new(
            HaltCode::CaResponseInvalid,
            "certificate names other evidence",
        ));
    }
    let claims = leaf.claims.platform.clone();
    progress(
        "enroll",
        &format!(
            "certificate issued by the CA (evidence {}, TCB {:?}{})",
            &hex::encode(leaf.claims.evidence_digest)[..16],
            claims.tcb_status,
            if claims.simulated {
                ", SIMULATED TEE"
            } else {
                ""
            }
        ),
    );
    lap("enroll", &mut stages);
    publish_identity(
        cfg,
        &enrolled.chain_pem,
        &keys,
        &enrolled.claims,
        &bundle,
        &nonce_bytes,
    )?;
    relay_publish(
        cfg,
        relay.as_ref(),
        &[
            publish::EVIDENCE,
            publish::NONCE,
            publish::CLAIMS,
            publish::ENCRYPTION_KEY,
            publish::CERTIFICATE,
        ],
        &cfg.publish_dir,
        "",
        HaltCode::OrderUnavailable,
    )?;
    progress(
        "publish",
        &format!(
            "certificate and encryption key in {}",
            cfg.publish_dir.display()
        ),
    );

    // 4. The order: wait, verify signatures, appraise, register with the CA.
    let waited = Instant::now();
    let order_bytes = wait_for_order(cfg, relay.as_ref(), progress)?;
    excluded += waited.elapsed();
    let verified = SignedOrder::verify(&order_bytes).map_err(|e| {
        let code = match e.code() {
            "ORDER_BAD_SIGNATURE" | "ORDER_MISSING_SIGNER" | "ORDER_UNKNOWN_SIGNER" => {
                HaltCode::OrderSignature
            }
            _ => HaltCode::OrderInvalid,
        };
        Halt::new(code, format!("{}: {e}", e.code()))
    })?;
    let VerifiedOrder { order, digest } = &verified;
    let floor = enrolled.order_floors.get(order.family()).copied();
    let verdict = appraise(
        order,
        &claims,
        &AppraisalContext {
            now_unix: now_unix(),
            version_floor: floor,
        },
    );
    if !verdict.passed() {
        let codes: Vec<&str> = verdict.codes().into_iter().map(|c| c.as_str()).collect();
        let code = if codes.iter().all(|c| *c == "ORDER_EXPIRED") {
            HaltCode::OrderExpired
        } else if codes.iter().all(|c| *c == "ORDER_ROLLBACK") {
            HaltCode::OrderRollback
        } else {
            HaltCode::PlatformMismatch
        };
        return Err(Halt::new(code, verdict.to_string()));
    }
    let accept = tl_ca::orders::sign_accept(
        &tl_ca::orders::OrderAccept {
            family: order.family().to_owned(),
            version: order.version(),
            order_digest: *digest,
        },
        keys.signing(),
        &enrolled.certificate_pem,
    )
    .map_err(|e| Halt::new(HaltCode::OrderInvalid, format!("signing acceptance: {e}")))?;
    lap("order_wait_and_verify", &mut stages);
    client.accept_order(&accept)?;
    lap("ca_accept", &mut stages);
    // The appraisal passed: only now may the driver accept work on the GPUs.
    if let Some(session) = &gpus.session {
        session.set_ready()?;
        progress("gpu", "GPUs set ready (confidential-computing ready state)");
    }
    let digest_ev = ctx.event_log.record(Event::order_accepted(digest));
    extend(ctx, &digest_ev)?;
    progress(
        "order",
        &format!(
            "{} v{} (digest {}) signed by {}; platform appraisal passed; accepted by the CA",
            order.family(),
            order.version(),
            &hex::encode(digest)[..16],
            order
                .signers()
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    // 5. Components: grant -> stream-decrypt + hash into tmpfs -> compare -> event.
    lap("event_log", &mut stages);
    let work = Arc::new(Mutex::new(
        WorkDir::create(&cfg.work_base, cfg.tmpfs).map_err(Halt::from)?,
    ));
    {
        let w = Arc::clone(&work);
        ctx.register_wipe("work directory", move || {
            let mut g = w.lock().unwrap_or_else(|p| p.into_inner());
            g.wipe().map(|_| ()).map_err(|e| e.to_string())
        });
    }
    let (comp_dir, out_dir) = {
        let g = work.lock().unwrap_or_else(|p| p.into_inner());
        // The engine (uid 65534) must traverse the work root to reach its
        // read-only components and its outputs; it cannot list it.
        fs::set_permissions(g.root(), fs::Permissions::from_mode(0o711))
            .map_err(|e| io_halt(HaltCode::WorkdirFailed, "chmod", g.root(), e))?;
        (g.components(), g.outputs())
    };
    lap("workdir", &mut stages);
    let mut records = Vec::new();
    for c in order.components() {
        let t = Instant::now();
        let pinned = c
            .sha256
            .as_ref()
            .map(|h| h.0)
            .or_else(|| c.tree_sha256.as_ref().map(|h| h.0))
            .ok_or_else(|| {
                Halt::new(
                    HaltCode::OrderInvalid,
                    format!("component {} pins no 32-byte digest", c.name.as_str()),
                )
            })?;
        let grant_path = cfg
            .order_source_dir
            .join(source::GRANTS)
            .join(format!("{}.grant", c.name.as_str()));
        let grant = fs::read(&grant_path)
            .map_err(|e| io_halt(HaltCode::GrantInvalid, "reading grant", &grant_path, e))?;
        let gctx = GrantContext {
            order_digest: *digest,
            component_name: c.name.as_str().to_owned(),
            component_sha256: pinned,
        };
        let key = open_grant(&grant, keys.encryption(), &gctx).map_err(|e| {
            Halt::new(
                HaltCode::GrantInvalid,
                format!("{} ({}): {e}", c.name.as_str(), e.code()),
            )
        })?;
        let sealed_path = cfg
            .order_source_dir
            .join(source::COMPONENTS)
            .join(format!("{}.sealed", c.name.as_str()));
        let dest = comp_dir.join(c.mount());
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| io_halt(HaltCode::WorkdirFailed, "creating", parent, e))?;
        }
        let summary = {
            let sealed = File::open(&sealed_path)
                .map_err(|e| io_halt(HaltCode::ComponentCorrupt, "opening", &sealed_path, e))?;
            let mut r = BufReader::with_capacity(1 << 20, sealed);
            let out = File::create(&dest)
                .map_err(|e| io_halt(HaltCode::WorkdirFailed, "creating", &dest, e))?;
            // Room for the size the order pins (signed; the sealed file's
            // header is the host's claim until its segments authenticate).
            crate::workdir::preallocate(&out, c.size).map_err(|e| {
                Halt::new(
                    HaltCode::WorkdirFailed,
                    format!(
                        "reserving {} bytes in the work area for {}: {e}",
                        c.size,
                        c.name.as_str()
                    ),
                )
            })?;
            let mut w = BufWriter::with_capacity(1 << 20, out);
            let set = DigestSet {
                sha256: true,
                sha384: c.sha384.is_some(),
                tree_sha256: c.tree_sha256.is_some(),
            };
            let s = open_stream(
                &key,
                &mut r,
                &mut w,
                OpenOptions {
                    digests: set,
                    hash_threads: available_cores(),
                },
            )
            .map_err(|e| {
                Halt::new(
                    HaltCode::ComponentCorrupt,
                    format!("{} ({}): {e}", c.name.as_str(), e.code()),
                )
            })?;
            w.flush()
                .map_err(|e| io_halt(HaltCode::WorkdirFailed, "writing", &dest, e))?;
            s
        };
        let sha256 = summary
            .digests
            .sha256
            .ok_or_else(|| Halt::new(HaltCode::ComponentCorrupt, "no SHA-256 computed"))?;
        order
            .check_component(&ObservedComponent {
                name: c.name.as_str().to_owned(),
                size: summary.plaintext_len,
                sha256,
                sha384: summary.digests.sha384,
                tree_sha256: summary.digests.tree_sha256,
            })
            .map_err(|fails| {
                let text: Vec<String> = fails
                    .iter()
                    .map(|f| format!("{}: {}", f.code(), f.detail))
                    .collect();
                Halt::new(
                    HaltCode::ComponentDigestMismatch,
                    format!("{}: {}", c.name.as_str(), text.join("; ")),
                )
            })?;
        let mode = if c.executable { 0o555 } else { 0o444 };
        fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
            .map_err(|e| io_halt(HaltCode::WorkdirFailed, "chmod", &dest, e))?;
        let ev = ctx.event_log.record(Event::component(
            c.name.as_str(),
            c.role.as_str(),
            &sha256,
            summary.digests.sha384.as_ref(),
        ));
        extend(ctx, &ev)?;
        excluded += t.elapsed();
        records.push(ComponentRecord {
            name: c.name.as_str().to_owned(),
            sha256,
            size: summary.plaintext_len,
        });
        progress(
            "component",
            &format!(
                "{} ({}, {} bytes) decrypted and measured in {} ms: sha256 {} matches the order",
                c.name.as_str(),
                c.role.as_str(),
                summary.plaintext_len,
                t.elapsed().as_millis(),
                &hex::encode(sha256)[..16]
            ),
        );
    }

    // 6. Launch. Only reachable when every check above passed.
    let comp_s = comp_dir.to_string_lossy().into_owned();
    let out_s = out_dir.to_string_lossy().into_owned();
    let launch = order.launch();
    let spec = LaunchSpec {
        argv: launch.argv_expanded(&comp_s, &out_s),
        env: launch.env_expanded(&comp_s, &out_s).into_iter().collect(),
        workdir: PathBuf::from(launch.workdir_expanded(&comp_s, &out_s)),
        components_dir: comp_dir.clone(),
        outputs_dir: out_dir.clone(),
        memory_mb: launch.memory_mb,
        cpu_seconds: launch.cpu_seconds,
        timeout: Duration::from_secs(launch.timeout_seconds),
    };
    let ev = ctx.event_log.record(Event::Launch {
        argv: spec.argv.clone(),
    });
    extend(ctx, &ev)?;
    progress(
        "launch",
        &format!(
            "engine as uid 65534 in new PID and mount namespaces: {}",
            spec.argv.join(" ")
        ),
    );
    lap("components", &mut stages);
    // The loader's own cost up to the launch: everything but waiting for the
    // owners and decrypting + hashing the components (which scale with them).
    let overhead = clock.elapsed().saturating_sub(excluded);
    println!(
        "{}",
        serde_json::json!({
            "event": "timing",
            "overhead_to_launch_ms": overhead.as_secs_f64() * 1000.0,
            "stages_ms": stages.iter().map(|(n, t)| serde_json::json!({ "stage": n, "ms": t })).collect::<Vec<_>>(),
            "excluded_ms": excluded.as_secs_f64() * 1000.0,
        })
    );
    let opts = LaunchOptions::current_exe().map_err(|e| {
        Halt::new(
            HaltCode::LaunchFailed,
            format!("locating the loader binary: {e}"),
        )
    })?;
    let outcome = sandbox::launch(&spec, &opts)?;
    for line in outcome.stdout_tail.lines() {
        progress("engine", line);
    }
    let exit_status = match outcome.exit {
        EngineExit::Exited(n) => ExitStatus::Code(n),
        EngineExit::Signaled(s) => ExitStatus::Signal(s),
        EngineExit::TimedOut => ExitStatus::Signal(9),
    };
    let outcome = outcome.into_result()?;
    progress("engine", &format!("exited 0 after {} ms", outcome.wall_ms));

    // 7. Outputs, sealed to the order's recipients; then the wipe.
    let mut outputs = Vec::new();
    fs::create_dir_all(&cfg.output_dir)
        .map_err(|e| io_halt(HaltCode::OutputFailed, "creating", &cfg.output_dir, e))?;
    for o in order.outputs() {
        let src = out_dir.join(o.path.as_str());
        let meta = fs::symlink_metadata(&src)
            .map_err(|e| io_halt(HaltCode::OutputFailed, "engine output", &src, e))?;
        if !meta.is_file() {
            return Err(Halt::new(
                HaltCode::OutputFailed,
                format!("output {} is not a regular file", o.name.as_str()),
            ));
        }
        if meta.len() > o.max_bytes {
            return Err(Halt::new(
                HaltCode::OutputFailed,
                format!(
                    "output {} has {} bytes, over its limit {}",
                    o.name.as_str(),
                    meta.len(),
                    o.max_bytes
                ),
            ));
        }
        let mut recipients = Vec::new();
        for r in &o.recipients {
            let key_text = order
                .party(r.as_str())
                .and_then(|p| p.encryption_key.as_ref())
                .ok_or_else(|| {
                    Halt::new(
                        HaltCode::OutputFailed,
                        format!("recipient {} has no encryption key", r.as_str()),
                    )
                })?;
            recipients.push(
                RecipientPublicKey::from_text(key_text.as_str()).map_err(|e| {
                    Halt::new(
                        HaltCode::OutputFailed,
                        format!("recipient {}: {e}", r.as_str()),
                    )
                })?,
            );
        }
        let sealed_path = cfg.output_dir.join(format!("{}.sealed", o.name.as_str()));
        let sealed = {
            let mut r = BufReader::new(
                File::open(&src)
                    .map_err(|e| io_halt(HaltCode::OutputFailed, "opening", &src, e))?,
            );
            let mut w = BufWriter::new(
                File::create(&sealed_path)
                    .map_err(|e| io_halt(HaltCode::OutputFailed, "creating", &sealed_path, e))?,
            );
            let s = tl_seal::output::seal_to_recipients(
                &recipients,
                *digest,
                o.name.as_str(),
                meta.len(),
                &mut r,
                &mut w,
                &mut tl_seal::grant::SystemRng,
            )
            .map_err(|e| {
                Halt::new(
                    HaltCode::OutputFailed,
                    format!("sealing {}: {e}", o.name.as_str()),
                )
            })?;
            w.flush()
                .map_err(|e| io_halt(HaltCode::OutputFailed, "writing", &sealed_path, e))?;
            s
        };
        for (party, (_, grant)) in o.recipients.iter().zip(&sealed.grants) {
            let p = cfg
                .output_dir
                .join(format!("{}.{}.grant", o.name.as_str(), party.as_str()));
            fs::write(&p, grant).map_err(|e| io_halt(HaltCode::OutputFailed, "writing", &p, e))?;
        }
        let sealed_bytes = fs::read(&sealed_path)
            .map_err(|e| io_halt(HaltCode::OutputFailed, "reading", &sealed_path, e))?;
        outputs.push(OutputRecord {
            name: o.name.as_str().to_owned(),
            recipients: o.recipients.iter().map(|r| r.as_str().to_owned()).collect(),
            plaintext_sha256: sealed.context.component_sha256,
            sealed_sha256: tl_ca::sha256(&sealed_bytes),
        });
        progress(
            "output",
            &format!(
                "{} sealed to {} ({})",
                o.name.as_str(),
                o.recipients
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                sealed_path.display()
            ),
        );
    }
    let wiped = work
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .wipe()
        .map_err(Halt::from)?;
    progress(
        "wipe",
        &format!(
            "{} plaintext files ({} bytes) zeroed and removed; tmpfs unmounted",
            wiped.files_zeroed, wiped.bytes_zeroed
        ),
    );

    // 8. The run report, signed by the certified key and logged by the CA.
    let report = RunReport {
        loader_version: env!("CARGO_PKG_VERSION").to_owned(),
        evidence_digest: bundle.digest(),
        certificate_pem: enrolled.certificate_pem.clone(),
        order: OrderRef {
            family: order.family().to_owned(),
            version: order.version(),
            digest: *digest,
        },
        components: records,
        outputs,
        started_at: Timestamp(i64::try_from(started).unwrap_or(i64::MAX)),
        finished_at: Timestamp(i64::try_from(now_unix()).unwrap_or(i64::MAX)),
        exit_status: Some(exit_status),
        wipe_done: true,
        event_log_sha256: tl_ca::sha256(&ctx.event_log.to_json()),
        halt: None,
    };
    let signed = tl_ca::report::sign_report(&report, keys.signing(), &enrolled.chain_pem)
        .map_err(|e| Halt::new(HaltCode::ReportFailed, format!("signing report: {e}")))?;
    let inclusion = client.submit_report(&signed)?;
    let receipt = serde_json::json!({ "signed_report": signed, "log": inclusion, "event_log": serde_json::from_slice::<serde_json::Value>(&ctx.event_log.to_json()).unwrap_or_default() });
    let text =
        serde_json::to_vec_pretty(&receipt).map_err(|e| Halt::new(HaltCode::ReportFailed, e))?;
    if let Some(parent) = cfg.report_out.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| io_halt(HaltCode::ReportFailed, "creating", parent, e))?;
    }
    fs::write(&cfg.report_out, text)
        .map_err(|e| io_halt(HaltCode::ReportFailed, "writing", &cfg.report_out, e))?;
    progress(
        "report",
        &format!(
            "signed run report logged at index {} (tree size {}); written to {}",
            inclusion.index,
            inclusion.tree_size,
            cfg.report_out.display()
        ),
    );
    let outputs: Vec<String> = order
        .outputs()
        .iter()
        .flat_map(|o| {
            let n = o.name.as_str();
            std::iter::once(format!("{n}.sealed")).chain(
                o.recipients
                    .iter()
                    .map(move |r| format!("{n}.{}.grant", r.as_str())),
            )
        })
        .collect();
    let names: Vec<&str> = outputs.iter().map(String::as_str).collect();
    relay_publish(
        cfg,
        relay.as_ref(),
        &names,
        &cfg.output_dir,
        "outputs/",
        HaltCode::OutputFailed,
    )?;
    if let Some(name) = cfg.report_out.file_name().and_then(|n| n.to_str()) {
        if let Some(dir) = cfg.report_out.parent() {
            relay_publish(
                cfg,
                relay.as_ref(),
                &[name],
                dir,
                "report/",
                HaltCode::ReportFailed,
            )?;
        }
    }
    Ok(RunSummary {
        report: signed,
        inclusion,
        report_path: cfg.report_out.clone(),
    })
}

fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn extend(ctx: &mut HaltContext, digest: &[u8; 48]) -> Result<(), Halt> {
    ctx.extend_register(digest).map_err(|e| {
        Halt::new(
            HaltCode::EvidenceCollectFailed,
            format!("runtime register extend: {e}"),
        )
    })
}

fn provider_for(cfg: &LoaderConfig) -> Result<TsmProvider, Halt> {
    match cfg.tee {
        TeeChoice::Sim => {
            if !cfg.allow_simulation {
                return Err(Halt::new(
                    HaltCode::SimulationNotEnabled,
                    "tee = \"sim\" without allow_simulation",
                ));
            }
            Ok(TsmProvider::Named(SIM_PROVIDER.to_owned()))
        }
        TeeChoice::Tdx => Ok(TsmProvider::Tdx),
        TeeChoice::Snp => Ok(TsmProvider::Snp),
        TeeChoice::Auto => {
            if Path::new("/dev/tdx_guest").exists() {
                Ok(TsmProvider::Tdx)
            } else if Path::new(crate::snp::SEV_GUEST_DEVICE).exists() {
                Ok(TsmProvider::Snp)
            } else {
                Err(Halt::new(HaltCode::TeeUnavailable, "no supported hardware TEE found (no /dev/tdx_guest or /dev/sev-guest); the simulated TEE is never chosen automatically"))
            }
        }
    }
}

fn publish_identity(
    cfg: &LoaderConfig,
    chain_pem: &str,
    keys: &LoaderKeys,
    claims: &tl_ca::CertClaims,
    bundle: &EvidenceBundle,
    nonce: &[u8],
) -> Result<(), Halt> {
    let dir = &cfg.publish_dir;
    fs::create_dir_all(dir).map_err(|e| io_halt(HaltCode::EnrollRejected, "creating", dir, e))?;
    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, data)
            .and_then(|_| fs::rename(&tmp, &p))
            .map_err(|e| io_halt(HaltCode::EnrollRejected, "publishing", &p, e))
    };
    write(publish::EVIDENCE, &bundle.to_json())?;
    write(
        publish::NONCE,
        format!("{}\n", hex::encode(nonce)).as_bytes(),
    )?;
    write(
        publish::CLAIMS,
        &serde_json::to_vec_pretty(claims)
            .map_err(|e| Halt::new(HaltCode::CaResponseInvalid, e))?,
    )?;
    write(
        publish::ENCRYPTION_KEY,
        format!("{}\n", keys.encryption().public_key().to_text()).as_bytes(),
    )?;
    // The certificate last: its presence says the others are there.
    write(publish::CERTIFICATE, chain_pem.as_bytes())
}

fn wait_for_order(
    cfg: &LoaderConfig,
    relay: Option<&reqwest::blocking::Client>,
    progress: Progress,
) -> Result<Vec<u8>, Halt> {
    let deadline = Instant::now() + Duration::from_secs(cfg.deadline_seconds);
    if let (Some(url), Some(http)) = (&cfg.order_url, relay) {
        progress(
            "order",
            &format!(
                "waiting up to {} s for the order bundle at {url}",
                cfg.deadline_seconds
            ),
        );
        fs::create_dir_all(&cfg.order_source_dir).map_err(|e| {
            io_halt(
                HaltCode::WorkdirFailed,
                "creating",
                &cfg.order_source_dir,
                e,
            )
        })?;
        let n = crate::relay::fetch_order(http, url, &cfg.order_source_dir, deadline)?;
        progress(
            "order",
            &format!("{n} files received into {}", cfg.order_source_dir.display()),
        );
    }
    let ready = cfg.order_source_dir.join(source::READY);
    progress(
        "order",
        &format!(
            "waiting up to {} s for the order in {}",
            cfg.deadline_seconds,
            cfg.order_source_dir.display()
        ),
    );
    while !ready.exists() {
        if Instant::now() >= deadline {
            return Err(Halt::new(
                HaltCode::OrderUnavailable,
                format!(
                    "no order in {} within {} s",
                    cfg.order_source_dir.display(),
                    cfg.deadline_seconds
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = cfg.order_source_dir.join(source::ORDER);
    let meta =
        fs::metadata(&p).map_err(|e| io_halt(HaltCode::OrderUnavailable, "reading", &p, e))?;
    if meta.len() > 1 << 20 {
        return Err(Halt::new(
            HaltCode::OrderInvalid,
            "order envelope larger than 1 MiB",
        ));
    }
    fs::read(&p).map_err(|e| io_halt(HaltCode::OrderUnavailable, "reading", &p, e))
}

// ---- PID 1 mode and the relayed order source (image/README.md) ----

/// With `sim_seed_file` (only accepted with `tee = "sim"` and
/// `allow_simulation = true`), serve the simulated TEE's configfs-tsm-shaped
/// directory at `tsm_root` from inside the loader, for the life of the run.
fn start_sim_tee(
    cfg: &LoaderConfig,
    progress: Progress,
) -> Result<Option<crate::sim_tsm::SimTsmServer>, Halt> {
    let Some(seed_path) = &cfg.sim_seed_file else {
        return Ok(None);
    };
    if !(cfg.tee == TeeChoice::Sim && cfg.allow_simulation) {
        return Err(Halt::new(
            HaltCode::SimulationNotEnabled,
            "sim_seed_file without tee = \"sim\" and allow_simulation",
        ));
    }
    let seed = fs::read(seed_path)
        .map_err(|e| io_halt(HaltCode::ConfigInvalid, "reading", seed_path, e))?;
    let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
        Halt::new(
            HaltCode::ConfigInvalid,
            format!("{} must hold 32 bytes", seed_path.display()),
        )
    })?;
    let sim = tl_evidence::sim::SimTee::from_seed(seed);
    let meas = tl_evidence::sim::SimMeasurements::default();
    let quote: crate::sim_tsm::QuoteFn = Arc::new(move |rd: &[u8; 64]| sim.tdx_quote(rd, &meas));
    let server = crate::sim_tsm::SimTsmServer::start(cfg.tsm_root.clone(), SIM_PROVIDER, quote)
        .map_err(|e| io_halt(HaltCode::TeeUnavailable, "serving", &cfg.tsm_root, e))?;
    progress(
        "tee",
        &format!(
            "SIMULATED TEE served by the loader itself at {} (seed {})",
            cfg.tsm_root.display(),
            seed_path.display()
        ),
    );
    Ok(Some(server))
}

/// With `firmware_event_log`, read the firmware's TCG event log, show its
/// size and digest and record it in the event log (extended like any event).
fn record_firmware_log(
    cfg: &LoaderConfig,
    ctx: &mut HaltContext,
    progress: Progress,
    tpm: Option<&mut crate::tpm::Tpm>,
) -> Result<Option<Vec<u8>>, Halt> {
    let Some(path) = &cfg.firmware_event_log else {
        return Ok(None);
    };
    let bytes =
        fs::read(path).map_err(|e| io_halt(HaltCode::EvidenceCollectFailed, "reading", path, e))?;
    let sha256 = hex::encode(tl_ca::sha256(&bytes));
    progress(
        "firmware",
        &format!(
            "TCG event log {} ({} bytes, sha256 {sha256})",
            path.display(),
            bytes.len()
        ),
    );
    let detail = match tpm {
        Some(t) => Some(replay_firmware_log(&bytes, t)?),
        None if Path::new(crate::tpm::transport::DEFAULT_DEVICE).exists() => {
            let mut t = crate::tpm::Tpm::open(&crate::tpm::TpmTransportConfig::default())
                .map_err(|e| e.halt(HaltCode::EvidenceCollectFailed, "opening the TPM"))?;
            Some(replay_firmware_log(&bytes, &mut t)?)
        }
        None => None,
    };
    if let Some(d) = detail {
        progress("firmware", &d);
    }
    record_log_event(ctx, path, &bytes, sha256)?;
    Ok(Some(bytes))
}

/// Record a firmware log (TCG or CCEL) read from `path` in the event log,
/// extended like every event.
fn record_log_event(
    ctx: &mut HaltContext,
    path: &Path,
    bytes: &[u8],
    sha256: String,
) -> Result<(), Halt> {
    let ev = ctx.event_log.record(Event::FirmwareEventLog {
        path: path.display().to_string(),
        size: bytes.len() as u64,
        sha256,
    });
    extend(ctx, &ev)
}

/// TDX: replay the firmware's CCEL against the quote's RTMR0-2 and record
/// its digest in the event log. `tdx_ccel` names the file (it must then
/// exist); by default the ACPI table data is used when the kernel exposes it.
fn check_ccel(
    cfg: &LoaderConfig,
    quote: &[u8],
    ctx: &mut HaltContext,
    progress: Progress,
) -> Result<(), Halt> {
    let path = match &cfg.tdx_ccel {
        Some(p) => p.clone(),
        None if Path::new(crate::tdx::CCEL_DATA).exists() => PathBuf::from(crate::tdx::CCEL_DATA),
        None => {
            progress(
                "firmware",
                "no CCEL table exposed by the kernel; RTMR0-2 not replayed",
            );
            return Ok(());
        }
    };
    let bytes = fs::read(&path)
        .map_err(|e| io_halt(HaltCode::EvidenceCollectFailed, "reading", &path, e))?;
    let detail = crate::tdx::check_ccel(&bytes, quote)?;
    progress("firmware", &format!("{} ({})", detail, path.display()));
    record_log_event(ctx, &path, &bytes, hex::encode(tl_ca::sha256(&bytes)))
}

/// Open the configured TPM (`[tpm]`); `None` without one. A configured TPM
/// that cannot be opened halts.
fn open_tpm(cfg: &LoaderConfig, progress: Progress) -> Result<Option<crate::tpm::Tpm>, Halt> {
    let Some(sec) = &cfg.tpm else {
        return Ok(None);
    };
    let code = if cfg.key_mode == KeyMode::TpmSealed {
        HaltCode::KeyDerivationFailed
    } else {
        HaltCode::EvidenceCollectFailed
    };
    let transport = sec.transport();
    let t = crate::tpm::Tpm::open(&transport).map_err(|e| e.halt(code, "opening the TPM"))?;
    progress("tpm", &format!("TPM 2.0 via {transport}"));
    Ok(Some(t))
}

/// `key_mode = "tpm-sealed"`: unseal the seed and derive the encryption key.
/// A missing or damaged blob, or PCRs that moved since sealing, halt with
/// `KEY_DERIVATION_FAILED`.
fn tpm_sealed_keys(
    tpm: &mut crate::tpm::Tpm,
    sec: &crate::config::TpmSection,
) -> Result<LoaderKeys, Halt> {
    let path = sec
        .sealed_seed
        .as_deref()
        .ok_or_else(|| Halt::new(HaltCode::KeyDerivationFailed, "tpm.sealed_seed is not set"))?;
    let blob =
        fs::read(path).map_err(|e| io_halt(HaltCode::KeyDerivationFailed, "reading", path, e))?;
    let sealed = crate::tpm::SealedSeed::from_bytes(&blob)
        .map_err(|e| e.halt(HaltCode::KeyDerivationFailed, "sealed seed"))?;
    LoaderKeys::tpm_sealed(tpm, &sealed, sec.key_version)
}

/// Replay the firmware's TCG event log and compare it with the SHA-256 bank
/// of the TPM's PCRs 0..=9 (those the log covers): a log that does not
/// explain the TPM's registers halts.
fn replay_firmware_log(log: &[u8], tpm: &mut crate::tpm::Tpm) -> Result<String, Halt> {
    use tl_measured_boot::eventlog::{CompareScope, EventLog, HashAlg, Registers};
    let fail = |d: String| Halt::new(HaltCode::EvidenceCollectFailed, d);
    let parsed = EventLog::parse(log)
        .map_err(|e| fail(format!("firmware event log ({}): {e}", e.code())))?;
    let replay = parsed.replay();
    let sel = [tl_evidence::tpm::PcrSelection {
        hash_alg: HashAlg::SHA256.0,
        pcrs: (0..=9).collect(),
    }];
    let values = tpm
        .pcr_read(&sel)
        .map_err(|e| fail(format!("reading PCRs ({}): {e}", e.code())))?;
    let expected: Registers = values
        .into_iter()
        .map(|(alg, regs)| (HashAlg(alg), regs))
        .collect();
    replay
        .compare(&expected, CompareScope::LoggedRegisters)
        .map_err(|m| fail(format!("{}: {m} ({})", m.code(), m.describe("PCR"))))?;
    Ok(format!(
        "replayed {} events: matches the TPM's SHA-256 PCRs 0-9 it covers",
        parsed.events.len()
    ))
}

/// With `publish_url`, post the named files of `dir` as `<prefix><name>`.
fn relay_publish(
    cfg: &LoaderConfig,
    relay: Option<&reqwest::blocking::Client>,
    names: &[&str],
    dir: &Path,
    prefix: &str,
    code: HaltCode,
) -> Result<(), Halt> {
    let (Some(url), Some(http)) = (&cfg.publish_url, relay) else {
        return Ok(());
    };
    let mut files = Vec::new();
    for n in names {
        let p = dir.join(n);
        let b = fs::read(&p).map_err(|e| io_halt(code, "reading", &p, e))?;
        files.push((format!("{prefix}{n}"), b));
    }
    crate::relay::publish(http, url, &files, code)
}
