//! The plaintext work area.
//!
//! A fresh tmpfs (`nosuid,nodev`, mode 0700, size-limited) when the loader is root and asked
//! for one, so plaintext lives only in the TEE's encrypted memory; otherwise (tests, service
//! mode without privileges) a private 0700 directory. Subdirectories `components/`,
//! `outputs/`, `scratch/`. [`WorkDir::wipe`] overwrites every regular file with zeros, then
//! unlinks everything and unmounts; dropping a `WorkDir` wipes it too.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::halt::{Halt, HaltCode};

/// Work-area errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkDirError {
    /// Creating the directory tree failed.
    #[error("work area {path}: {source}")]
    Create {
        /// Where.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// Mounting the tmpfs failed.
    #[error("tmpfs mount on {path}: {source}")]
    Mount {
        /// Where.
        path: PathBuf,
        /// errno.
        source: nix::Error,
    },
    /// Wiping failed (some file could not be zeroed or removed).
    #[error("wipe {path}: {source}")]
    Wipe {
        /// Where.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

impl WorkDirError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            WorkDirError::Create { .. } => "WORKDIR_CREATE",
            WorkDirError::Mount { .. } => "WORKDIR_MOUNT",
            WorkDirError::Wipe { .. } => "WORKDIR_WIPE",
        }
    }
}

impl From<WorkDirError> for Halt {
    fn from(e: WorkDirError) -> Halt {
        Halt::new(HaltCode::WorkdirFailed, format!("{} ({})", e, e.code()))
    }
}

/// What a wipe did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WipeReport {
    /// Regular files overwritten with zeros.
    pub files_zeroed: u64,
    /// Bytes overwritten.
    pub bytes_zeroed: u64,
}

/// The work area.
#[derive(Debug)]
pub struct WorkDir {
    root: PathBuf,
    tmpfs: bool,
    wiped: bool,
}

/// Default tmpfs size limit.
pub const DEFAULT_TMPFS_MB: u64 = 2048;

impl WorkDir {
    /// Create a fresh work area under `base` (which must exist). With `mount_tmpfs` and root
    /// privileges, a tmpfs of `DEFAULT_TMPFS_MB` is mounted there; a failing mount is an error.
    pub fn create(base: &Path, mount_tmpfs: bool) -> Result<WorkDir, WorkDirError> {
        Self::create_sized(base, mount_tmpfs, DEFAULT_TMPFS_MB)
    }

