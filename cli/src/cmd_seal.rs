//! `tl seal`, `tl grant`, `tl open`: sealed components and key grants
//! (format: docs/formats/sealed.md). File handling only; the formats live in
//! the `tl_seal` crate.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use serde_json::json;
use tl_seal::{
    open_grant, open_stream, random_salt, seal_grant, seal_stream, ContentKey, DigestSet,
    GrantContext, GrantError, RecipientPublicKey, RecipientSecretKey, SealError, SegmentSize,
    SystemRng,
};

use crate::output;

/// Encrypt a file into a sealed component under a fresh content key.
///
/// The content key is written to a key handle file (mode 0600, default
/// OUT.ck); keep it secret. Grant it to a CVM with `tl grant`. The command
/// prints the plaintext's size and digests, and a `[[components]]` snippet to
/// paste into an order.
///
/// Example: tl seal dataset.csv --out dataset.sealed
#[derive(Debug, clap::Args)]
pub struct SealArgs {
    /// Plaintext file to seal.
    pub input: PathBuf,
    /// Sealed output file.
    #[arg(long, value_name = "OUT.sealed")]
    pub out: PathBuf,
    /// Where to write the content key (default: OUT.ck next to --out).
    #[arg(long, value_name = "OUT.ck")]
    pub key_out: Option<PathBuf>,
    /// Segment size: a power of two from 4K to 16M (units K/KiB, M/MiB).
    #[arg(long, default_value = "1M", value_name = "SIZE")]
    pub segment_size: SegmentSize,
    /// Overwrite existing output and key files.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Grant a sealed component's content key to a CVM for one order.
///
/// The grant (HPKE, RFC 9180) can only be opened by the holder of the
/// recipient's secret key, and only for the given order digest, component
/// name and component SHA-256: the loader refuses it for anything else.
///
/// The safe way names the CVM by its certificate and the order by its signed
/// envelope: `tl grant` then checks the certificate against the CA root,
/// verifies every signature of the order, appraises the CVM's certified
/// claims against the order's platform reference values (refusing to grant
/// to a CVM the order would not run on), and takes the order digest and the
/// component's digest from the order itself.
///
/// Example: tl grant --key lab.sealed.ck --cert cvm/certificate.pem
///   --ca-root ca-root.pem --order order.dsse.json --component lab --out lab.grant
///
/// Low-level form: tl grant --key data.sealed.ck --to x25519:... --order-digest <hex>
///   --component dataset --component-sha256 <hex> --out dataset.grant
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("recipient").required(true).args(["to", "cert"])))]
#[command(group(clap::ArgGroup::new("order_ref").required(true).args(["order_digest", "order"])))]
pub struct GrantArgs {
    /// Content key handle file written by `tl seal`.
    #[arg(long, value_name = "OUT.ck")]
    pub key: PathBuf,
    /// Recipient public key: `x25519:<base64>` or a file containing it.
    #[arg(long, value_name = "RECIPIENT")]
    pub to: Option<String>,
    /// The CVM's certificate (PEM chain from its publish directory): the
    /// recipient is the encryption key the CA certified in it.
    #[arg(long, value_name = "CERT.pem", requires = "ca_root")]
    pub cert: Option<PathBuf>,
    /// The CA root (PEM) that must have issued --cert.
    #[arg(long, value_name = "ROOT.pem")]
    pub ca_root: Option<PathBuf>,
    /// SHA-256 of the order (signed policy) the grant is for, 64 hex digits.
    #[arg(long, value_name = "HEX")]
    pub order_digest: Option<String>,
    /// The signed order (DSSE envelope): verified, and the source of the
    /// order digest and the component's SHA-256.
    #[arg(long, value_name = "ENVELOPE.json")]
    pub order: Option<PathBuf>,
    /// Component name as it appears in the order.
    #[arg(long, value_name = "NAME")]
    pub component: String,
    /// SHA-256 of the component's plaintext (printed by `tl seal`); taken
    /// from the order when --order is given.
    #[arg(long, value_name = "HEX")]
    pub component_sha256: Option<String>,
    /// Where to write the grant.
    #[arg(long, value_name = "GRANT.bin")]
    pub out: PathBuf,
    /// Overwrite an existing grant file.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Decrypt a sealed file, with its content key or with a grant and the
/// recipient's secret key.
///
/// The plaintext is written to a temporary file next to --out and renamed
/// only after every check passed (authentication of every segment, no
/// truncation or trailing data, expected digests). On any failure the
/// temporary file is deleted and the command exits non-zero with the reason
/// code: no partial plaintext is left on disk.
///
/// Examples: tl open data.sealed --out data --key data.sealed.ck
///           tl open out.sealed --out result --grant out.grant
///             --recipient-key me.key --order-digest <hex>
///             --component output:result --component-sha256 <hex>
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("keysource").required(true).args(["key", "grant"])))]
pub struct OpenArgs {
    /// Sealed input file.
    pub input: PathBuf,
    /// Plaintext output file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Content key handle file.
    #[arg(long, value_name = "OUT.ck")]
    pub key: Option<PathBuf>,
    /// Grant file (needs --recipient-key, --order-digest, --component, --component-sha256).
    #[arg(long, value_name = "GRANT.bin",
          requires_all = ["recipient_key", "order_digest", "component", "component_sha256"])]
    pub grant: Option<PathBuf>,
    /// Recipient secret key (PEM "TL X25519 PRIVATE KEY", from `tl keygen --type x25519`).
    #[arg(long, value_name = "X.key")]
    pub recipient_key: Option<PathBuf>,
    /// Order digest the grant must name (64 hex digits).
    #[arg(long, value_name = "HEX")]
    pub order_digest: Option<String>,
    /// Component name the grant must name.
    #[arg(long, value_name = "NAME")]
    pub component: Option<String>,
    /// Component SHA-256 the grant must name; the plaintext must match it.
    #[arg(long, value_name = "HEX")]
    pub component_sha256: Option<String>,
    /// Fail unless the plaintext has this SHA-256.
    #[arg(long, value_name = "HEX")]
    pub expect_sha256: Option<String>,
    /// Overwrite an existing output file.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

