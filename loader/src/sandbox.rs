//! Sandboxed launch of the engine.
//!
//! The loader never forks in its own (multi-threaded, key-holding) process image. It spawns
//! a fresh copy of its own binary (`LaunchOptions::helper_exe`, normally the running
//! `trusted-loader`) in two stages, with an empty environment:
//!
//! * stage 1 (root, the loader's namespaces): `unshare(CLONE_NEWPID | CLONE_NEWNS)`, makes
//!   every mount private, bind-mounts the components directory onto itself and remounts it
//!   read-only (`nosuid,nodev`), then spawns stage 2, reports its pid, waits for it and
//!   reports how it ended;
//! * stage 2 (PID 1 of the new PID namespace): mounts a fresh `/proc`, marks every fd above
//!   stdio close-on-exec, sets rlimits (`RLIMIT_AS`, `RLIMIT_CPU`, `RLIMIT_NOFILE`,
//!   `RLIMIT_CORE` = 0), drops to uid/gid 65534 with no supplementary groups, sets
//!   `no_new_privs` and a parent-death SIGKILL, changes to the work directory and `execve`s
//!   the engine with only the order's environment. The engine is PID 1 of its namespace:
//!   when it dies, everything it started dies.
//!
//! Stages talk to the loader over a socket pair passed as their stdin (closed on exec, so
//! the engine never holds it): `PID n`, `EXIT n`, `SIGNAL n`, `SETUP_ERR msg`. The engine's
//! stdin is `/dev/null`; its stdout and stderr are pipes read by the loader, which keeps
//! only a bounded tail. The loader enforces the wall-clock timeout by killing stage 1's
//! process group and the engine (SIGKILL), which tears the namespace down.
//!
//! Keys never reach the engine: stages are fresh executions (no inherited memory), the
//! environment is cleared, and no key-related fd exists or is inherited.

use std::ffi::{CString, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{Gid, Pid, Uid};
use serde::{Deserialize, Serialize};

use crate::halt::{Halt, HaltCode};

/// First argument that makes the loader binary run sandbox stage 1.
pub const STAGE1_ARG: &str = "__sandbox-stage1";
/// First argument that makes the loader binary run sandbox stage 2.
pub const STAGE2_ARG: &str = "__sandbox-stage2";
/// uid and gid the engine runs as.
pub const ENGINE_ID: u32 = 65534;
/// Exit status of a stage that failed before the engine started.
pub const SETUP_FAILED_STATUS: i32 = 125;
/// Default `RLIMIT_NOFILE` for the engine.
pub const ENGINE_NOFILE: u64 = 256;

/// What to launch and with which limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// argv; `argv[0]` absolute, or relative to `workdir`.
    pub argv: Vec<String>,
    /// The whole environment of the engine (the order's env).
    pub env: Vec<(String, String)>,
    /// The engine's working directory (every ancestor must be searchable by uid 65534).
    pub workdir: PathBuf,
    /// Mounted read-only for the engine.
    pub components_dir: PathBuf,
    /// Chowned to 65534 so the engine can write there.
    pub outputs_dir: PathBuf,
    /// `RLIMIT_AS` in MiB (0: no limit).
    pub memory_mb: u64,
    /// `RLIMIT_CPU` in seconds (0: no limit).
    pub cpu_seconds: u64,
    /// Wall-clock limit.
    pub timeout: Duration,
}

/// How to launch.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// Binary that runs the stages (`trusted-loader`); its `main` must call [`stage_main`].
    pub helper_exe: PathBuf,
    /// Without root, run the engine directly with a clean environment and limits but without
    /// namespaces or uid change. Only for tests; never set by the loader.
    pub allow_unsandboxed_for_tests: bool,
    /// Bytes of stdout / stderr tail kept.
    pub output_cap: usize,
}

impl LaunchOptions {
    /// Options using the running executable as the stage helper.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(LaunchOptions {
            helper_exe: std::env::current_exe()?,
            allow_unsandboxed_for_tests: false,
            output_cap: 64 * 1024,
        })
    }
}

/// How the engine ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineExit {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Killed by the loader at the wall-clock limit.
    TimedOut,
}

/// Result of a launch that started the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchOutcome {
    /// How it ended.
    pub exit: EngineExit,
    /// Wall-clock time in milliseconds.
    pub wall_ms: u64,
    /// Last bytes of stdout (lossy UTF-8).
    pub stdout_tail: String,
    /// Last bytes of stderr (lossy UTF-8).
    pub stderr_tail: String,
}