    /// As [`WorkDir::create`] with an explicit tmpfs size in MiB.
    pub fn create_sized(
        base: &Path,
        mount_tmpfs: bool,
        size_mb: u64,
    ) -> Result<WorkDir, WorkDirError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let root = base.join(format!("tl-work-{}-{nanos:x}", std::process::id()));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&root)
            .map_err(|source| WorkDirError::Create {
                path: root.clone(),
                source,
            })?;
        let mut wd = WorkDir {
            root: root.clone(),
            tmpfs: false,
            wiped: false,
        };
        if mount_tmpfs && nix::unistd::geteuid().is_root() {
            // Transparent huge pages: a multi-GiB component is written
            // (decrypted) into this tmpfs by appending, and 2 MiB pages make
            // that several times cheaper than 4 KiB ones (docs/benchmarks.md).
            // `always`, because `within_size` only gives huge pages inside
            // the current file size, which appending never reaches; small
            // files cost at most one partly used huge page each. Kernels
            // without shmem THP refuse the option (EINVAL): then the plain
            // mount.
            let opts = |huge: bool| {
                format!(
                    "size={size_mb}m,mode=0700{}",
                    if huge { ",huge=always" } else { "" }
                )
            };
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
            let m = |o: &str| mount(Some("tmpfs"), &root, Some("tmpfs"), flags, Some(o));
            match m(&opts(true)) {
                Err(nix::errno::Errno::EINVAL) => m(&opts(false)),
                other => other,
            }
            .map_err(|source| WorkDirError::Mount {
                path: root.clone(),
                source,
            })?;
            wd.tmpfs = true;
        }
        for sub in ["components", "outputs", "scratch"] {
            let p = root.join(sub);
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&p)
                .map_err(|source| WorkDirError::Create { path: p, source })?;
        }
        Ok(wd)
    }

    /// Root of the work area.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `components/`.
    pub fn components(&self) -> PathBuf {
        self.root.join("components")
    }
    /// `outputs/`.
    pub fn outputs(&self) -> PathBuf {
        self.root.join("outputs")
    }
    /// `scratch/`.
    pub fn scratch(&self) -> PathBuf {
        self.root.join("scratch")
    }
    /// Whether a tmpfs is mounted there.
    pub fn is_tmpfs(&self) -> bool {
        self.tmpfs
    }

    /// Zero every regular file, unlink everything, unmount, remove the root. Idempotent.
    /// Every file is attempted even if one fails; the first error is returned.
    pub fn wipe(&mut self) -> Result<WipeReport, WorkDirError> {
        let mut report = WipeReport::default();
        if self.wiped {
            return Ok(report);
        }
        let mut first_err = None;
        wipe_tree(&self.root, &mut report, &mut first_err);
        if self.tmpfs {
            if let Err(e) = umount2(&self.root, MntFlags::empty())
                .or_else(|_| umount2(&self.root, MntFlags::MNT_DETACH))
            {
                first_err.get_or_insert(WorkDirError::Wipe {
                    path: self.root.clone(),
                    source: std::io::Error::from_raw_os_error(e as i32),
                });
            } else {
                self.tmpfs = false;
            }
        }
        if let Err(source) = fs::remove_dir(&self.root) {
            if source.kind() != std::io::ErrorKind::NotFound {
                first_err.get_or_insert(WorkDirError::Wipe {
                    path: self.root.clone(),
                    source,
                });
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => {
                self.wiped = true;
                Ok(report)
            }
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = self.wipe();
    }
}

/// Overwrite a regular file with zeros, in place, and flush it to the file.
pub fn zero_file(path: &Path) -> std::io::Result<u64> {
    let mut f = fs::OpenOptions::new().write(true).open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(0))?;
    let zeros = [0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    f.sync_data()?;
    Ok(len)
}

fn wipe_tree(dir: &Path, report: &mut WipeReport, err: &mut Option<WorkDirError>) {
    let rec = |path: &Path, source: std::io::Error, err: &mut Option<WorkDirError>| {
        err.get_or_insert(WorkDirError::Wipe {
            path: path.to_owned(),
            source,
        });
    };
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => return rec(dir, e, err),
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                rec(dir, e, err);
                continue;
            }
        };
        let path = entry.path();
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                rec(&path, e, err);
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            // The engine may have left a directory without write permission.
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o700));
            wipe_tree(&path, report, err);
            if let Err(e) = fs::remove_dir(&path) {
                rec(&path, e, err);
            }
        } else {
            if ft.is_file() {
                if meta.permissions().mode() & 0o200 == 0 {
                    let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o600));
                }
                match zero_file(&path) {
                    Ok(n) => {
                        report.files_zeroed += 1;
                        report.bytes_zeroed += n;
                    }
                    Err(e) => rec(&path, e, err),
                }
            }
            if let Err(e) = fs::remove_file(&path) {
                rec(&path, e, err);
            }
        }
    }
}

