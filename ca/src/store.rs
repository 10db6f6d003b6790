//! The CA's state directory. Does I/O.
//!
//! ```text
//! ca-key.pem     CA key, PKCS#8 PEM, mode 0600
//! ca-root.pem    CA root certificate
//! tls-key.pem    TLS server key (PKCS#8 PEM, 0600), reissued at every start
//! tls-cert.pem   TLS server certificate (127.0.0.1, localhost), signed by the root
//! log.leaves     transparency log leaves: records of u32 BE length || data, append-only
//! floors.json    order-family version floors, replaced atomically
//! issued.jsonl   one JSON line per issued certificate, append-only
//! ```
//!
//! Every append is written and `fsync`ed before the request that caused it is
//! answered (appends that arrive together share one `fsync`), and the floors
//! file is replaced by write-to-temporary, `fsync`, rename, `fsync` of the
//! directory; so a restart loses nothing the CA acknowledged. A torn record
//! at the end of `log.leaves` (a crash during an append that was never
//! acknowledged) is cut off at load.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::certs::{self, der_to_pem};
use crate::issue::{self, CaKey};
use crate::log::MerkleTree;
use crate::orders::Floors;

pub const CA_KEY_FILE: &str = "ca-key.pem";
pub const CA_ROOT_FILE: &str = "ca-root.pem";
pub const TLS_KEY_FILE: &str = "tls-key.pem";
pub const TLS_CERT_FILE: &str = "tls-cert.pem";
pub const LOG_FILE: &str = "log.leaves";
pub const FLOORS_FILE: &str = "floors.json";
pub const ISSUED_FILE: &str = "issued.jsonl";

/// Largest log record accepted at load.
pub const MAX_LOG_RECORD: usize = 8 * 1024 * 1024;

/// State directory errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state directory {0} is already initialized")]
    AlreadyInitialized(PathBuf),
    #[error("state directory {0} is not initialized (run `tl-ca init`)")]
    NotInitialized(PathBuf),
    #[error("{0} is corrupt: {1}")]
    Corrupt(PathBuf, String),
    #[error("CA key: {0}")]
    Issue(#[from] issue::IssueError),
    #[error("the append writer has stopped")]
    WriterGone,
}

impl StoreError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "STORE_IO",
            Self::AlreadyInitialized(_) => "STORE_ALREADY_INITIALIZED",
            Self::NotInitialized(_) => "STORE_NOT_INITIALIZED",
            Self::Corrupt(..) => "STORE_CORRUPT",
            Self::Issue(e) => e.code(),
            Self::WriterGone => "STORE_WRITER_GONE",
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `init` made.
#[derive(Debug, Clone, Serialize)]
pub struct InitInfo {
    pub dir: PathBuf,
    pub ca_root_pem_path: PathBuf,
    pub ca_root_sha256: String,
}

/// Creates a new CA in `dir` (created if absent); refuses to overwrite one.
pub fn init(dir: &Path, now_unix: u64) -> Result<InitInfo, StoreError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let key_path = dir.join(CA_KEY_FILE);
    if key_path.exists() {
        return Err(StoreError::AlreadyInitialized(dir.to_path_buf()));
    }
    let (pkcs8, root) = issue::generate_root(now_unix)?;
    let ca = CaKey::from_pkcs8_and_root(&pkcs8, &root)?;
    write_atomic(
        dir,
        CA_ROOT_FILE,
        der_to_pem("CERTIFICATE", &root).as_bytes(),
        0o644,
    )?;
    write_atomic(
        dir,
        CA_KEY_FILE,
        der_to_pem("PRIVATE KEY", &pkcs8).as_bytes(),
        0o600,
    )?;
    write_tls(dir, &ca, now_unix)?;
    Ok(InitInfo {
        dir: dir.to_path_buf(),
        ca_root_pem_path: dir.join(CA_ROOT_FILE),
        ca_root_sha256: hex::encode(crate::sha256(&root)),
    })
}

fn write_tls(dir: &Path, ca: &CaKey, now_unix: u64) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
    let (key, cert) = ca.issue_tls_server(now_unix)?;
    write_atomic(
        dir,
        TLS_KEY_FILE,
        der_to_pem("PRIVATE KEY", &key).as_bytes(),
        0o600,
    )?;
    write_atomic(
        dir,
        TLS_CERT_FILE,
        der_to_pem("CERTIFICATE", &cert).as_bytes(),
        0o644,
    )?;
    Ok((key, cert))
}

