//! Benchmark: open (decrypt + digest + write to tmpfs) against
//! `openssl dgst -sha256` hashing the same plaintext.
//!
//! ```text
//! cargo run --release -p tl-seal --example open_bench -- --size 1G --dir /dev/shm [--reps 3]
//! cargo run --release -p tl-seal --example open_bench -- --size 1G --work-tmpfs   (root)
//! ```
//!
//! Each measurement runs in its own process (this binary re-executed with
//! `--open-only`), so the peak RSS reported is that of the opening process
//! alone. Times are process wall times (spawn to exit) for both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use tl_seal::*;

fn parse_size(s: &str) -> u64 {
    let s = s.trim();
    let (n, m) = match s.chars().last() {
        Some('G') => (&s[..s.len() - 1], 1u64 << 30),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('K') => (&s[..s.len() - 1], 1 << 10),
        _ => (s, 1),
    };
    n.parse::<u64>().expect("size") * m
}

fn max_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| u.max_rss())
        .unwrap_or(-1)
}

fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Child mode: open one sealed file and report.
fn open_only(mode: &str, sealed: &Path, out: &Path, key_text: &str) {
    let key = ContentKey::from_text(key_text).expect("key");
    let digests = match mode {
        "flat" => DigestSet::SHA256,
        "tree" => DigestSet::TREE,
        _ => panic!("mode"),
    };
    let t = Instant::now();
    let mut r = File::open(sealed).expect("open sealed");
    // --reuse-output: write into the previous run's output pages (no
    // truncation, so no fresh pages), which isolates the pipeline from the
    // cost of the kernel (and, in a VM, the host) providing fresh memory.
    let mut w = if std::env::var_os(REUSE).is_some() {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(out)
            .expect("open out")
    } else {
        File::create(out).expect("create out")
    };
    // As the loader does (tl_loader::workdir::preallocate): reserve the
    // plaintext's room before decrypting into it, unless --no-preallocate.
    if std::env::var_os(NO_PREALLOCATE).is_none() {
        let (h, _) =
            tl_seal::stream::read_header(&mut File::open(sealed).expect("sealed")).expect("header");
        nix::fcntl::fallocate(
            std::os::fd::AsRawFd::as_raw_fd(&w),
            nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
            0,
            h.plaintext_len as i64,
        )
        .expect("fallocate");
    }
    let s = open_stream(
        &key,
        &mut r,
        &mut w,
        OpenOptions {
            digests,
            hash_threads: threads(),
        },
    )
    .expect("open_stream");
    let secs = t.elapsed().as_secs_f64();
    let d = s.digests.sha256.or(s.digests.tree_sha256).expect("digest");
    let (user, sys) = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let t = |v: nix::sys::time::TimeVal| v.tv_sec() as f64 + v.tv_usec() as f64 / 1e6;
            (t(u.user_time()), t(u.system_time()))
        })
        .unwrap_or_default();
    eprintln!("  {mode}: cpu user {user:.3}s sys {sys:.3}s");
    println!(
        "secs={secs} rss_kib={} digest={}",
        max_rss_kib(),
        hex::encode(d)
    );
}

/// Set (for the child processes too) by `--reuse-output`.
const REUSE: &str = "TL_OPEN_BENCH_REUSE_OUTPUT";
/// Set (for the child processes too) by `--no-preallocate`.
const NO_PREALLOCATE: &str = "TL_OPEN_BENCH_NO_PREALLOCATE";

const USAGE: &str = "usage: open_bench [--size N[K|M|G]] [--dir DIR | --work-tmpfs] [--reps N]
                  [--reuse-output] [--no-preallocate]

  --size N          plaintext size (default 1G)
  --dir DIR         where the plaintext, sealed file and output go (default /dev/shm)
  --work-tmpfs      a private tmpfs mounted like the loader's work area (root)
  --reps N          repetitions; medians are reported (default 3)
  --reuse-output    overwrite the previous output in place (no fresh pages)
  --no-preallocate  do not reserve the output's room first (the loader does)";

fn gen_plaintext(path: &Path, size: u64) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for c in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        w.write_all(&buf[..n]).unwrap();
        left -= n as u64;
    }
    w.flush().unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn cpu_info() -> (String, String) {
    let mut s = String::new();
    File::open("/proc/cpuinfo")
        .and_then(|mut f| f.read_to_string(&mut s))
        .ok();
    let model = s
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let flags_line = s.lines().find(|l| l.starts_with("flags")).unwrap_or("");
    let want = ["sha_ni", "aes", "vaes", "vpclmulqdq", "avx2", "avx512f"];
    let have: Vec<&str> = want
        .iter()
        .copied()
        .filter(|f| flags_line.split_whitespace().any(|x| x == *f))
        .collect();
    (model, have.join(" "))
}

