//! Sandboxed launch, as root, through the real `trusted-loader` stage helper.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tl_loader::sandbox::{launch, EngineExit, LaunchOptions, LaunchSpec};
use tl_loader::workdir::WorkDir;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Env {
    _base: tempfile::TempDir,
    wd: WorkDir,
}

fn setup() -> Env {
    let base = tempfile::tempdir().unwrap();
    // The engine (uid 65534) must be able to traverse to its work directory.
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let wd = WorkDir::create(base.path(), true).unwrap();
    fs::write(wd.components().join("data.csv"), b"a,label\n1,0\n").unwrap();
    Env { _base: base, wd }
}

fn opts() -> LaunchOptions {
    LaunchOptions {
        helper_exe: PathBuf::from(env!("CARGO_BIN_EXE_trusted-loader")),
        allow_unsandboxed_for_tests: false,
        output_cap: 64 * 1024,
    }
}

fn spec(wd: &WorkDir, script: &str, timeout: Duration) -> LaunchSpec {
    LaunchSpec {
        argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
        env: vec![
            ("FOO".into(), "bar".into()),
            ("PATH".into(), "/usr/bin:/bin".into()),
        ],
        workdir: wd.root().to_owned(),
        components_dir: wd.components(),
        outputs_dir: wd.outputs(),
        memory_mb: 0,
        cpu_seconds: 0,
        timeout,
    }
}

fn out(wd: &WorkDir, name: &str) -> String {
    fs::read_to_string(wd.outputs().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn engine_is_isolated() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    std::env::set_var("TL_TEST_SECRET", "do-not-leak");

    let e = setup();
    let script = r#"
id -u > outputs/uid; id -g > outputs/gid; id -G > outputs/groups
echo $$ > outputs/pid
if (echo x > components/new) 2> outputs/write_err; then echo writable; else echo denied; fi > outputs/write
grep " $PWD/components " /proc/self/mountinfo > outputs/mount
cat components/data.csv > outputs/read
env > outputs/env
ls /proc | grep -c '^[0-9][0-9]*$' > outputs/nprocs
grep NoNewPrivs /proc/$$/status > outputs/nnp
echo hello; echo oops >&2
"#;
    let o = launch(&spec(&e.wd, script, Duration::from_secs(20)), &opts()).unwrap();
    assert_eq!(o.exit, EngineExit::Exited(0), "stderr: {}", o.stderr_tail);
    assert_eq!(o.stdout_tail, "hello\n");
    assert_eq!(o.stderr_tail, "oops\n");
    assert_eq!(out(&e.wd, "uid").trim(), "65534");
    assert_eq!(out(&e.wd, "gid").trim(), "65534");
    assert_eq!(out(&e.wd, "groups").trim(), "65534");
    assert_eq!(out(&e.wd, "pid").trim(), "1");
    assert_eq!(out(&e.wd, "write").trim(), "denied");
    // Denied by the read-only mount, not only by permissions.
    assert!(out(&e.wd, "write_err").contains("Read-only file system"));
    let mount = out(&e.wd, "mount");
    let opts_field = mount.split(' ').nth(5).unwrap();
    assert!(
        opts_field.split(',').any(|o| o == "ro"),
        "components mount: {mount}"
    );
    assert_eq!(out(&e.wd, "read"), "a,label\n1,0\n");
    let env = out(&e.wd, "env");
    assert!(env.contains("FOO=bar"));
    assert!(!env.contains("TL_TEST_SECRET"), "env leaked: {env}");
    // Only the engine's shell and its `ls`/`grep` are visible.
    assert!(out(&e.wd, "nprocs").trim().parse::<u32>().unwrap() <= 3);
    assert_eq!(out(&e.wd, "nnp").split_whitespace().nth(1), Some("1"));
}

fn alive_with_arg(arg: &str) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(arg))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn timeout_kills_the_whole_namespace() {
    if !is_root() {
        return;
    }
    let e = setup();
    let s = spec(
        &e.wd,
        "/bin/sleep 1000.25 & /bin/sleep 1000.25",
        Duration::from_millis(800),
    );
    let o = launch(&s, &opts()).unwrap();
    assert_eq!(o.exit, EngineExit::TimedOut);
    assert!(o.wall_ms >= 800 && o.wall_ms < 3000, "wall {}", o.wall_ms);
    assert_eq!(
        o.clone().into_result().unwrap_err().code(),
        "ENGINE_TIMEOUT"
    );
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = alive_with_arg("1000.25");
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(left, 0, "engine processes survived the timeout");
}