/// An error with a stable reason code first, as every `tl` error line has.
fn coded(code: &str, msg: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{code}: {msg}")
}
fn seal_err(e: SealError) -> anyhow::Error {
    coded(e.code(), e)
}
fn grant_err(e: GrantError) -> anyhow::Error {
    coded(e.code(), e)
}
fn io_err(what: &str, path: &Path, e: std::io::Error) -> anyhow::Error {
    coded("IO_ERROR", format!("{what} {}: {e}", path.display()))
}

fn hex32(s: &str, what: &str) -> Result<[u8; 32]> {
    let v = hex::decode(s.trim()).map_err(|_| coded("BAD_HEX", format!("{what}: not hex")))?;
    v.try_into()
        .map_err(|_| coded("BAD_HEX", format!("{what}: expected 64 hex digits")))
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Create a file with mode 0600; refuses to overwrite unless `force`.
fn create_private(path: &Path, force: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).mode(0o600);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    o.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            coded(
                "OUTPUT_EXISTS",
                format!("{} exists (use --force)", path.display()),
            )
        } else {
            io_err("cannot create", path, e)
        }
    })
}

fn write_private(path: &Path, data: &[u8], force: bool) -> Result<()> {
    let mut f = create_private(path, force)?;
    f.write_all(data)
        .map_err(|e| io_err("cannot write", path, e))?;
    f.sync_all().map_err(|e| io_err("cannot sync", path, e))
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err("cannot read", path, e))
}

/// A temporary file next to the destination, deleted on drop unless kept.
struct TempOut {
    path: PathBuf,
    keep: bool,
}