impl LaunchOutcome {
    /// `Ok` only for exit status 0; otherwise the `ENGINE_FAILED` / `ENGINE_TIMEOUT` halt.
    pub fn into_result(self) -> Result<LaunchOutcome, Halt> {
        match self.exit {
            EngineExit::Exited(0) => Ok(self),
            EngineExit::Exited(n) => Err(Halt::new(
                HaltCode::EngineFailed,
                format!("engine exited with status {n}"),
            )),
            EngineExit::Signaled(s) => Err(Halt::new(
                HaltCode::EngineFailed,
                format!("engine killed by signal {s}"),
            )),
            EngineExit::TimedOut => Err(Halt::new(
                HaltCode::EngineTimeout,
                format!("engine killed after {} ms", self.wall_ms),
            )),
        }
    }
}

fn launch_failed(detail: impl std::fmt::Display) -> Halt {
    Halt::new(HaltCode::LaunchFailed, detail)
}

/// Launch the engine and supervise it to its end. `Err` (LAUNCH_FAILED) means the engine
/// did not start; an engine that started always yields an outcome.
pub fn launch(spec: &LaunchSpec, opts: &LaunchOptions) -> Result<LaunchOutcome, Halt> {
    if spec.argv.is_empty() {
        return Err(launch_failed("empty argv"));
    }
    if spec.timeout.is_zero() {
        return Err(launch_failed("zero timeout"));
    }
    let root = nix::unistd::geteuid().is_root();
    if !root {
        if opts.allow_unsandboxed_for_tests {
            return launch_unsandboxed(spec, opts);
        }
        return Err(launch_failed("sandbox requires root"));
    }
    prepare_dirs(spec)?;
    let json = serde_json::to_string(spec).map_err(launch_failed)?;
    let (ours, theirs) = UnixStream::pair().map_err(launch_failed)?;
    let start = Instant::now();
    let child = Command::new(&opts.helper_exe)
        .arg(STAGE1_ARG)
        .arg(json)
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| launch_failed(format!("spawn {}: {e}", opts.helper_exe.display())))?;
    let messages = Arc::new(Mutex::new(Vec::<String>::new()));
    let m2 = messages.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(ours).lines() {
            let Ok(line) = line else { break };
            m2.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    });
    let engine_pid = {
        let m = messages.clone();
        move || {
            m.lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .find_map(|l| l.strip_prefix("PID ").and_then(|p| p.parse::<i32>().ok()))
        }
    };
    let (status, timed_out, stdout_tail, stderr_tail) =
        supervise(child, spec.timeout, opts.output_cap, || {
            if let Some(p) = engine_pid() {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        })?;
    let wall_ms = start.elapsed().as_millis() as u64;
    let _ = reader.join();
    let msgs = messages.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(e) = msgs.iter().find_map(|l| l.strip_prefix("SETUP_ERR ")) {
        return Err(launch_failed(format!("sandbox setup: {e}")));
    }
    let exit = if timed_out {
        EngineExit::TimedOut
    } else if let Some(n) = msgs.iter().find_map(|l| l.strip_prefix("EXIT ")) {
        EngineExit::Exited(n.parse().unwrap_or(-1))
    } else if let Some(n) = msgs.iter().find_map(|l| l.strip_prefix("SIGNAL ")) {
        EngineExit::Signaled(n.parse().unwrap_or(-1))
    } else if msgs.iter().any(|l| l.starts_with("PID ")) {
        // The stage died without reporting: treat as a kill of the engine.
        EngineExit::Signaled(status.signal().unwrap_or(Signal::SIGKILL as i32))
    } else {
        return Err(launch_failed(format!(
            "sandbox stage ended without starting the engine ({status})"
        )));
    };
    Ok(LaunchOutcome {
        exit,
        wall_ms,
        stdout_tail,
        stderr_tail,
    })
}

/// Make the outputs writable and the components readable by the engine's uid.
fn prepare_dirs(spec: &LaunchSpec) -> Result<(), Halt> {
    let id = Some(Uid::from_raw(ENGINE_ID));
    let gid = Some(Gid::from_raw(ENGINE_ID));
    nix::unistd::chown(&spec.outputs_dir, id, gid)
        .map_err(|e| launch_failed(format!("chown outputs: {e}")))?;
    set_mode(&spec.outputs_dir, 0o700)?;
    set_mode(&spec.workdir, 0o711)?;
    readable_tree(&spec.components_dir)
}

fn set_mode(p: &Path, mode: u32) -> Result<(), Halt> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| launch_failed(format!("chmod {}: {e}", p.display())))
}

