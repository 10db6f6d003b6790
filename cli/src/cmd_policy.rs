//! `tl policy init|sign|verify|show`: write, sign, verify and show orders.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use serde::Serialize;
use tl_policy::{check_freshness, AppraisalContext, Order, OrderError, SignedOrder, SigningKey};

/// Orders are signed policies: what a confidential VM may run, on which
/// platform, with which inputs, and who receives the outputs.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Write a commented example order to fill in.
    ///
    /// The example names two parties (engine-owner and lab), an engine and a
    /// dataset. Paste each party's `.pub` text where it says so, the sizes and
    /// digests that `tl seal` prints, then have every signer run
    /// `tl policy sign`. Expires 30 days from now.
    ///
    /// Examples:
    ///
    ///   tl policy init --out order.toml
    ///
    ///   tl policy init > order.toml
    #[command(verbatim_doc_comment)]
    Init(InitArgs),
    /// Sign an order: create an envelope from ORDER.toml, or add your
    /// signature to an existing ENVELOPE.json.
    ///
    /// The key must be the signing_key of a party listed in `signers`. Each
    /// signer signs the same payload independently; pass the envelope from
    /// one signer to the next. For TOML input the envelope defaults to
    /// ORDER.dsse.json next to it; for envelope input it is updated in place.
    ///
    /// Examples:
    ///
    ///   tl policy sign order.toml --key engine-owner.key --out order.dsse.json
    ///
    ///   tl policy sign order.dsse.json --key lab.key
    #[command(verbatim_doc_comment)]
    Sign(SignArgs),
    /// Verify that every party in `signers` signed the envelope and that
    /// the order has not expired.
    ///
    /// Prints the family, version, policy digest (SHA-256 of the signed
    /// payload, which grants and run reports name) and signers. Exits
    /// non-zero with the reason code (ORDER_MISSING_SIGNER,
    /// ORDER_BAD_SIGNATURE, ORDER_UNKNOWN_SIGNER, ORDER_EXPIRED, ...) on
    /// failure.
    ///
    /// Examples:
    ///
    ///   tl policy verify order.dsse.json
    ///
    ///   tl policy verify order.dsse.json --json --version-floor 3
    #[command(verbatim_doc_comment)]
    Verify(VerifyArgs),
    /// Show an order (envelope or TOML): components and digests, launch,
    /// outputs and platform reference values. Signatures are not checked;
    /// use `tl policy verify` for that.
    ///
    /// Examples:
    ///
    ///   tl policy show order.dsse.json
    ///
    ///   tl policy show order.toml --json
    #[command(verbatim_doc_comment)]
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write the order (default: standard output).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// ORDER.toml to start an envelope, or ENVELOPE.json to add a signature.
    #[arg(value_name = "ORDER.toml|ENVELOPE.json")]
    input: PathBuf,
    /// Your private signing key (PEM from `tl keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Where to write the envelope.
    #[arg(long, value_name = "ENVELOPE.json")]
    out: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The envelope to verify.
    #[arg(value_name = "ENVELOPE.json")]
    envelope: PathBuf,
    /// Also fail (ORDER_ROLLBACK) if the version is below this.
    #[arg(long, value_name = "VERSION")]
    version_floor: Option<u64>,
    /// Check expiry at this time (unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// An envelope or an order TOML.
    #[arg(value_name = "ENVELOPE.json|ORDER.toml")]
    input: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(c: Cmd) -> anyhow::Result<()> {
    match c {
        Cmd::Init(a) => init(a),
        Cmd::Sign(a) => sign(a),
        Cmd::Verify(a) => verify(a),
        Cmd::Show(a) => show(a),
    }
}

/// `ORDER_CODE: message`, so every error line carries the stable code.
fn coded(e: OrderError) -> anyhow::Error {
    anyhow!("{}: {e}", e.code())
}

/// Largest input file read.
const MAX_INPUT: u64 = 2 * 1024 * 1024;

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| path.display().to_string())?;
    if meta.len() > MAX_INPUT {
        anyhow::bail!("{}: larger than {MAX_INPUT} bytes", path.display());
    }
    std::fs::read(path).with_context(|| path.display().to_string())
}

fn is_envelope(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Write via a temporary file and rename, so a reader never sees half a file.
fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data).with_context(|| tmp.display().to_string())?;
    std::fs::rename(&tmp, path).with_context(|| path.display().to_string())
}

