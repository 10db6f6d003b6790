//! `tl demo --qemu`: the same story with the loader as PID 1 of a QEMU guest
//! (image/README.md).
//!
//! The host side builds an initramfs whose `/trusted-loader` is the static
//! loader, with its measured configuration, the CA root, the simulated TEE's
//! seed and the kernel modules it loads; starts swtpm (the guest's vTPM, so
//! the firmware writes a real TCG event log); and boots QEMU (TCG, Debian's
//! OVMF, Debian's cloud kernel) with user-mode networking restricted to two
//! forwarded loopback ports: the CA, and the owners' relay
//! ([`tl_loader::relay`]), which this module serves over plain HTTP and maps
//! onto the demo's directories so the owners' code is the same as for a
//! loader process.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::{engine::general_purpose::STANDARD, Engine};
use tl_loader::pipeline::{publish, source};
use tl_loader::relay::Bundle;

/// Guest-side address of the forwarded ports.
const GUEST_HOST: &str = "10.0.2.100";
const GUEST_CA_PORT: u16 = 8443;
const GUEST_RELAY_PORT: u16 = 8080;
/// Where the engine writes its "started" marker inside the guest.
pub const GUEST_MARKER: &str = "/markers/engine-started";
/// The kernel modules PID 1 loads, in dependency order (Debian 12 cloud kernel).
pub const MODULES: &[&str] = &[
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
];
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
const FIRMWARE_LOG: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

/// Where the harness finds what it boots.
#[derive(Debug, Clone)]
pub struct QemuSetup {
    /// `vmlinuz`, `modules/` (as unpacked by scripts/image-deps).
    pub kernel_dir: PathBuf,
    /// The static `trusted-loader` binary.
    pub loader: PathBuf,
}

impl QemuSetup {
    /// Check every host tool and file; the error tells how to get them.
    pub fn check(&self) -> Result<()> {
        let mut missing = Vec::new();
        for tool in ["qemu-system-x86_64", "swtpm"] {
            if which(tool).is_none() {
                missing.push(tool.to_owned());
            }
        }
        for f in [
            PathBuf::from(OVMF),
            self.kernel_dir.join("vmlinuz"),
            self.kernel_dir.join("modules"),
            self.loader.clone(),
        ] {
            if !f.exists() {
                missing.push(f.display().to_string());
            }
        }
        if !missing.is_empty() {
            bail!(
                "the QEMU harness lacks {}: run scripts/image-deps (and build the static loader)",
                missing.join(", ")
            );
        }
        Ok(())
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|c| c.is_file())
    })
}

/// What the guest is told (its measured configuration and files).
pub struct GuestInputs<'a> {
    pub ca_root_pem: &'a str,
    pub sim_seed: [u8; 32],
    pub ca_timeout_seconds: u64,
}

/// The loader's configuration inside the guest.
pub fn guest_config(ca_timeout_seconds: u64) -> String {
    let modules: Vec<String> = MODULES
        .iter()
        .map(|m| format!("\"/lib/modules/{m}.ko\""))
        .collect();
    format!(
        r#"ca_url = "https://{GUEST_HOST}:{GUEST_CA_PORT}"
ca_tls_name = "localhost"
ca_root = "/etc/trusted-loader/ca-root.pem"
ca_timeout_seconds = {ca_timeout_seconds}
tee = "sim"
allow_simulation = true
tsm_root = "/run/tsm"
sim_seed_file = "/etc/trusted-loader/sim-seed"
firmware_event_log = "{FIRMWARE_LOG}"
kernel_modules = [{}]
order_source_dir = "/run/order"
order_url = "http://{GUEST_HOST}:{GUEST_RELAY_PORT}/order"
publish_url = "http://{GUEST_HOST}:{GUEST_RELAY_PORT}/publish"
deadline_seconds = 180
work_base = "/run"
tmpfs = true
key_mode = "ephemeral"
report_out = "/run/report/report.json"
publish_dir = "/run/publish"
output_dir = "/run/outputs"

[network]
interface = "eth0"
address = "10.0.2.15"
prefix_len = 24

# The guest's vTPM (swtpm behind QEMU's tpm-crb): its PCRs 0-9 are quoted
# beside the TDX quote, with the firmware event log, for the CA to replay.
[tpm]
"#,
        modules.join(", ")
    )
}

