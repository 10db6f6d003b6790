//! `tl keygen`: signing keys for orders (ed25519, ecdsa-p256) and, through
//! the sealing module, encryption keys (x25519).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Serialize;
use tl_policy::{Algorithm, SigningKey};

/// Generate a key pair and write PREFIX.key (private, mode 0600) and
/// PREFIX.pub (the public key's text form, to paste into orders).
///
/// Signing keys (ed25519, ecdsa-p256) sign orders with `tl policy sign`; the
/// private key is PKCS#8 in PEM. Encryption keys (x25519) receive outputs and
/// key grants. Existing files are never overwritten unless --force is given.
///
/// Examples:
///
///   tl keygen --type ed25519 --out keys/lab
///
///   tl keygen --type ecdsa-p256 --out keys/clinic --json
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = "Writes PREFIX.key (PKCS#8 PEM, mode 0600) and PREFIX.pub (text form to paste into orders).\n\nExamples:\n\n  tl keygen --type ed25519 --out keys/lab\n\n  tl keygen --type ecdsa-p256 --out keys/clinic --json"
)]
pub struct Args {
    /// Key type.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    key_type: KeyType,
    /// Path prefix: writes PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX")]
    out: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum KeyType {
    /// Ed25519 signing key (deterministic signatures; the default choice).
    Ed25519,
    /// ECDSA P-256 signing key (SHA-256, DER signatures).
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// X25519 encryption key for outputs and grants.
    X25519,
}

#[derive(Serialize)]
struct Report {
    r#type: &'static str,
    private_key: String,
    public_key_file: String,
    public_key: String,
    key_id: String,
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Write `data` to `path`, mode `mode`, refusing to replace an existing file
/// unless `force`.
pub(crate) fn write_new(path: &Path, data: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    let mut o = OpenOptions::new();
    o.write(true).mode(mode);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o.open(path).with_context(|| {
        if !force && path.exists() {
            format!(
                "{}: already exists (use --force to overwrite)",
                path.display()
            )
        } else {
            format!("{}", path.display())
        }
    })?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}", path.display()))?;
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let alg = match a.key_type {
        KeyType::Ed25519 => Algorithm::Ed25519,
        KeyType::EcdsaP256 => Algorithm::EcdsaP256,
        KeyType::X25519 => {
            let public = crate::cmd_seal::keygen_x25519(&a.out, a.force).context("keygen")?;
            let report = Report {
                r#type: "x25519",
                private_key: with_suffix(&a.out, ".key").display().to_string(),
                public_key_file: with_suffix(&a.out, ".pub").display().to_string(),
                key_id: crate::cmd_report::sha256_hex(public.as_bytes()),
                public_key: public,
            };
            return crate::output::emit(a.json, &report, |r| {
                println!("wrote {} (private, keep it secret)", r.private_key);
                println!("wrote {}", r.public_key_file);
                println!("public key: {}", r.public_key);
            });
        }
    };
    let key_path = with_suffix(&a.out, ".key");
    let pub_path = with_suffix(&a.out, ".pub");
    if !a.force {
        for p in [&key_path, &pub_path] {
            if p.exists() {
                bail!(
                    "keygen: {}: already exists (use --force to overwrite)",
                    p.display()
                );
            }
        }
    }
    let key =
        SigningKey::generate(alg).map_err(|e| anyhow::anyhow!("keygen: {} ({})", e, e.code()))?;
    let public = key.public_key().to_string();
    write_new(&key_path, key.to_pem().as_bytes(), 0o600, a.force).context("keygen")?;
    write_new(&pub_path, format!("{public}\n").as_bytes(), 0o644, a.force).context("keygen")?;
    let report = Report {
        r#type: alg.as_str(),
        private_key: key_path.display().to_string(),
        public_key_file: pub_path.display().to_string(),
        key_id: key.public_key().key_id(),
        public_key: public,
    };
    crate::output::emit(a.json, &report, |r| {
        println!("wrote {} (private, keep it secret)", r.private_key);
        println!("wrote {}", r.public_key_file);
        println!("public key: {}", r.public_key);
        println!("key id:     {}", r.key_id);
    })
}