#[test]
fn limits_apply() {
    if !is_root() {
        return;
    }
    let e = setup();
    let mut s = spec(
        &e.wd,
        "cat /proc/self/limits > outputs/limits; \
         python3 -c 'b = bytearray(1024 * 1024 * 1024)' 2> outputs/py; echo $? > outputs/pyrc",
        Duration::from_secs(20),
    );
    s.memory_mb = 256;
    s.cpu_seconds = 7;
    let o = launch(&s, &opts()).unwrap();
    assert_eq!(o.exit, EngineExit::Exited(0), "{}", o.stderr_tail);
    let limits = out(&e.wd, "limits");
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} in {limits}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(line("Max address space").contains(&(256u64 * 1024 * 1024).to_string()));
    assert!(line("Max cpu time").starts_with("Max cpu time 7 8"));
    assert!(line("Max core file size").starts_with("Max core file size 0 0"));
    assert!(line("Max open files").starts_with("Max open files 256 256"));
    assert_ne!(out(&e.wd, "pyrc").trim(), "0");
    assert!(
        out(&e.wd, "py").contains("MemoryError"),
        "{}",
        out(&e.wd, "py")
    );
}

#[test]
fn exit_status_and_output_cap() {
    if !is_root() {
        return;
    }
    let e = setup();
    let mut o = opts();
    o.output_cap = 100;
    let s = spec(
        &e.wd,
        "head -c 10000 /dev/zero | tr '\\0' x; echo; exit 7",
        Duration::from_secs(20),
    );
    let r = launch(&s, &o).unwrap();
    assert_eq!(r.exit, EngineExit::Exited(7));
    assert_eq!(r.stdout_tail.len(), 100);
    assert_eq!(r.into_result().unwrap_err().code(), "ENGINE_FAILED");
}

#[test]
fn setup_failure_is_launch_failed() {
    if !is_root() {
        return;
    }
    let e = setup();
    let mut s = spec(&e.wd, "true", Duration::from_secs(20));
    s.argv = vec!["/nonexistent/engine".into()];
    let err = launch(&s, &opts()).unwrap_err();
    assert_eq!(err.code(), "LAUNCH_FAILED");
    assert!(
        err.detail.contains("exec /nonexistent/engine"),
        "{}",
        err.detail
    );

    let mut s = spec(&e.wd, "true", Duration::from_secs(20));
    s.workdir = Path::new("/nonexistent").to_owned();
    s.outputs_dir = e.wd.outputs();
    assert_eq!(launch(&s, &opts()).unwrap_err().code(), "LAUNCH_FAILED");
}

#[test]
fn work_area_wipe_after_engine_writes() {
    if !is_root() {
        return;
    }
    let mut e = setup();
    let s = spec(
        &e.wd,
        "mkdir outputs/d && echo model > outputs/d/m.json && chmod 0500 outputs/d",
        Duration::from_secs(20),
    );
    assert_eq!(launch(&s, &opts()).unwrap().exit, EngineExit::Exited(0));
    let root = e.wd.root().to_owned();
    let r = e.wd.wipe().unwrap();
    assert_eq!(r.files_zeroed, 2);
    assert!(!root.exists());
}

#[test]
fn only_stdio_is_inherited() {
    if !is_root() {
        return;
    }
    // A non-close-on-exec fd in the loader must not reach the engine.
    let (r, _w) = nix::unistd::pipe().unwrap();
    nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&r), 200).unwrap();
    let e = setup();
    let mut s = spec(&e.wd, "", Duration::from_secs(20));
    // `ls` itself is PID 1 and opens the listed directory as fd 3.
    s.argv = vec!["/bin/ls".into(), "/proc/self/fd".into()];
    let o = launch(&s, &opts()).unwrap();
    assert_eq!(o.exit, EngineExit::Exited(0), "{}", o.stderr_tail);
    assert_eq!(o.stdout_tail, "0\n1\n2\n3\n");
}