impl TempOut {
    fn create(dest: &Path) -> Result<(Self, File)> {
        let name = dest
            .file_name()
            .ok_or_else(|| coded("BAD_PATH", "--out has no file name"))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tl-tmp-{}", std::process::id()));
        let path = dest.with_file_name(tmp_name);
        let f = create_private(&path, false)?;
        Ok((Self { path, keep: false }, f))
    }
    fn persist(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.path, dest).map_err(|e| io_err("cannot rename to", dest, e))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn refuse_existing(path: &Path, force: bool) -> Result<()> {
    if !force && path.exists() {
        return Err(coded(
            "OUTPUT_EXISTS",
            format!("{} exists (use --force)", path.display()),
        ));
    }
    Ok(())
}

pub fn seal(a: SealArgs) -> Result<()> {
    let key_out = a
        .key_out
        .clone()
        .unwrap_or_else(|| with_suffix(&a.out, ".ck"));
    refuse_existing(&a.out, a.force)?;
    refuse_existing(&key_out, a.force)?;
    let mut input = File::open(&a.input).map_err(|e| io_err("cannot open", &a.input, e))?;
    let len = input
        .metadata()
        .map_err(|e| io_err("cannot stat", &a.input, e))?
        .len();
    let key = ContentKey::generate().map_err(seal_err)?;

    let (tmp, f) = TempOut::create(&a.out)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let salt = random_salt().map_err(seal_err)?;
    let s = seal_stream(
        &key,
        a.segment_size,
        len,
        &mut input,
        &mut w,
        salt,
        DigestSet::ALL,
        threads(),
    )
    .map_err(seal_err)?;
    let f = w
        .into_inner()
        .map_err(|e| io_err("cannot write", &a.out, e.into_error()))?;
    f.sync_all().map_err(|e| io_err("cannot sync", &a.out, e))?;
    write_private(
        &key_out,
        format!("{}\n", key.to_text().as_str()).as_bytes(),
        a.force,
    )?;
    tmp.persist(&a.out)?;

    let h = |d: Option<&[u8]>| d.map(hex::encode).unwrap_or_default();
    let sha256 = h(s.digests.sha256.as_ref().map(|d| &d[..]));
    let sha384 = h(s.digests.sha384.as_ref().map(|d| &d[..]));
    let tree = h(s.digests.tree_sha256.as_ref().map(|d| &d[..]));
    let name = a
        .input
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let snippet = format!(
        "[[components]]\nname = \"{name}\"\n# role = \"...\"\n# owner = \"...\"\nsize = {}\nsha256 = \"{sha256}\"\nsha384 = \"{sha384}\"\ntree_sha256 = \"{tree}\"\n",
        s.plaintext_len
    );
    let v = json!({
        "input": a.input, "sealed": a.out, "key_handle": key_out,
        "size": s.plaintext_len, "sealed_size": s.sealed_len,
        "segment_size": a.segment_size.get(),
        "sha256": sha256, "sha384": sha384, "tree_sha256": tree,
        "order_snippet": snippet,
    });
    output::emit(a.json, &v, |_| {
        println!("sealed {} -> {}", a.input.display(), a.out.display());
        println!(
            "size:        {} bytes (sealed {} bytes)",
            s.plaintext_len, s.sealed_len
        );
        println!("sha256:      {sha256}");
        println!("sha384:      {sha384}");
        println!("tree_sha256: {tree}");
        println!(
            "key handle:  {} (secret; give it out only as a grant: tl grant)",
            key_out.display()
        );
        println!();
        println!("For the order:");
        print!("{snippet}");
    })
}

/// The recipient: `x25519:...` text, or a file containing it.
fn resolve_recipient(to: &str) -> Result<RecipientPublicKey> {
    let text = if to
        .trim_start()
        .starts_with(tl_seal::grant::PUBLIC_KEY_PREFIX)
    {
        to.to_owned()
    } else {
        read_text(Path::new(to))?
    };
    RecipientPublicKey::from_text(&text).map_err(grant_err)
}

/// The encryption key certified in a CVM's certificate, after checking the
/// certificate against the CA root now.
fn certified_recipient(
    cert: &Path,
    ca_root: Option<&Path>,
) -> Result<(RecipientPublicKey, tl_ca::CertClaims)> {
    let root_path = ca_root.ok_or_else(|| coded("USAGE", "--cert needs --ca-root"))?;
    let root_pem = read_text(root_path)?;
    let root = tl_ca::certs::pem_to_certs(&root_pem)
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| {
            coded(
                "CERT_MALFORMED",
                format!("{}: no certificate", root_path.display()),
            )
        })?;
    let chain = read_text(cert)?;
    let leaf = tl_ca::certs::verify_leaf_pem(&chain, &root, crate::cmd_report::now_unix())
        .map_err(|e| coded(e.code(), e))?;
    let r = RecipientPublicKey::from_text(&leaf.claims.encryption_public_key).map_err(grant_err)?;
    Ok((r, leaf.claims))
}