/// Replaces `dir/name` atomically and durably.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8], mode: u32) -> Result<(), StoreError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.write_all(data).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

fn read_pem(dir: &Path, name: &str, label: &str) -> Result<Vec<u8>, StoreError> {
    let path = dir.join(name);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    certs::pem_blocks(&text, label)
        .ok()
        .and_then(|v| v.into_iter().next())
        .ok_or_else(|| StoreError::Corrupt(path, format!("no {label} PEM block")))
}

type Ack = tokio::sync::oneshot::Sender<io::Result<()>>;

/// An append-only file whose appends are durable when acknowledged; appends
/// queued together share one `fsync` (group commit) on a writer thread.
#[derive(Debug)]
pub struct DurableAppender {
    tx: mpsc::Sender<(Vec<u8>, Ack)>,
}

impl DurableAppender {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_err(path))?;
        let (tx, rx) = mpsc::channel::<(Vec<u8>, Ack)>();
        std::thread::Builder::new()
            .name("tl-ca-append".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let mut result = Ok(());
                    for (data, _) in &batch {
                        if result.is_ok() {
                            result = file.write_all(data);
                        }
                    }
                    if result.is_ok() {
                        result = file.sync_data();
                    }
                    for (_, ack) in batch {
                        let r = match &result {
                            Ok(()) => Ok(()),
                            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                        };
                        let _ = ack.send(r);
                    }
                }
            })
            .map_err(io_err(path))?;
        Ok(Self { tx })
    }

    /// Appends `data`; returns once it is on disk.
    pub async fn append(&self, data: Vec<u8>) -> Result<(), StoreError> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.tx
            .send((data, ack))
            .map_err(|_| StoreError::WriterGone)?;
        done.await
            .map_err(|_| StoreError::WriterGone)?
            .map_err(|e| StoreError::Io {
                path: PathBuf::from(LOG_FILE),
                source: e,
            })
    }
}

/// One line of `issued.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    pub serial: String,
    pub not_before: u64,
    pub not_after: u64,
    pub evidence_digest: String,
    pub certificate_pem: String,
}

/// The transparency log: leaf hashes in memory, leaves on disk.
#[derive(Debug)]
pub struct LogStore {
    pub tree: MerkleTree,
    appender: DurableAppender,
}

impl LogStore {
    /// Appends a leaf durably; returns its index.
    pub async fn append(&mut self, data: &[u8]) -> Result<u64, StoreError> {
        let len = u32::try_from(data.len())
            .ok()
            .filter(|l| (*l as usize) <= MAX_LOG_RECORD)
            .ok_or_else(|| StoreError::Corrupt(LOG_FILE.into(), "record too large".into()))?;
        let mut rec = Vec::with_capacity(4 + data.len());
        rec.extend_from_slice(&len.to_be_bytes());
        rec.extend_from_slice(data);
        self.appender.append(rec).await?;
        Ok(self.tree.push(data))
    }
}

/// Everything loaded from a state directory.
#[derive(Debug)]
pub struct Store {
    pub dir: PathBuf,
    pub ca: CaKey,
    pub tls_key_der: Vec<u8>,
    pub tls_cert_der: Vec<u8>,
    pub log: tokio::sync::Mutex<LogStore>,
    pub floors: tokio::sync::Mutex<Floors>,
    issued: DurableAppender,
}

