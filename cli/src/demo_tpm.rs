//! `tl demo --tpm`: the CVM's vTPM is a real TPM 2.0 (Debian's swtpm over
//! a Unix socket). The demo plays the boot chain (one measurement into
//! PCR 8), provisions the TPM-sealed key (a fresh seed sealed to PCR 8, the
//! library code behind `trusted-loader tpm-seal`), and the loader then
//! quotes the vTPM beside the TDX quote and unseals its key.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tl_evidence::tpm::attest::TPM_ALG_SHA256;
use tl_evidence::tpm::PcrSelection;
use tl_loader::tpm::{Tpm, TpmTransportConfig};

/// The PCR that the demo's "boot chain" extends and the key is sealed to.
pub const PCR: u32 = 8;

/// A running swtpm and what was provisioned on it.
pub struct DemoTpm {
    child: Child,
    /// Its command socket.
    pub socket: PathBuf,
    /// The sealed seed (`tpm.sealed_seed` in the loader's configuration).
    pub sealed_seed: PathBuf,
    /// PCR 8 (SHA-256) as sealed and as the order pins it.
    pub pcr: [u8; 32],
    /// The encryption public key the seed derives to (`x25519:...`).
    pub public_key: String,
}

impl Drop for DemoTpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// swtpm on a Unix socket in `state` (no loopback ports to race for).
fn start_swtpm(state: &Path) -> Result<(Child, PathBuf)> {
    let socket = state.join("tpm.sock");
    // A Unix socket path holds at most 107 bytes (sun_path).
    if socket.as_os_str().len() > 100 {
        bail!(
            "the demo directory is too deep for swtpm's Unix socket ({} bytes; at most 100): use a shorter --dir",
            socket.as_os_str().len()
        );
    }
    let mut child = Command::new("swtpm")
        .args(["socket", "--tpm2"])
        .arg("--server")
        .arg(format!("type=unixio,path={}", socket.display()))
        .arg("--ctrl")
        .arg(format!(
            "type=unixio,path={}",
            state.join("ctrl.sock").display()
        ))
        .args(["--flags", "not-need-init,startup-clear"])
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow!(
                "swtpm is not installed: run scripts/tpm-deps (Debian's swtpm, swtpm-tools)"
            ),
            _ => anyhow!("starting swtpm: {e}"),
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("swtpm exited: {status}");
        }
        if UnixStream::connect(&socket).is_ok() {
            // That probe connection is closed; swtpm serves the next one.
            return Ok((child, socket));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    bail!("swtpm did not start")
}

fn sel() -> Vec<PcrSelection> {
    vec![PcrSelection {
        hash_alg: TPM_ALG_SHA256,
        pcrs: vec![PCR],
    }]
}

fn read_pcr(tpm: &mut Tpm) -> Result<[u8; 32]> {
    let v = tpm
        .pcr_read(&sel())
        .map_err(|e| anyhow!("{}: {e}", e.code()))?;
    v.get(&TPM_ALG_SHA256)
        .and_then(|b| b.get(&PCR))
        .and_then(|x| <[u8; 32]>::try_from(x.as_slice()).ok())
        .context("PCR 8 not read")
}

fn extend(tpm: &mut Tpm, what: &[u8]) -> Result<()> {
    let d = tl_ca::sha256(what).to_vec();
    tpm.pcr_extend(PCR, &[(TPM_ALG_SHA256, d)])
        .map_err(|e| anyhow!("{}: {e}", e.code()))
}

impl DemoTpm {
    /// Start swtpm in `dir`, measure the demo's boot chain into PCR 8 and
    /// seal a fresh seed to it.
    pub fn provision(dir: &Path) -> Result<Self> {
        let state = dir.join("swtpm");
        std::fs::create_dir_all(&state)?;
        let (child, socket) = start_swtpm(&state)?;
        let mut this = DemoTpm {
            child,
            socket,
            sealed_seed: dir.join("tpm-sealed-seed"),
            pcr: [0; 32],
            public_key: String::new(),
        };
        let mut tpm = this.client()?;
        extend(&mut tpm, b"trusted-loader demo: the measured boot chain")?;
        this.pcr = read_pcr(&mut tpm)?;
        let (sealed, key) = tl_loader::tpm::provision_sealed_seed(&mut tpm, &sel(), 1)
            .map_err(|e| anyhow!("{}: {e}", e.code()))?;
        std::fs::write(&this.sealed_seed, sealed.to_bytes())?;
        this.public_key = key.public_key().to_text();
        Ok(this)
    }

    fn client(&self) -> Result<Tpm> {
        Tpm::open(&TpmTransportConfig::Unix {
            path: self.socket.clone(),
        })
        .map_err(|e| anyhow!("{}: {e}", e.code()))
    }

    /// Another boot chain: PCR 8 extended once more after sealing.
    pub fn change_boot_chain(&self) -> Result<[u8; 32]> {
        let mut tpm = self.client()?;
        extend(&mut tpm, b"another boot loader")?;
        read_pcr(&mut tpm)
    }

    /// The loader configuration's `[tpm]` section.
    pub fn loader_section(&self) -> String {
        format!(
            "\n[tpm]\nunix = \"{}\"\npcrs = [{PCR}]\nsealed_seed = \"{}\"\n",
            self.socket.display(),
            self.sealed_seed.display()
        )
    }
}