struct Run {
    wall: f64,
    inner: f64,
    rss_kib: i64,
    digest: String,
}

fn run_open(mode: &str, sealed: &Path, out: &Path, key: &str) -> Run {
    let exe = std::env::current_exe().unwrap();
    let t = Instant::now();
    let o = Command::new(exe)
        .args(["--open-only", mode])
        .arg(sealed)
        .arg(out)
        .arg(key)
        .output()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    assert!(
        o.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&o.stderr));
    let line = String::from_utf8(o.stdout).unwrap();
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(k).map(str::to_string))
            .unwrap()
    };
    if std::env::var_os(REUSE).is_none() {
        let _ = std::fs::remove_file(out);
    }
    Run {
        wall,
        inner: field("secs=").parse().unwrap(),
        rss_kib: field("rss_kib=").parse().unwrap(),
        digest: field("digest="),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--open-only") {
        open_only(&args[2], Path::new(&args[3]), Path::new(&args[4]), &args[5]);
        return;
    }
    let mut size = 1u64 << 30;
    let mut dir = PathBuf::from("/dev/shm");
    let mut reps = 3usize;
    let mut work_tmpfs = false;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--size" => size = parse_size(it.next().unwrap()),
            "--dir" => dir = PathBuf::from(it.next().unwrap()),
            "--reps" => reps = it.next().unwrap().parse().unwrap(),
            "--work-tmpfs" => work_tmpfs = true,
            // Set before any thread or child process starts.
            "--reuse-output" => std::env::set_var(REUSE, "1"),
            "--no-preallocate" => std::env::set_var(NO_PREALLOCATE, "1"),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("open_bench: unknown argument {other}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    // --work-tmpfs: a private tmpfs mounted as the loader mounts its work
    // area (huge=always), instead of --dir. Needs root.
    let mounted = if work_tmpfs {
        let d = std::env::temp_dir().join(format!("tl-bench-tmpfs-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let mb = ((3 * size) >> 20) + 256;
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={mb}m,mode=0700,huge=always"))
            .arg("tmpfs")
            .arg(&d)
            .status()
            .unwrap();
        assert!(st.success(), "mounting the work tmpfs (root needed)");
        dir = d.clone();
        Some(d)
    } else {
        None
    };
    let plain = dir.join(format!("tl-bench-{}.plain", std::process::id()));
    let sealed = dir.join(format!("tl-bench-{}.sealed", std::process::id()));
    let out = dir.join(format!("tl-bench-{}.out", std::process::id()));

    let t = Instant::now();
    gen_plaintext(&plain, size);
    eprintln!(
        "generated {size} bytes in {:.2}s",
        t.elapsed().as_secs_f64()
    );
    let key = ContentKey::generate().unwrap();
    let t = Instant::now();
    let summary = {
        let mut r = File::open(&plain).unwrap();
        let mut w = File::create(&sealed).unwrap();
        seal_stream(
            &key,
            SegmentSize::DEFAULT,
            size,
            &mut r,
            &mut w,
            random_salt().unwrap(),
            DigestSet {
                sha256: true,
                sha384: false,
                tree_sha256: true,
            },
            threads(),
        )
        .unwrap()
    };
    eprintln!("sealed in {:.2}s", t.elapsed().as_secs_f64());
    let want_flat = hex::encode(summary.digests.sha256.unwrap());
    let want_tree = hex::encode(summary.digests.tree_sha256.unwrap());
    let key_text = key.to_text();

    let (mut flat, mut tree, mut ossl) = (Vec::new(), Vec::new(), Vec::new());
    // This VM returns freed memory to its host (virtio-balloon free page
    // reporting): the first open after a pause writes its output into
    // memory the host must fault back in, which costs seconds of system
    // time at 4 GiB. Each mode is therefore run twice in a row: the first
    // ("cold") is recorded separately, the second ("warm") reuses the
    // memory the first just freed. The modes alternate which goes first.
    let mut cold = Vec::new();
    for i in 0..reps {
        let order: [&str; 2] = if i % 2 == 0 {
            ["flat", "tree"]
        } else {
            ["tree", "flat"]
        };
        let mut got = Vec::new();
        for mode in order {
            let c = run_open(mode, &sealed, &out, &key_text);
            let w = run_open(mode, &sealed, &out, &key_text);
            cold.push((mode, c.wall));
            got.push((mode, w));
        }
        let take = |m: &str, got: &mut Vec<(&str, Run)>| {
            let i = got.iter().position(|(x, _)| *x == m).unwrap();
            got.remove(i).1
        };
        let f = take("flat", &mut got);
        let tr = take("tree", &mut got);
        assert_eq!(f.digest, want_flat, "flat digest");
        assert_eq!(tr.digest, want_tree, "tree digest");
        let t = Instant::now();
        let o = Command::new("openssl")
            .args(["dgst", "-sha256"])
            .arg(&plain)
            .output()
            .unwrap();
        let w = t.elapsed().as_secs_f64();
        assert!(o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&want_flat),
            "openssl digest"
        );
        eprintln!(
            "rep {i}: flat {:.3}s (inner {:.3}s, {} KiB), tree {:.3}s (inner {:.3}s, {} KiB), openssl {:.3}s",
            f.wall, f.inner, f.rss_kib, tr.wall, tr.inner, tr.rss_kib, w
        );
        flat.push(f);
        tree.push(tr);
        ossl.push(w);
    }
    for p in [&plain, &sealed, &out] {
        let _ = std::fs::remove_file(p);
    }
    if let Some(d) = &mounted {
        let _ = Command::new("umount").arg(d).status();
        let _ = std::fs::remove_dir(d);
    }

    let gib = size as f64 / (1u64 << 30) as f64;
    let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let b_ossl = best(&ossl);
    let b_flat = best(&flat.iter().map(|r| r.wall).collect::<Vec<_>>());
    let b_tree = best(&tree.iter().map(|r| r.wall).collect::<Vec<_>>());
    let t_ossl = median(ossl);
    let t_flat = median(flat.iter().map(|r| r.wall).collect());
    let t_tree = median(tree.iter().map(|r| r.wall).collect());
    let rss_flat = flat.iter().map(|r| r.rss_kib).max().unwrap() as f64 / 1024.0;
    let rss_tree = tree.iter().map(|r| r.rss_kib).max().unwrap() as f64 / 1024.0;
    let (model, flags) = cpu_info();
    let ossl_version = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "CPU: {model}; {} threads; flags: {flags}; {ossl_version}",
        threads()
    );
    println!(
        "Input: {gib:.0} GiB pseudo-random plaintext, 1 MiB segments, files in {}{}; median of {reps}",
        dir.display(),
        if mounted.is_some() { " (a tmpfs mounted like the loader's work area: huge=always)" } else { "" }
    );
    if std::env::var_os(REUSE).is_some() {
        println!("--reuse-output: each open overwrites the previous output in place (no fresh pages; not what the loader does)");
    }
    if std::env::var_os(NO_PREALLOCATE).is_some() {
        println!(
            "--no-preallocate: the output's room is not reserved first (the loader reserves it)"
        );
    } else {
        println!("The output's room is reserved first (fallocate, FALLOC_FL_KEEP_SIZE), as the loader does; the time counts");
    }
    println!();
    println!("Rows without \"cold\": the second of two back-to-back opens (see the source).");
    println!("| {gib:.0} GiB | median wall (s) | GiB/s | vs openssl (median) | best wall (s) | vs openssl (best) | peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|");
    println!("| `openssl dgst -sha256` (hash only) | {t_ossl:.3} | {:.2} | 1.00x | {b_ossl:.3} | 1.00x | - |", gib / t_ossl);
    println!("| open, flat SHA-256 (decrypt + hash + write) | {t_flat:.3} | {:.2} | {:.2}x | {b_flat:.3} | {:.2}x | {rss_flat:.1} |", gib / t_flat, t_ossl / t_flat, b_ossl / b_flat);
    println!("| open, tree SHA-256 (decrypt + hash + write) | {t_tree:.3} | {:.2} | {:.2}x | {b_tree:.3} | {:.2}x | {rss_tree:.1} |", gib / t_tree, t_ossl / t_tree, b_ossl / b_tree);
    let cold_of = |m: &str| {
        median(
            cold.iter()
                .filter(|(x, _)| *x == m)
                .map(|(_, t)| *t)
                .collect(),
        )
    };
    let (c_flat, c_tree) = (cold_of("flat"), cold_of("tree"));
    println!("| cold: open, flat SHA-256 (memory just returned to the host) | {c_flat:.3} | {:.2} | {:.2}x | - | - | - |", gib / c_flat, t_ossl / c_flat);
    println!("| cold: open, tree SHA-256 (memory just returned to the host) | {c_tree:.3} | {:.2} | {:.2}x | - | - | - |", gib / c_tree, t_ossl / c_tree);
}