/// Reserve room for `len` bytes in `file` before a component is decrypted
/// into it (`fallocate` with `FALLOC_FL_KEEP_SIZE`: the file's size still
/// grows only with what is written). On the work-area tmpfs this allocates
/// every page up front, in one pass (milliseconds for gigabytes of huge
/// pages), after which the decryption's writes cost about a second less
/// system time per 4 GiB on the development VM (docs/benchmarks.md); and a
/// component that does not fit fails here, before any of it is decrypted.
/// Pages reserved past what is written never held plaintext. `Ok(false)` where the filesystem
/// cannot preallocate; every other error (no space: `ENOSPC`) is returned.
pub fn preallocate(file: &std::fs::File, len: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    if len == 0 {
        return Ok(true);
    }
    let len =
        i64::try_from(len).map_err(|_| std::io::Error::from(std::io::ErrorKind::FileTooLarge))?;
    match nix::fcntl::fallocate(
        file.as_raw_fd(),
        nix::fcntl::FallocateFlags::FALLOC_FL_KEEP_SIZE,
        0,
        len,
    ) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOSYS) => Ok(false),
        Err(e) => Err(std::io::Error::from(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn layout_and_wipe_leaves_nothing() {
        let base = tempfile::tempdir().unwrap();
        let mut wd = WorkDir::create(base.path(), false).unwrap();
        assert!(!wd.is_tmpfs());
        let mode = fs::metadata(wd.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::write(wd.components().join("a.csv"), b"secret a").unwrap();
        fs::create_dir(wd.outputs().join("deep")).unwrap();
        fs::write(wd.outputs().join("deep/m.json"), b"model").unwrap();
        fs::write(wd.scratch().join("ro"), b"read-only").unwrap();
        fs::set_permissions(wd.scratch().join("ro"), fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", wd.scratch().join("link")).unwrap();
        let r = wd.wipe().unwrap();
        assert_eq!(r.files_zeroed, 3);
        assert_eq!(r.bytes_zeroed, 8 + 5 + 9);
        assert!(!wd.root().exists());
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
        // The symlink target was not touched.
        assert!(!fs::read("/etc/hostname")
            .unwrap_or_else(|_| vec![1])
            .iter()
            .all(|b| *b == 0));
        assert_eq!(wd.wipe().unwrap(), WipeReport::default());
    }

    #[test]
    fn files_are_zeroed_before_unlink() {
        let base = tempfile::tempdir().unwrap();
        let keep = tempfile::tempdir_in(base.path()).unwrap();
        let mut wd = WorkDir::create(base.path(), false).unwrap();
        let f = wd.components().join("data");
        fs::write(&f, vec![0x5Au8; 200_000]).unwrap();
        let link = keep.path().join("hardlink");
        fs::hard_link(&f, &link).unwrap();
        let mut open = fs::File::open(&f).unwrap();
        wd.wipe().unwrap();
        assert!(!f.exists());
        let via_link = fs::read(&link).unwrap();
        assert_eq!(via_link.len(), 200_000);
        assert!(via_link.iter().all(|b| *b == 0));
        let mut via_fd = Vec::new();
        open.read_to_end(&mut via_fd).unwrap();
        assert_eq!(via_fd.len(), 200_000);
        assert!(via_fd.iter().all(|b| *b == 0));
    }

    #[test]
    fn drop_wipes() {
        let base = tempfile::tempdir().unwrap();
        let root;
        {
            let wd = WorkDir::create(base.path(), false).unwrap();
            fs::write(wd.scratch().join("x"), b"x").unwrap();
            root = wd.root().to_owned();
        }
        assert!(!root.exists());
    }

    fn mounted(p: &Path) -> bool {
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let p = p.to_str().unwrap();
        mi.lines().any(|l| l.split(' ').nth(4) == Some(p))
    }

    #[test]
    fn tmpfs_when_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let mut wd = WorkDir::create_sized(base.path(), true, 16).unwrap();
        assert!(wd.is_tmpfs());
        assert!(mounted(wd.root()));
        // With shmem THP in the kernel, the work area uses huge pages.
        if Path::new("/sys/kernel/mm/transparent_hugepage/shmem_enabled").exists() {
            let mi = fs::read_to_string("/proc/self/mountinfo").unwrap();
            let line = mi
                .lines()
                .find(|l| l.split(' ').nth(4) == wd.root().to_str())
                .unwrap();
            assert!(line.contains("huge=always"), "{line}");
        }
        let mode = fs::metadata(wd.root()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        fs::write(wd.components().join("x"), b"plaintext").unwrap();
        let root = wd.root().to_owned();
        wd.wipe().unwrap();
        assert!(!mounted(&root));
        assert!(!root.exists());
    }

    #[test]
    fn preallocation_reserves_room_and_refuses_what_does_not_fit() {
        use std::os::unix::fs::MetadataExt;
        // Anywhere: the file's size stays what was written.
        let dir = tempfile::tempdir().unwrap();
        let f = fs::File::create(dir.path().join("c")).unwrap();
        preallocate(&f, 1 << 20).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        assert!(preallocate(&f, 0).unwrap());

        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: the work-area tmpfs needs root");
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let mut wd = WorkDir::create_sized(base.path(), true, 16).unwrap();
        let path = wd.components().join("model");
        let mut f = fs::File::create(&path).unwrap();
        assert!(preallocate(&f, 8 << 20).unwrap(), "tmpfs preallocates");
        let m = f.metadata().unwrap();
        assert_eq!(m.len(), 0, "FALLOC_FL_KEEP_SIZE");
        assert!(m.blocks() * 512 >= 8 << 20, "{} blocks", m.blocks());
        f.write_all(&[7u8; 4096]).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 4096);
        // A component larger than the work area fails before decryption.
        let g = fs::File::create(wd.components().join("too-big")).unwrap();
        let e = preallocate(&g, 32 << 20).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
        wd.wipe().unwrap();
    }
}