impl Store {
    /// Opens an initialized state directory, reissues the TLS certificate (valid
    /// from `now_unix`) and
    /// reloads the log and the floors.
    pub fn open(dir: &Path, now_unix: u64) -> Result<Self, StoreError> {
        if !dir.join(CA_KEY_FILE).exists() {
            return Err(StoreError::NotInitialized(dir.to_path_buf()));
        }
        let pkcs8 = read_pem(dir, CA_KEY_FILE, "PRIVATE KEY")?;
        let root = read_pem(dir, CA_ROOT_FILE, "CERTIFICATE")?;
        let ca = CaKey::from_pkcs8_and_root(&pkcs8, &root)?;
        let (tls_key_der, tls_cert_der) = write_tls(dir, &ca, now_unix)?;
        let tree = load_log(&dir.join(LOG_FILE))?;
        let floors_path = dir.join(FLOORS_FILE);
        let floors: Floors = match fs::read(&floors_path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| StoreError::Corrupt(floors_path.clone(), e.to_string()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Floors::new(),
            Err(e) => return Err(io_err(&floors_path)(e)),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            ca,
            tls_key_der,
            tls_cert_der,
            log: tokio::sync::Mutex::new(LogStore {
                tree,
                appender: DurableAppender::open(&dir.join(LOG_FILE))?,
            }),
            floors: tokio::sync::Mutex::new(floors),
            issued: DurableAppender::open(&dir.join(ISSUED_FILE))?,
        })
    }

    /// Records an issued certificate durably.
    pub async fn record_issued(&self, rec: &IssuedRecord) -> Result<(), StoreError> {
        let mut line = serde_json::to_vec(rec)
            .map_err(|e| StoreError::Corrupt(ISSUED_FILE.into(), e.to_string()))?;
        line.push(b'\n');
        self.issued.append(line).await
    }

    /// Writes the floors file atomically (call with the floors lock held).
    pub async fn persist_floors(&self, floors: &Floors) -> Result<(), StoreError> {
        let data = serde_json::to_vec_pretty(floors)
            .map_err(|e| StoreError::Corrupt(FLOORS_FILE.into(), e.to_string()))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomic(&dir, FLOORS_FILE, &data, 0o644))
            .await
            .map_err(|_| StoreError::WriterGone)?
    }

    /// The issued-certificate list, as recorded.
    pub fn issued(&self) -> Result<Vec<IssuedRecord>, StoreError> {
        let path = self.dir.join(ISSUED_FILE);
        let text = fs::read_to_string(&path).map_err(io_err(&path))?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .map_err(|e| StoreError::Corrupt(path.clone(), e.to_string()))
            })
            .collect()
    }
}

/// Reads every complete record of the log file, cutting off a torn tail.
fn load_log(path: &Path) -> Result<MerkleTree, StoreError> {
    let mut tree = MerkleTree::new();
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(io_err(path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(tree),
        Err(e) => return Err(io_err(path)(e)),
    }
    let mut rest = bytes.as_slice();
    let mut good = 0usize;
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        if len > MAX_LOG_RECORD {
            return Err(StoreError::Corrupt(
                path.to_path_buf(),
                format!("record at offset {good} is too large"),
            ));
        }
        let Some((data, next)) = tail.split_at_checked(len) else {
            break;
        };
        tree.push(data);
        good += 4 + len;
        rest = next;
    }
    if good != bytes.len() {
        tracing::warn!(
            path = %path.display(),
            torn_bytes = bytes.len() - good,
            "cutting off a torn record at the end of the log"
        );
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err(path))?;
        f.set_len(good as u64).map_err(io_err(path))?;
        f.sync_all().map_err(io_err(path))?;
    }
    Ok(tree)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn log_survives_reopen_and_torn_tail_is_cut() {
        let d = tempfile::tempdir().unwrap();
        init(d.path(), 1_700_000_000).unwrap();
        assert_eq!(
            init(d.path(), 1_700_000_000).unwrap_err().code(),
            "STORE_ALREADY_INITIALIZED"
        );
        let root;
        {
            let s = Store::open(d.path(), 1_700_000_000).unwrap();
            let mut log = s.log.lock().await;
            for i in 0..5u8 {
                assert_eq!(log.append(&[i; 3]).await.unwrap(), u64::from(i));
            }
            root = log.tree.root();
        }
        // A torn record (length says 100, 2 bytes present).
        let mut f = OpenOptions::new()
            .append(true)
            .open(d.path().join(LOG_FILE))
            .unwrap();
        f.write_all(&[0, 0, 0, 100, 1, 2]).unwrap();
        drop(f);
        let s = Store::open(d.path(), 1_700_000_000).unwrap();
        let log = s.log.lock().await;
        assert_eq!(log.tree.size(), 5);
        assert_eq!(log.tree.root(), root);
        assert_eq!(
            fs::metadata(d.path().join(LOG_FILE)).unwrap().len(),
            5 * (4 + 3)
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.path().join(CA_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