fn readable_tree(dir: &Path) -> Result<(), Halt> {
    set_mode(dir, 0o555)?;
    let rd =
        std::fs::read_dir(dir).map_err(|e| launch_failed(format!("{}: {e}", dir.display())))?;
    for e in rd {
        let e = e.map_err(launch_failed)?;
        let meta = std::fs::symlink_metadata(e.path()).map_err(launch_failed)?;
        if meta.is_dir() {
            readable_tree(&e.path())?;
        } else if meta.is_file() {
            let exec = meta.permissions().mode() & 0o100 != 0;
            set_mode(&e.path(), if exec { 0o555 } else { 0o444 })?;
        }
    }
    Ok(())
}

/// Wait for `child` up to `timeout`, capturing output tails. On timeout, kill its process
/// group and call `on_timeout`. Returns (status, timed_out, stdout tail, stderr tail).
fn supervise(
    mut child: Child,
    timeout: Duration,
    cap: usize,
    on_timeout: impl Fn(),
) -> Result<(std::process::ExitStatus, bool, String, String), Halt> {
    let out = child.stdout.take().map(|s| tail_reader(s, cap));
    let err = child.stderr.take().map(|s| tail_reader(s, cap));
    let pid = Pid::from_raw(child.id() as i32);
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(launch_failed(format!("wait: {e}"))),
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            on_timeout();
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = child.kill();
            break child
                .wait()
                .map_err(|e| launch_failed(format!("wait: {e}")))?;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if !timed_out {
        // Stage 1 is gone; make sure nothing of its group survives.
        let _ = killpg(pid, Signal::SIGKILL);
    }
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    };
    Ok((status, timed_out, join(out), join(err)))
}

fn tail_reader(mut r: impl Read + Send + 'static, cap: usize) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut tail = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > cap {
                        let drop = tail.len() - cap;
                        tail.drain(..drop);
                    }
                }
            }
        }
        tail
    })
}

fn launch_unsandboxed(spec: &LaunchSpec, opts: &LaunchOptions) -> Result<LaunchOutcome, Halt> {
    let start = Instant::now();
    let child = Command::new(&spec.argv[0])
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| launch_failed(format!("spawn {}: {e}", spec.argv[0])))?;
    let (status, timed_out, stdout_tail, stderr_tail) =
        supervise(child, spec.timeout, opts.output_cap, || {})?;
    let exit = if timed_out {
        EngineExit::TimedOut
    } else if let Some(c) = status.code() {
        EngineExit::Exited(c)
    } else {
        EngineExit::Signaled(status.signal().unwrap_or(-1))
    };
    Ok(LaunchOutcome {
        exit,
        wall_ms: start.elapsed().as_millis() as u64,
        stdout_tail,
        stderr_tail,
    })
}

/// Entry point for the stage helpers: if `args[1]` names a stage, run it and never return;
/// otherwise return so `main` proceeds. Call first thing in the loader's `main`.
pub fn stage_main(args: &[OsString]) {
    let stage = args.get(1).and_then(|a| a.to_str());
    let spec = args.get(2).and_then(|a| a.to_str());
    match (stage, spec) {
        (Some(STAGE1_ARG), Some(spec)) => stage1(spec),
        (Some(STAGE2_ARG), Some(spec)) => stage2(spec),
        (Some(STAGE1_ARG | STAGE2_ARG), None) => std::process::exit(SETUP_FAILED_STATUS),
        _ => {}
    }
}

/// The control socket the loader gave us as stdin, duplicated close-on-exec.
fn control_socket() -> Option<UnixStream> {
    std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(UnixStream::from)
}

fn report(sock: &mut Option<UnixStream>, line: &str) {
    if let Some(s) = sock.as_mut() {
        let _ = writeln!(s, "{line}");
        let _ = s.flush();
    }
}

fn setup_failed(sock: &mut Option<UnixStream>, what: &str, e: impl std::fmt::Display) -> ! {
    report(sock, &format!("SETUP_ERR {what}: {e}").replace('\n', " "));
    std::process::exit(SETUP_FAILED_STATUS)
}