fn resolve_context(
    order_digest: &str,
    component: &str,
    component_sha256: &str,
) -> Result<GrantContext> {
    Ok(GrantContext {
        order_digest: hex32(order_digest, "--order-digest")?,
        component_name: component.to_owned(),
        component_sha256: hex32(component_sha256, "--component-sha256")?,
    })
}

fn read_key(path: &Path) -> Result<ContentKey> {
    let text = zeroize_string(read_text(path)?);
    ContentKey::from_text(text.0.as_str()).map_err(seal_err)
}

/// Key file contents, wiped on drop.
fn zeroize_string(s: String) -> Secret {
    Secret(zeroize::Zeroizing::new(s))
}
struct Secret(zeroize::Zeroizing<String>);

pub fn grant(a: GrantArgs) -> Result<()> {
    let key = read_key(&a.key)?;
    let order = a
        .order
        .as_deref()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| io_err("cannot read", p, e))?;
            tl_policy::SignedOrder::verify(&bytes).map_err(|e| coded(e.code(), e))
        })
        .transpose()?;
    let (recipient, claims) = match (&a.to, &a.cert) {
        (Some(to), None) => (resolve_recipient(to)?, None),
        (None, Some(cert)) => {
            let (r, c) = certified_recipient(cert, a.ca_root.as_deref())?;
            (r, Some(c))
        }
        _ => return Err(coded("USAGE", "give exactly one of --to and --cert")),
    };
    if let (Some(o), Some(c)) = (&order, &claims) {
        // Grant only to a CVM the order would run on.
        let verdict = tl_policy::appraise(
            &o.order,
            &c.platform,
            &tl_policy::AppraisalContext {
                now_unix: crate::cmd_report::now_unix(),
                version_floor: None,
            },
        );
        if !verdict.passed() {
            return Err(coded(
                "GRANT_PLATFORM_MISMATCH",
                format!("the CVM's certified claims do not satisfy the order: {verdict}"),
            ));
        }
    }
    let ctx = match &order {
        Some(o) => {
            let c = o.order.component(&a.component).ok_or_else(|| {
                coded(
                    "COMPONENT_UNKNOWN",
                    format!("the order has no component {:?}", a.component),
                )
            })?;
            let pinned = c
                .sha256
                .as_ref()
                .map(|h| h.0)
                .or_else(|| c.tree_sha256.as_ref().map(|h| h.0))
                .ok_or_else(|| coded("ORDER_INVALID", "component pins no 32-byte digest"))?;
            if let Some(given) = &a.component_sha256 {
                if hex32(given, "--component-sha256")? != pinned {
                    return Err(coded(
                        "COMPONENT_DIGEST_MISMATCH",
                        "--component-sha256 differs from the order's digest",
                    ));
                }
            }
            if let Some(given) = &a.order_digest {
                if hex32(given, "--order-digest")? != o.digest {
                    return Err(coded(
                        "ORDER_DIGEST_MISMATCH",
                        "--order-digest differs from the order",
                    ));
                }
            }
            GrantContext {
                order_digest: o.digest,
                component_name: a.component.clone(),
                component_sha256: pinned,
            }
        }
        None => resolve_context(
            a.order_digest.as_deref().unwrap_or_default(),
            &a.component,
            a.component_sha256
                .as_deref()
                .ok_or_else(|| coded("USAGE", "--component-sha256 is required without --order"))?,
        )?,
    };
    refuse_existing(&a.out, a.force)?;
    let g = seal_grant(&recipient, &key, &ctx, &mut SystemRng).map_err(grant_err)?;
    let (tmp, mut f) = TempOut::create(&a.out)?;
    f.write_all(&g)
        .map_err(|e| io_err("cannot write", &a.out, e))?;
    f.sync_all().map_err(|e| io_err("cannot sync", &a.out, e))?;
    tmp.persist(&a.out)?;
    let v = json!({
        "grant": a.out, "size": g.len(), "sha256": hex::encode(tl_seal::grant_digest(&g)),
        "recipient": recipient.to_text(), "order_digest": hex::encode(ctx.order_digest),
        "component": ctx.component_name, "component_sha256": hex::encode(ctx.component_sha256),
    });
    output::emit(a.json, &v, |_| {
        println!("grant written to {} ({} bytes)", a.out.display(), g.len());
        println!("recipient:        {}", recipient.to_text());
        println!("order digest:     {}", hex::encode(ctx.order_digest));
        println!("component:        {}", ctx.component_name);
        println!("component sha256: {}", hex::encode(ctx.component_sha256));
    })
}