// ---- initramfs (newc cpio) ----------------------------------------------

/// A newc ("070701") cpio archive written in memory: the initramfs format.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn header(&mut self, name: &str, mode: u32, size: usize, rdev: (u32, u32)) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            size as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
    }
    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
    /// A directory.
    pub fn dir(&mut self, name: &str, perm: u32) {
        self.header(name, 0o040000 | perm, 0, (0, 0));
    }
    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.header(name, 0o100000 | perm, data.len(), (0, 0));
        self.out.extend_from_slice(data);
        self.pad();
    }
    /// A character device.
    pub fn chardev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.header(name, 0o020000 | perm, 0, (major, minor));
    }
    /// Close the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.header("TRAILER!!!", 0, 0, (0, 0));
        self.out
    }
}

fn find_module(root: &Path, name: &str) -> Option<PathBuf> {
    let want = format!("{name}.ko");
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).ok()?.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            } else if e.file_name().to_str() == Some(want.as_str()) {
                return Some(p);
            }
        }
    }
    None
}

/// Build the initramfs: `/trusted-loader` as init, its configuration, the CA
/// root, the simulated TEE's seed and the kernel modules.
pub fn build_initramfs(setup: &QemuSetup, g: &GuestInputs, out: &Path) -> Result<String> {
    let mut c = Cpio::default();
    for d in ["dev", "proc", "sys", "run", "tmp", "etc", "lib", "root"] {
        c.dir(d, 0o755);
    }
    c.chardev("dev/console", 0o600, 5, 1);
    c.dir("markers", 0o777);
    c.dir("lib/modules", 0o755);
    for m in MODULES {
        let p = find_module(&setup.kernel_dir.join("modules"), m)
            .with_context(|| format!("kernel module {m}.ko not found (scripts/image-deps)"))?;
        c.file(&format!("lib/modules/{m}.ko"), 0o644, &fs::read(&p)?);
    }
    let loader = fs::read(&setup.loader).with_context(|| setup.loader.display().to_string())?;
    c.file("trusted-loader", 0o755, &loader);
    let cfg = guest_config(g.ca_timeout_seconds);
    c.dir("etc/trusted-loader", 0o755);
    c.file("etc/trusted-loader/loader.toml", 0o644, cfg.as_bytes());
    c.file(
        "etc/trusted-loader/ca-root.pem",
        0o644,
        g.ca_root_pem.as_bytes(),
    );
    c.file("etc/trusted-loader/sim-seed", 0o600, &g.sim_seed);
    let bytes = c.finish();
    fs::write(out, &bytes)?;
    Ok(hex::encode(tl_ca::sha256(&bytes)))
}

// ---- the owners' relay --------------------------------------------------

/// The relay's view of the demo's directories.
#[derive(Clone)]
pub struct RelayDirs {
    /// The order source directory the owners fill (served once `READY` exists).
    pub input: PathBuf,
    /// Where the loader's identity lands.
    pub publish: PathBuf,
    /// Where the sealed outputs land.
    pub outputs: PathBuf,
    /// Where the run report lands.
    pub report: PathBuf,
}

