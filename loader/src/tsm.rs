//! Linux configfs-tsm report client (`/sys/kernel/config/tsm/report`).
//!
//! One report: create a fresh entry directory, read `generation`, write the 64-byte
//! `inblob`, read `outblob`, read `provider` and `generation` again. The generation must be
//! exactly one more than before (our write, and no other) or another writer raced us and the
//! outblob may answer someone else's report data: [`TsmError::GenerationRace`], retried a
//! bounded number of times. The entry is removed afterwards.
//!
//! On real configfs the first read of `outblob` returns the report synchronously. The
//! simulated TEE ([`crate::sim_tsm`]) serves a plain directory, which cannot; so the client
//! polls `outblob` until it is non-empty, with a bounded wait, and tolerates a short wait for
//! the entry's attributes to appear. Neither wait changes the behaviour on real configfs.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::halt::{Halt, HaltCode};

/// Default configfs-tsm report root.
pub const DEFAULT_TSM_ROOT: &str = "/sys/kernel/config/tsm/report";
/// Largest outblob accepted (quotes with certificate chains stay far below).
pub const MAX_OUTBLOB: u64 = 1 << 20;

/// The TEE that must serve the report (`provider` attribute).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TsmProvider {
    /// Intel TDX (`tdx_guest`).
    Tdx,
    /// AMD SEV-SNP (`sev_guest`).
    Snp,
    /// Another provider name (e.g. the simulated TEE's).
    Named(String),
}

impl TsmProvider {
    /// Provider string as configfs-tsm prints it.
    pub fn as_str(&self) -> &str {
        match self {
            TsmProvider::Tdx => "tdx_guest",
            TsmProvider::Snp => "sev_guest",
            TsmProvider::Named(s) => s,
        }
    }
}

/// Errors of the configfs-tsm client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsmError {
    /// The report root does not exist (no configfs-tsm, or not mounted).
    #[error("configfs-tsm root {0} not found")]
    Unavailable(PathBuf),
    /// A file operation failed.
    #[error("configfs-tsm {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An attribute did not appear / outblob stayed empty within the wait.
    #[error("configfs-tsm {0} not ready in time")]
    NotReady(&'static str),
    /// An attribute held garbage.
    #[error("configfs-tsm {attr} malformed")]
    Malformed {
        /// Attribute name.
        attr: &'static str,
    },
    /// outblob larger than [`MAX_OUTBLOB`].
    #[error("configfs-tsm outblob larger than {MAX_OUTBLOB} bytes")]
    OutblobTooLarge,
    /// The generation moved by other than exactly our one write.
    #[error("configfs-tsm generation race: {before} -> {after} (after {attempts} attempts)")]
    GenerationRace {
        /// Generation before our write.
        before: u64,
        /// Generation after reading outblob.
        after: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// The report came from another TEE than expected.
    #[error("configfs-tsm provider is {found:?}, expected {expected:?}")]
    ProviderMismatch {
        /// Expected provider.
        expected: String,
        /// Provider found.
        found: String,
    },
}

impl TsmError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            TsmError::Unavailable(_) => "TSM_UNAVAILABLE",
            TsmError::Io { .. } => "TSM_IO",
            TsmError::NotReady(_) => "TSM_NOT_READY",
            TsmError::Malformed { .. } => "TSM_MALFORMED",
            TsmError::OutblobTooLarge => "TSM_OUTBLOB_TOO_LARGE",
            TsmError::GenerationRace { .. } => "TSM_GENERATION_RACE",
            TsmError::ProviderMismatch { .. } => "TSM_PROVIDER_MISMATCH",
        }
    }

    /// The halt this error leads to.
    pub fn halt_code(&self) -> HaltCode {
        match self {
            TsmError::Unavailable(_) | TsmError::ProviderMismatch { .. } => {
                HaltCode::TeeUnavailable
            }
            TsmError::GenerationRace { .. } => HaltCode::TsmGenerationRace,
            _ => HaltCode::EvidenceCollectFailed,
        }
    }
}

impl From<TsmError> for Halt {
    fn from(e: TsmError) -> Halt {
        Halt::new(e.halt_code(), format!("{} ({})", e, e.code()))
    }
}

/// A report obtained from configfs-tsm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsmReport {
    /// The quote / attestation report.
    pub outblob: Vec<u8>,
    /// The `auxblob` attribute when the provider has one and it is non-empty
    /// (SEV-SNP: the host's certificate table).
    pub auxblob: Option<Vec<u8>>,
    /// The provider that produced it.
    pub provider: String,
    /// The entry's generation for this report.
    pub generation: u64,
}

/// configfs-tsm client.
#[derive(Debug, Clone)]
pub struct TsmClient {
    root: PathBuf,
    expected: TsmProvider,
    /// Attempts on a generation race (at least 1).
    pub max_attempts: u32,
    /// Longest wait for the entry's attributes to appear.
    pub attr_wait: Duration,
    /// Longest wait for outblob to become non-empty.
    pub outblob_wait: Duration,
    /// Poll step for both waits.
    pub poll_step: Duration,
}