pub fn open(a: OpenArgs) -> Result<()> {
    refuse_existing(&a.out, a.force)?;
    let expect = a
        .expect_sha256
        .as_deref()
        .map(|h| hex32(h, "--expect-sha256"))
        .transpose()?;
    let (key, ctx) = match (&a.key, &a.grant) {
        (Some(k), None) => (read_key(k)?, None),
        (None, Some(g)) => {
            let missing = |n: &str| coded("USAGE", format!("--grant needs {n}"));
            let sk_path = a
                .recipient_key
                .as_ref()
                .ok_or_else(|| missing("--recipient-key"))?;
            let sk = RecipientSecretKey::from_pem(zeroize_string(read_text(sk_path)?).0.as_str())
                .map_err(grant_err)?;
            let ctx = resolve_context(
                a.order_digest
                    .as_deref()
                    .ok_or_else(|| missing("--order-digest"))?,
                a.component
                    .as_deref()
                    .ok_or_else(|| missing("--component"))?,
                a.component_sha256
                    .as_deref()
                    .ok_or_else(|| missing("--component-sha256"))?,
            )?;
            let bytes = std::fs::read(g).map_err(|e| io_err("cannot read", g, e))?;
            (open_grant(&bytes, &sk, &ctx).map_err(grant_err)?, Some(ctx))
        }
        _ => return Err(coded("USAGE", "give exactly one of --key and --grant")),
    };
    let mut input = File::open(&a.input).map_err(|e| io_err("cannot open", &a.input, e))?;
    let (tmp, mut f) = TempOut::create(&a.out)?;
    let opts = tl_seal::OpenOptions {
        digests: DigestSet::SHA256,
        hash_threads: threads(),
    };
    let s = open_stream(&key, &mut input, &mut f, opts).map_err(seal_err)?;
    let sha = s
        .digests
        .sha256
        .ok_or_else(|| coded("INTERNAL", "sha256 not computed"))?;
    if let Some(want) = expect {
        if want != sha {
            return Err(coded(
                "OPEN_DIGEST_MISMATCH",
                format!(
                    "plaintext sha256 {} but --expect-sha256 {}",
                    hex::encode(sha),
                    hex::encode(want)
                ),
            ));
        }
    }
    if let Some(c) = &ctx {
        if c.component_sha256 != sha {
            return Err(coded(
                "OPEN_DIGEST_MISMATCH",
                format!(
                    "plaintext sha256 {} but the grant names {}",
                    hex::encode(sha),
                    hex::encode(c.component_sha256)
                ),
            ));
        }
    }
    f.sync_all().map_err(|e| io_err("cannot sync", &a.out, e))?;
    drop(f);
    tmp.persist(&a.out)?;
    let v = json!({ "output": a.out, "size": s.plaintext_len, "sha256": hex::encode(sha) });
    output::emit(a.json, &v, |_| {
        println!("opened {} -> {}", a.input.display(), a.out.display());
        println!("size:   {} bytes", s.plaintext_len);
        println!("sha256: {}", hex::encode(sha));
    })
}

/// Write an X25519 key pair: `PREFIX.key` (PEM "TL X25519 PRIVATE KEY",
/// mode 0600) and `PREFIX.pub` (`x25519:<base64>`). Returns the public text.
/// Used by `tl keygen --type x25519`.
pub fn keygen_x25519(out_prefix: &Path, force: bool) -> Result<String> {
    let key_path = with_suffix(out_prefix, ".key");
    let pub_path = with_suffix(out_prefix, ".pub");
    refuse_existing(&key_path, force)?;
    refuse_existing(&pub_path, force)?;
    let sk = RecipientSecretKey::generate().map_err(grant_err)?;
    let public = sk.public_key().to_text();
    write_private(&key_path, sk.to_pem().as_bytes(), force)?;
    let mut o = OpenOptions::new();
    o.write(true).mode(0o644);
    if force {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    let mut f = o
        .open(&pub_path)
        .map_err(|e| io_err("cannot create", &pub_path, e))?;
    f.write_all(format!("{public}\n").as_bytes())
        .map_err(|e| io_err("cannot write", &pub_path, e))?;
    Ok(public)
}
