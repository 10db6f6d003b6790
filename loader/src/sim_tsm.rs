//! The simulated TEE's configfs-tsm-shaped directory server.
//!
//! Real configfs-tsm is a kernel filesystem: `mkdir` creates an entry whose attributes
//! (`inblob`, `outblob`, `provider`, `generation`, ...) exist at once, writing `inblob`
//! bumps `generation`, and reading `outblob` produces the report synchronously. A plain
//! directory cannot do that, so this server watches `root/*/` from a thread (1 ms polling):
//! it initializes new entries (`generation` = 0, `provider`), and whenever an entry's
//! `inblob` appears or changes it writes `generation` + 1 and then `outblob` =
//! `quote_fn(inblob)` (each file replaced atomically by rename). The loader's
//! [`crate::tsm::TsmClient`] tolerates the short delays, so its device code path runs
//! unchanged against the simulated TEE. Stops when the handle is dropped.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Produces the outblob (quote) for a 64-byte inblob.
pub type QuoteFn = Arc<dyn Fn(&[u8; 64]) -> Vec<u8> + Send + Sync>;

/// Running server; stops on drop.
#[derive(Debug)]
pub struct SimTsmServer {
    root: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

#[derive(PartialEq, Eq)]
struct Seen {
    mtime: Option<SystemTime>,
    content: Vec<u8>,
}

impl SimTsmServer {
    /// Create `root` if needed and serve it.
    pub fn start(root: PathBuf, provider: &str, quote_fn: QuoteFn) -> std::io::Result<Self> {
        fs::create_dir_all(&root)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, p) = (root.clone(), stop.clone(), provider.to_owned());
        let thread = std::thread::Builder::new()
            .name("sim-tsm".into())
            .spawn(move || serve(&r, &p, &quote_fn, &s))?;
        Ok(SimTsmServer {
            root,
            stop,
            thread: Some(thread),
        })
    }

    /// The served root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stop the server and wait for its thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SimTsmServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    fs::write(&tmp, data)?;
    fs::rename(&tmp, dir.join(name))
}

fn serve(root: &Path, provider: &str, quote_fn: &QuoteFn, stop: &AtomicBool) {
    let mut seen: HashMap<PathBuf, Seen> = HashMap::new();
    let mut initialized: Vec<PathBuf> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let entries = match fs::read_dir(root) {
            Ok(e) => e,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        let mut live = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            if !dir.is_dir() {
                continue;
            }
            live.push(dir.clone());
            if !initialized.contains(&dir) {
                // Once per entry: the client may be removing the entry later on.
                initialized.push(dir.clone());
                let _ = write_atomic(&dir, "provider", provider.as_bytes())
                    .and_then(|()| write_atomic(&dir, "generation", b"0\n"));
            }
            let inpath = dir.join("inblob");
            let Ok(meta) = fs::metadata(&inpath) else {
                continue;
            };
            let Ok(content) = fs::read(&inpath) else {
                continue;
            };
            let now = Seen {
                mtime: meta.modified().ok(),
                content,
            };
            if seen.get(&dir) == Some(&now) {
                continue;
            }
            let Ok(blob) = <[u8; 64]>::try_from(now.content.as_slice()) else {
                // Not (yet) a full inblob: wait for the writer to finish.
                continue;
            };
            let out = quote_fn(&blob);
            let generation: u64 = fs::read_to_string(dir.join("generation"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            let _ = write_atomic(
                &dir,
                "generation",
                format!("{}\n", generation + 1).as_bytes(),
            )
            .and_then(|()| write_atomic(&dir, "outblob", &out));
            seen.insert(dir, now);
        }
        seen.retain(|k, _| live.contains(k));
        initialized.retain(|k| live.contains(k));
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tsm::{TsmClient, TsmError, TsmProvider};
    use std::sync::atomic::AtomicU32;

    fn quote() -> QuoteFn {
        Arc::new(|inblob: &[u8; 64]| {
            let mut q = b"SIMQUOTE".to_vec();
            q.extend_from_slice(inblob);
            q
        })
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("report");
        let _srv = SimTsmServer::start(root.clone(), "sim_guest", quote()).unwrap();
        let client = TsmClient::new(&root, TsmProvider::Named("sim_guest".into()));
        for i in 0..3u8 {
            let inblob = [i; 64];
            let r = client.get_report(&inblob).unwrap();
            assert_eq!(&r.outblob[..8], b"SIMQUOTE");
            assert_eq!(&r.outblob[8..], &inblob[..]);
            assert_eq!(r.provider, "sim_guest");
            assert_eq!(r.generation, 1);
        }
        // Entries are removed.
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }

    #[test]
    fn wrong_provider_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("report");
        let _srv = SimTsmServer::start(root.clone(), "sev_guest", quote()).unwrap();
        let err = TsmClient::new(&root, TsmProvider::Tdx)
            .get_report(&[7; 64])
            .unwrap_err();
        assert_eq!(err.code(), "TSM_PROVIDER_MISMATCH");
        assert_eq!(err.halt_code(), crate::halt::HaltCode::TeeUnavailable);
    }

    #[test]
    fn missing_root_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let err = TsmClient::new(dir.path().join("nope"), TsmProvider::Tdx)
            .get_report(&[0; 64])
            .unwrap_err();
        assert_eq!(err.code(), "TSM_UNAVAILABLE");
    }

    /// A quote function that, like a concurrent writer, bumps the generation of every entry
    /// the first `races` times it is called.
    fn racing_quote(root: PathBuf, races: u32, calls: Arc<AtomicU32>) -> QuoteFn {
        Arc::new(move |inblob: &[u8; 64]| {
            if calls.fetch_add(1, Ordering::SeqCst) < races {
                for e in fs::read_dir(&root).unwrap().flatten() {
                    let Ok(g) = fs::read_to_string(e.path().join("generation")) else {
                        continue;
                    };
                    let g: u64 = g.trim().parse().unwrap();
                    let _ = write_atomic(&e.path(), "generation", format!("{}", g + 1).as_bytes());
                }
            }
            inblob.to_vec()
        })
    }

    #[test]
    fn generation_race_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("report");
        let calls = Arc::new(AtomicU32::new(0));
        let _srv = SimTsmServer::start(
            root.clone(),
            "tdx_guest",
            racing_quote(root.clone(), 100, calls.clone()),
        )
        .unwrap();
        let err = TsmClient::new(&root, TsmProvider::Tdx)
            .get_report(&[1; 64])
            .unwrap_err();
        match &err {
            TsmError::GenerationRace {
                before,
                after,
                attempts,
            } => {
                assert_eq!((*before, *after, *attempts), (0, 2, 3));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.code(), "TSM_GENERATION_RACE");
        assert_eq!(err.halt_code(), crate::halt::HaltCode::TsmGenerationRace);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn one_race_then_retry_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("report");
        let calls = Arc::new(AtomicU32::new(0));
        let _srv = SimTsmServer::start(
            root.clone(),
            "tdx_guest",
            racing_quote(root.clone(), 1, calls.clone()),
        )
        .unwrap();
        let r = TsmClient::new(&root, TsmProvider::Tdx)
            .get_report(&[9; 64])
            .unwrap();
        assert_eq!(r.outblob, vec![9; 64]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