fn init(a: InitArgs) -> anyhow::Result<()> {
    let expires = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let expires = expires
        .replace_nanosecond(0)
        .unwrap_or(expires)
        .format(&time::format_description::well_known::Rfc3339)
        .context("policy init: formatting the expiry")?;
    let text = TEMPLATE.replace("@EXPIRES@", &expires);
    match &a.out {
        None => print!("{text}"),
        Some(p) => {
            crate::cmd_keygen::write_new(p, text.as_bytes(), 0o644, a.force)
                .context("policy init")?;
            #[derive(Serialize)]
            struct R {
                written: String,
                expires: String,
            }
            let r = R {
                written: p.display().to_string(),
                expires,
            };
            crate::output::emit(a.json, &r, |r| {
                println!(
                    "wrote {} (expires {}); fill in the keys and digests, then `tl policy sign`",
                    r.written, r.expires
                )
            })?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct SignReport {
    envelope: String,
    signed_by: String,
    key_id: String,
    family: String,
    version: u64,
    digest: String,
    signatures: usize,
    still_missing: Vec<String>,
}

fn sign(a: SignArgs) -> anyhow::Result<()> {
    let ctx = || format!("policy sign {}", a.input.display());
    let pem = read(&a.key).with_context(ctx)?;
    let pem = String::from_utf8(pem)
        .map_err(|_| anyhow!("{}: not a PEM file", a.key.display()))
        .with_context(ctx)?;
    let key = SigningKey::from_pem(&pem)
        .map_err(|e| anyhow!("{}: {} ({})", a.key.display(), e, e.code()))
        .with_context(ctx)?;
    let input = read(&a.input).with_context(ctx)?;
    let (signed, default_out) = if is_envelope(&input) {
        let mut s = SignedOrder::from_json(&input)
            .map_err(coded)
            .with_context(ctx)?;
        s.add_signature(&key).map_err(coded).with_context(ctx)?;
        (s, a.input.clone())
    } else {
        let text = String::from_utf8(input)
            .map_err(|_| anyhow!("not UTF-8 text"))
            .with_context(ctx)?;
        let s = SignedOrder::sign_new(&text, &key)
            .map_err(coded)
            .with_context(ctx)?;
        (s, a.input.with_extension("dsse.json"))
    };
    let out = a.out.clone().unwrap_or(default_out);
    write_atomic(&out, &signed.to_json()).with_context(ctx)?;

    // Which signers are still missing (by keyid; verification proper is `tl policy verify`).
    let have: Vec<&str> = signed
        .envelope()
        .signatures
        .iter()
        .map(|s| s.keyid.as_str())
        .collect();
    let still_missing = signed
        .order()
        .signer_keys()
        .iter()
        .filter(|(_, k)| !have.contains(&k.key_id().as_str()))
        .map(|(n, _)| n.to_string())
        .collect();
    let signer = signed
        .order()
        .signer_keys()
        .iter()
        .find(|(_, k)| *k == key.public_key())
        .map(|(n, _)| n.to_string())
        .unwrap_or_default();
    let r = SignReport {
        envelope: out.display().to_string(),
        signed_by: signer,
        key_id: key.public_key().key_id(),
        family: signed.order().family().to_string(),
        version: signed.order().version(),
        digest: hex::encode(signed.digest()),
        signatures: signed.envelope().signatures.len(),
        still_missing,
    };
    crate::output::emit(a.json, &r, |r| {
        println!("signed as {} -> {}", r.signed_by, r.envelope);
        println!(
            "order {} version {}, policy digest {}",
            r.family, r.version, r.digest
        );
        if r.still_missing.is_empty() {
            println!("all signers have signed");
        } else {
            println!("still to sign: {}", r.still_missing.join(", "));
        }
    })
}

#[derive(Serialize)]
struct SignerInfo {
    party: String,
    key: String,
    key_id: String,
}

#[derive(Serialize)]
struct VerifyReport {
    ok: bool,
    family: String,
    version: u64,
    expires: String,
    digest: String,
    signers: Vec<SignerInfo>,
}

fn signer_infos(order: &Order) -> Vec<SignerInfo> {
    order
        .signer_keys()
        .iter()
        .map(|(n, k)| SignerInfo {
            party: n.to_string(),
            key: k.to_string(),
            key_id: k.key_id(),
        })
        .collect()
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let ctx = || format!("policy verify {}", a.envelope.display());
    let bytes = read(&a.envelope).with_context(ctx)?;
    let v = SignedOrder::verify(&bytes)
        .map_err(coded)
        .with_context(ctx)?;
    let actx = AppraisalContext {
        now_unix: a.at.unwrap_or_else(now_unix),
        version_floor: a.version_floor,
    };
    let failures = check_freshness(&v.order, &actx);
    if !failures.is_empty() {
        let msg: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
        return Err(anyhow!(msg.join("; "))).with_context(ctx);
    }
    let r = VerifyReport {
        ok: true,
        family: v.order.family().to_string(),
        version: v.order.version(),
        expires: v.order.expires().to_string(),
        digest: v.digest_hex(),
        signers: signer_infos(&v.order),
    };
    crate::output::emit(a.json, &r, |r| {
        println!("ok: order {} version {}", r.family, r.version);
        println!("policy digest: {}", r.digest);
        println!("expires:       {}", r.expires);
        for s in &r.signers {
            println!("signed by:     {} ({})", s.party, s.key);
        }
    })
}

#[derive(Serialize)]
struct ShowReport<'a> {
    source: &'static str,
    /// SHA-256 of the TOML (the policy digest once signed as is).
    digest: String,
    signatures: usize,
    order: &'a Order,
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    let ctx = || format!("policy show {}", a.input.display());
    let input = read(&a.input).with_context(ctx)?;
    let (order, digest, signatures, source) = if is_envelope(&input) {
        let s = SignedOrder::from_json(&input)
            .map_err(coded)
            .with_context(ctx)?;
        let n = s.envelope().signatures.len();
        (s.order().clone(), s.digest(), n, "envelope")
    } else {
        let text = std::str::from_utf8(&input)
            .map_err(|_| anyhow!("not UTF-8 text"))
            .with_context(ctx)?;
        let o = Order::from_toml(text).map_err(coded).with_context(ctx)?;
        (o, tl_policy::policy_digest(&input), 0, "toml")
    };
    let r = ShowReport {
        source,
        digest: hex::encode(digest),
        signatures,
        order: &order,
    };
    crate::output::emit(a.json, &r, |r| {
        print_order(r.order, &r.digest, r.signatures, r.source)
    })
}

fn print_order(o: &Order, digest: &str, signatures: usize, source: &str) {
    println!(
        "order {} version {} (expires {})",
        o.family(),
        o.version(),
        o.expires()
    );
    if let Some(d) = o.description() {
        println!("  {d}");
    }
    println!("policy digest: {digest}");
    if source == "envelope" {
        println!("signatures: {signatures} (not checked here; use `tl policy verify`)");
    }
    let signers: Vec<&str> = o.signers().iter().map(|s| s.as_str()).collect();
    println!("signers: {}", signers.join(", "));
    println!("parties:");
    for (n, p) in o.parties() {
        println!("  {n}");
        if let Some(k) = &p.signing_key {
            println!("    signing_key:    {k}");
        }
        if let Some(k) = &p.encryption_key {
            println!("    encryption_key: {k}");
        }
    }
    println!("components:");
    for c in o.components() {
        println!(
            "  {} ({}, owner {}, {} bytes, at {{components}}/{}{})",
            c.name,
            c.role.as_str(),
            c.owner,
            c.size,
            c.mount(),
            if c.executable { ", executable" } else { "" }
        );
        if let Some(d) = &c.sha256 {
            println!("    sha256:      {d}");
        }
        if let Some(d) = &c.sha384 {
            println!("    sha384:      {d}");
        }
        if let Some(d) = &c.tree_sha256 {
            println!("    tree_sha256: {d}");
        }
    }
    let l = o.launch();
    println!("launch:");
    println!("  argv:    {:?}", l.argv);
    for (k, v) in &l.env {
        println!("  env:     {k}={v}");
    }
    println!("  workdir: {}", l.workdir);
    println!(
        "  limits:  {} MiB memory, {} s CPU, {} s wall clock",
        l.memory_mb, l.cpu_seconds, l.timeout_seconds
    );
    println!("outputs:");
    for out in o.outputs() {
        let r: Vec<&str> = out.recipients.iter().map(|r| r.as_str()).collect();
        println!(
            "  {} at {{outputs}}/{} (max {} bytes) to {}",
            out.name,
            out.path,
            out.max_bytes,
            r.join(", ")
        );
    }
    let p = o.platform();
    println!("platform:");
    let tees: Vec<String> = p
        .allowed_tees()
        .iter()
        .map(|t| {
            serde_json::to_string(t)
                .unwrap_or_default()
                .replace('"', "")
        })
        .collect();
    println!("  tee: {}", tees.join(", "));
    println!(
        "  allow_simulated: {}, allow_debug: {}, accept_tcb: {:?}",
        p.allow_simulated, p.allow_debug, p.accept_tcb
    );
    // Reference values, as JSON for an exact, compact rendering.
    for (name, v) in [
        ("tdx", serde_json::to_string(&p.tdx)),
        ("snp", serde_json::to_string(&p.snp)),
        ("tpm", serde_json::to_string(&p.tpm)),
        ("gpu", serde_json::to_string(&p.gpu)),
    ] {
        if let Ok(v) = v {
            if v != "null" {
                println!("  {name}: {v}");
            }
        }
    }
}

/// The example order written by `tl policy init`.
const TEMPLATE: &str = r##"# An order: the policy a confidential VM's loader enforces for one run.
#
# Every party listed in `signers` signs this exact file with `tl policy sign`;
# the loader refuses it unless all of them have. Change anything (even a
# space) and every signature must be made again. The full schema is in
# docs/formats/order.md.

[order]
# Rollback protection is per family: the CA remembers the highest version it
# has accepted for a family and the loader refuses anything lower.
family = "demo/lab-training"
version = 1
# RFC 3339. The order is void at and after this time; keep it short.
expires = "@EXPIRES@"
description = "Train the engine on the lab's dataset; the model goes to the engine owner."
# Who must sign. Must include the owner of the engine and of every component.
signers = ["engine-owner", "lab"]

# Parties: one table per party. `signing_key` is the text of a `.pub` file
# from `tl keygen --type ed25519` (or ecdsa-p256); `encryption_key` is the
# text of `tl keygen --type x25519` and is needed by output recipients.
[parties.engine-owner]
signing_key = "<paste engine-owner.pub>"
encryption_key = "<paste engine-owner-x25519.pub>"

[parties.lab]
signing_key = "<paste lab.pub>"

[platform]
# Accept only real hardware evidence; set to true for the simulated TEE.
allow_simulated = false
allow_debug = false
# TCB statuses accepted (UpToDate, SWHardeningNeeded, ConfigurationNeeded,
# ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded,
# TDRelaunchAdvised and TDRelaunchAdvisedConfigurationNeeded for TD 1.5,
# NotApplicable for TPM-only evidence). A revoked TCB is never accepted.
accept_tcb = ["UpToDate"]
# TEE kinds allowed: tdx, sev-snp, tpm. Without this line, the kinds that have
# a reference section below.
tee = ["tdx", "sev-snp"]

# Reference values: every field is optional, a present field must match
# exactly. `tl measure` computes them from the image.
# [platform.tdx]
# mrtd = "<96 hex digits>"
# rtmr0 = "<96 hex digits>"      # rtmr0 .. rtmr3
# mrconfigid = "<96 hex digits>"
# td_attributes = "0000000010000000"
#
# [platform.snp]
# measurement = ["<96 hex digits>"]   # any one of these
# host_data = "<64 hex digits>"
# min_reported_tcb = 0
# vmpl = 0
#
# [platform.tpm.pcrs.sha256]
# 7 = "<64 hex digits>"
#
# Without a [platform.gpu] section no GPU may be attested.
# [platform.gpu]
# count = 1
# cc_mode = true
# driver_versions = ["550.54.15"]
# measurements = { 9 = "<hex>" }

# Components: each is sealed by its owner with `tl seal`, which prints the
# size and digests to paste here. At least one digest is required.
[[components]]
name = "engine"
role = "engine"            # engine | dataset | config | model; exactly one engine
owner = "engine-owner"
size = 0
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
mount = "engine"           # file path under {components}
executable = true

[[components]]
name = "lab.csv"
role = "dataset"
owner = "lab"
size = 0
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
# tree_sha256 = "<64 hex>"   # Merkle root from `tl seal`, checked while streaming

[launch]
# {components} and {outputs} are replaced by the loader's directories.
argv = ["{components}/engine", "--input", "{components}/lab.csv", "--output", "{outputs}/model.json"]
env = { RUST_LOG = "info" }
workdir = "{outputs}"
memory_mb = 512
cpu_seconds = 60
timeout_seconds = 120

# Outputs are encrypted to their recipients, who need an encryption_key.
[[outputs]]
name = "model"
path = "model.json"
recipients = ["engine-owner"]
max_bytes = 10485760
"##;