fn stage1(spec_json: &str) -> ! {
    let mut sock = control_socket();
    let _ = nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL));
    let spec: LaunchSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => setup_failed(&mut sock, "spec", e),
    };
    if let Err(e) = unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS) {
        setup_failed(&mut sock, "unshare", e);
    }
    if let Err(e) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    ) {
        setup_failed(&mut sock, "make mounts private", e);
    }
    let c = &spec.components_dir;
    if let Err(e) = mount(
        Some(c),
        c,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    ) {
        setup_failed(&mut sock, "bind components", e);
    }
    if let Err(e) = mount(
        None::<&str>,
        c,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    ) {
        setup_failed(&mut sock, "remount components read-only", e);
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => setup_failed(&mut sock, "current_exe", e),
    };
    let stage2_sock = match sock.as_ref().map(|s| s.try_clone()) {
        Some(Ok(s)) => Stdio::from(OwnedFd::from(s)),
        _ => Stdio::null(),
    };
    let mut child = match Command::new(exe)
        .arg(STAGE2_ARG)
        .arg(spec_json)
        .env_clear()
        .stdin(stage2_sock)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => setup_failed(&mut sock, "spawn stage 2", e),
    };
    report(&mut sock, &format!("PID {}", child.id()));
    match child.wait() {
        Ok(st) => {
            if let Some(c) = st.code() {
                report(&mut sock, &format!("EXIT {c}"));
            } else if let Some(s) = st.signal() {
                report(&mut sock, &format!("SIGNAL {s}"));
            }
            std::process::exit(0)
        }
        Err(e) => setup_failed(&mut sock, "wait stage 2", e),
    }
}

fn cstrings<'a>(it: impl Iterator<Item = &'a str>) -> Result<Vec<CString>, std::ffi::NulError> {
    it.map(CString::new).collect()
}

fn stage2(spec_json: &str) -> ! {
    let mut sock = control_socket();
    // The engine's stdin is /dev/null; the control socket survives only until exec.
    match std::fs::File::open("/dev/null") {
        Ok(f) => {
            if let Err(e) = nix::unistd::dup2(f.as_raw_fd(), 0) {
                setup_failed(&mut sock, "stdin", e);
            }
        }
        Err(e) => setup_failed(&mut sock, "open /dev/null", e),
    }
    let spec: LaunchSpec = match serde_json::from_str(spec_json) {
        Ok(s) => s,
        Err(e) => setup_failed(&mut sock, "spec", e),
    };
    if let Err(e) = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    ) {
        setup_failed(&mut sock, "mount /proc", e);
    }
    if let Err(e) = cloexec_above_stdio() {
        setup_failed(&mut sock, "close fds", e);
    }
    let mb = 1024 * 1024;
    let mut limits = vec![
        (Resource::RLIMIT_CORE, 0, 0),
        (Resource::RLIMIT_NOFILE, ENGINE_NOFILE, ENGINE_NOFILE),
    ];
    if spec.memory_mb > 0 {
        let b = spec.memory_mb.saturating_mul(mb);
        limits.push((Resource::RLIMIT_AS, b, b));
    }
    if spec.cpu_seconds > 0 {
        limits.push((
            Resource::RLIMIT_CPU,
            spec.cpu_seconds,
            spec.cpu_seconds.saturating_add(1),
        ));
    }
    for (r, soft, hard) in limits {
        if let Err(e) = setrlimit(r, soft, hard) {
            setup_failed(&mut sock, "setrlimit", e);
        }
    }
    let id = Uid::from_raw(ENGINE_ID);
    let gid = Gid::from_raw(ENGINE_ID);
    if let Err(e) = nix::unistd::setgroups(&[])
        .and_then(|()| nix::unistd::setresgid(gid, gid, gid))
        .and_then(|()| nix::unistd::setresuid(id, id, id))
    {
        setup_failed(&mut sock, "drop privileges", e);
    }
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        setup_failed(&mut sock, "no_new_privs", e);
    }
    // Set after the credential change, which clears it.
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL)) {
        setup_failed(&mut sock, "pdeathsig", e);
    }
    if let Err(e) = nix::unistd::chdir(&spec.workdir) {
        setup_failed(&mut sock, "chdir workdir", e);
    }
    let argv = match cstrings(spec.argv.iter().map(String::as_str)) {
        Ok(a) => a,
        Err(e) => setup_failed(&mut sock, "argv", e),
    };
    let envs: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let env = match cstrings(envs.iter().map(String::as_str)) {
        Ok(a) => a,
        Err(e) => setup_failed(&mut sock, "env", e),
    };
    let Some(prog) = argv.first() else {
        setup_failed(&mut sock, "argv", "empty")
    };
    let e = match nix::unistd::execve(prog, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    setup_failed(&mut sock, &format!("exec {}", spec.argv[0]), e)
}

fn cloexec_above_stdio() -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // The directory's own fd is gone by now: EBADF is fine.
        match fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
            Ok(_) | Err(nix::Error::EBADF) => {}
            Err(e) => return Err(std::io::Error::from_raw_os_error(e as i32)),
        }
    }
    Ok(())
}