/// A plain-HTTP relay on 127.0.0.1; stops on drop.
pub struct Relay {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    pub fn start(dirs: RelayDirs) -> Result<Self> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        l.set_nonblocking(true)?;
        let port = l.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
                        let _ = serve_one(conn, &dirs);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Relay {
            port,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(mut conn: TcpStream, status: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    conn.flush()
}

fn serve_one(conn: TcpStream, dirs: &RelayDirs) -> Result<()> {
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    match (method, path) {
        ("GET", "/order") => {
            if !dirs.input.join(source::READY).exists() {
                return Ok(respond(conn, "404 Not Found", b"{}")?);
            }
            let mut files = BTreeMap::new();
            files.insert(
                source::ORDER.to_owned(),
                STANDARD.encode(fs::read(dirs.input.join(source::ORDER))?),
            );
            for sub in [source::GRANTS, source::COMPONENTS] {
                for e in fs::read_dir(dirs.input.join(sub))?.flatten() {
                    let name = format!("{sub}/{}", e.file_name().to_string_lossy());
                    files.insert(name, STANDARD.encode(fs::read(e.path())?));
                }
            }
            let body = serde_json::to_vec(&Bundle { files })?;
            Ok(respond(conn, "200 OK", &body)?)
        }
        ("POST", "/publish") if len <= 64 << 20 => {
            let mut body = vec![0u8; len];
            r.read_exact(&mut body)?;
            let b: Bundle = serde_json::from_slice(&body)?;
            // The certificate last: its presence tells the owners the rest is there.
            let mut names: Vec<&String> = b.files.keys().collect();
            names.sort_by_key(|n| n.as_str() == publish::CERTIFICATE);
            for name in names {
                let data = STANDARD.decode(&b.files[name])?;
                let dest = match name.split_once('/') {
                    None => dirs.publish.join(plain(name)?),
                    Some(("outputs", n)) => dirs.outputs.join(plain(n)?),
                    Some(("report", _)) => dirs.report.clone(),
                    _ => bail!("relay: unexpected file {name:?}"),
                };
                let tmp = dest.with_extension("relay-tmp");
                fs::write(&tmp, data)?;
                fs::rename(&tmp, &dest)?;
            }
            Ok(respond(conn, "200 OK", b"{}")?)
        }
        _ => Ok(respond(conn, "400 Bad Request", b"{}")?),
    }
}

/// A single file name (no separators, no leading dot).
fn plain(n: &str) -> Result<&str> {
    if n.is_empty() || n.starts_with('.') || n.contains('/') {
        bail!("relay: bad file name {n:?}");
    }
    Ok(n)
}

// ---- the boot ------------------------------------------------------------

/// A booted guest: QEMU, its swtpm and the relay. Dropping it kills all three.
pub struct Boot {
    pub qemu: Child,
    swtpm: Child,
    _relay: Relay,
    pub serial: PathBuf,
    pub started: Instant,
}

impl Drop for Boot {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let _ = self.swtpm.kill();
        let _ = self.swtpm.wait();
    }
}

/// Build the initramfs in `vm_dir`, start swtpm and the relay, and boot.
/// The serial console goes to `serial`.
pub fn boot(
    setup: &QemuSetup,
    g: &GuestInputs,
    ca_addr: &str,
    dirs: RelayDirs,
    vm_dir: &Path,
    serial: &Path,
) -> Result<(Boot, String)> {
    setup.check()?;
    fs::create_dir_all(vm_dir)?;
    let initrd = vm_dir.join("initramfs.cpio");
    let initrd_sha = build_initramfs(setup, g, &initrd)?;
    let ca_port = ca_addr
        .rsplit_once(':')
        .map(|(_, p)| p)
        .context("CA address has no port")?;

    let tpm = vm_dir.join("tpm");
    let _ = fs::remove_dir_all(&tpm);
    fs::create_dir_all(&tpm)?;
    let sock = tpm.join("swtpm.sock");
    let swtpm = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", tpm.display()))
        .arg("--ctrl")
        .arg(format!("type=unixio,path={}", sock.display()))
        .arg("--terminate")
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(vm_dir.join("swtpm.log"))?))
        .spawn()
        .context("starting swtpm")?;
    let t = Instant::now();
    while !sock.exists() {
        if t.elapsed() > Duration::from_secs(10) {
            bail!("swtpm did not create {}", sock.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let relay = Relay::start(dirs)?;
    // A `tcp:` chardev behind guestfwd is one connection opened when QEMU
    // starts (a TLS server drops it long before the guest speaks); `cmd:`
    // runs a fresh pipe per guest connection instead: `tl demo --pipe-to`.
    let me = std::env::current_exe().context("locating tl")?;
    let me = me.to_str().context("tl's path is not UTF-8")?;
    if me.contains([',', ' ', '\'', '"']) {
        bail!("tl's path {me:?} cannot go in a QEMU option");
    }
    let fwd = |guest_port: u16, host_port: &str| {
        format!(
            "guestfwd=tcp:{GUEST_HOST}:{guest_port}-cmd:{me} demo --pipe-to 127.0.0.1:{host_port}"
        )
    };
    let netdev = format!(
        "user,id=n0,restrict=on,{},{}",
        fwd(GUEST_CA_PORT, ca_port),
        fwd(GUEST_RELAY_PORT, &relay.port.to_string())
    );
    let _ = fs::remove_file(serial);
    let qemu = Command::new("qemu-system-x86_64")
        .args([
            "-machine", "q35", "-cpu", "max", "-accel", "tcg", "-m", "1024", "-smp", "2",
        ])
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-monitor",
            "none",
        ])
        .args(["-bios", OVMF])
        .arg("-kernel")
        .arg(setup.kernel_dir.join("vmlinuz"))
        .arg("-initrd")
        .arg(&initrd)
        .args([
            "-append",
            "console=ttyS0 rdinit=/trusted-loader panic=-1 quiet",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .args([
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
        ])
        .arg("-chardev")
        .arg(format!("socket,id=chrtpm,path={}", sock.display()))
        .args([
            "-tpmdev",
            "emulator,id=tpm0,chardev=chrtpm",
            "-device",
            "tpm-crb,tpmdev=tpm0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(vm_dir.join("qemu.log"))?))
        .spawn()
        .context("starting qemu-system-x86_64")?;
    Ok((
        Boot {
            qemu,
            swtpm,
            _relay: relay,
            serial: serial.to_path_buf(),
            started: Instant::now(),
        },
        initrd_sha,
    ))
}

/// Copy stdin to a TCP connection to `addr` and the connection to stdout,
/// until both directions end.
pub fn pipe(addr: &str) -> Result<()> {
    // QEMU hands over a non-blocking socket as stdin and stdout; blocking
    // copies need it blocking.
    for fd in [0, 1] {
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        );
    }
    let conn = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    let mut up = conn.try_clone()?;
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    // Flush every chunk: stdout is line-buffered and TLS records have no lines.
    let mut down = conn;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match down.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
                    break;
                }
            }
        }
    }
    let _ = t.join();
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cpio_layout() {
        let mut c = Cpio::default();
        c.dir("etc", 0o755);
        c.file("etc/x", 0o644, b"hello");
        c.chardev("dev/console", 0o600, 5, 1);
        let b = c.finish();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(&b[..6], b"070701");
        // Second header starts after "etc\0" padded: 110 + 4 = 114 -> 116.
        assert_eq!(&b[116..122], b"070701");
        // Mode of the regular file, size 5.
        assert_eq!(&b[116 + 14..116 + 22], b"000081A4");
        assert_eq!(&b[116 + 54..116 + 62], b"00000005");
        let s = String::from_utf8_lossy(&b);
        assert!(s.contains("hello") && s.contains("TRAILER!!!"));
        // The console device: mode 020600, rdev 5:1.
        let i = s.find("dev/console").unwrap() - 110;
        assert_eq!(&b[i + 14..i + 22], b"00002180");
        assert_eq!(&b[i + 78..i + 94], b"0000000500000001");
    }

    #[test]
    fn guest_config_parses_as_a_loader_config() {
        let c = tl_loader::config::LoaderConfig::from_toml(&guest_config(30)).unwrap();
        assert_eq!(c.kernel_modules.len(), MODULES.len());
        assert_eq!(c.ca_tls_name.as_deref(), Some("localhost"));
        assert!(c.order_url.is_some() && c.sim_seed_file.is_some());
    }
}