static ENTRY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl TsmClient {
    /// Client for the report root `root` expecting `expected` as provider.
    pub fn new(root: impl Into<PathBuf>, expected: TsmProvider) -> Self {
        TsmClient {
            root: root.into(),
            expected,
            max_attempts: 3,
            attr_wait: Duration::from_secs(1),
            outblob_wait: Duration::from_secs(5),
            poll_step: Duration::from_millis(2),
        }
    }

    /// The report root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Get a report whose report data is `inblob`.
    pub fn get_report(&self, inblob: &[u8; 64]) -> Result<TsmReport, TsmError> {
        if !self.root.is_dir() {
            return Err(TsmError::Unavailable(self.root.clone()));
        }
        let attempts = self.max_attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            let entry = self.create_entry()?;
            let r = self.one_report(&entry, inblob);
            remove_entry(&entry);
            match r {
                Err(TsmError::GenerationRace { before, after, .. }) => {
                    last = Some((before, after));
                    let _ = attempt;
                }
                other => return other,
            }
        }
        let (before, after) = last.unwrap_or((0, 0));
        Err(TsmError::GenerationRace {
            before,
            after,
            attempts,
        })
    }

    fn create_entry(&self) -> Result<PathBuf, TsmError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for _ in 0..16 {
            let n = ENTRY_COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = self
                .root
                .join(format!("tl-{}-{}-{:08x}", std::process::id(), n, nanos));
            match fs::create_dir(&p) {
                Ok(()) => return Ok(p),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(TsmError::Io {
                        op: "mkdir",
                        path: p,
                        source,
                    })
                }
            }
        }
        Err(TsmError::NotReady("unique entry name"))
    }

    fn wait_attr(&self, entry: &Path, attr: &'static str) -> Result<String, TsmError> {
        let path = entry.join(attr);
        let start = Instant::now();
        loop {
            match read_capped(&path, 64) {
                Ok(b) if !b.is_empty() => {
                    return String::from_utf8(b)
                        .map(|s| s.trim().to_owned())
                        .map_err(|_| TsmError::Malformed { attr });
                }
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TsmError::Io {
                        op: "read",
                        path,
                        source,
                    })
                }
            }
            if start.elapsed() >= self.attr_wait {
                return Err(TsmError::NotReady(attr));
            }
            std::thread::sleep(self.poll_step);
        }
    }

    fn generation(&self, entry: &Path) -> Result<u64, TsmError> {
        self.wait_attr(entry, "generation")?
            .parse()
            .map_err(|_| TsmError::Malformed { attr: "generation" })
    }

    fn one_report(&self, entry: &Path, inblob: &[u8; 64]) -> Result<TsmReport, TsmError> {
        let before = self.generation(entry)?;
        let inpath = entry.join("inblob");
        let io = |op, source| TsmError::Io {
            op,
            path: inpath.clone(),
            source,
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&inpath)
            .map_err(|e| io("open", e))?;
        f.write_all(inblob).map_err(|e| io("write", e))?;
        drop(f);

        let outpath = entry.join("outblob");
        let start = Instant::now();
        let outblob = loop {
            match read_capped(&outpath, MAX_OUTBLOB + 1) {
                Ok(b) if b.len() as u64 > MAX_OUTBLOB => return Err(TsmError::OutblobTooLarge),
                Ok(b) if !b.is_empty() => break b,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(TsmError::Io {
                        op: "read",
                        path: outpath,
                        source,
                    })
                }
            }
            if start.elapsed() >= self.outblob_wait {
                return Err(TsmError::NotReady("outblob"));
            }
            std::thread::sleep(self.poll_step);
        };
        let auxpath = entry.join("auxblob");
        let auxblob = match read_capped(&auxpath, MAX_OUTBLOB + 1) {
            Ok(b) if b.len() as u64 > MAX_OUTBLOB => return Err(TsmError::OutblobTooLarge),
            Ok(b) if !b.is_empty() => Some(b),
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(source) => {
                return Err(TsmError::Io {
                    op: "read",
                    path: auxpath,
                    source,
                })
            }
        };
        let provider = self.wait_attr(entry, "provider")?;
        let after = self.generation(entry)?;
        if after != before.wrapping_add(1) {
            return Err(TsmError::GenerationRace {
                before,
                after,
                attempts: 1,
            });
        }
        if provider != self.expected.as_str() {
            return Err(TsmError::ProviderMismatch {
                expected: self.expected.as_str().to_owned(),
                found: provider,
            });
        }
        Ok(TsmReport {
            outblob,
            auxblob,
            provider,
            generation: after,
        })
    }
}

fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let f = fs::File::open(path)?;
    let mut v = Vec::new();
    f.take(cap).read_to_end(&mut v)?;
    Ok(v)
}

/// Remove an entry: `rmdir` on configfs; a plain directory (simulator) needs its files removed.
fn remove_entry(entry: &Path) {
    for _ in 0..10 {
        if fs::remove_dir(entry).is_ok() || fs::remove_dir_all(entry).is_ok() || !entry.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
