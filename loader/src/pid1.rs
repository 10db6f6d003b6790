//! PID 1 mode: early mounts, reaping, power-off.

use nix::mount::{mount, MsFlags};

/// One mount of the PID 1 plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountStep {
    /// Source (device or pseudo name).
    pub source: &'static str,
    /// Mount point (created if missing).
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// Mount flags.
    pub flags: MsFlags,
    /// Options string.
    pub data: Option<&'static str>,
    /// Whether a failure halts (false: the filesystem is optional, e.g. securityfs).
    pub required: bool,
}

/// The mounts PID 1 performs, in order.
pub fn mount_plan() -> Vec<MountStep> {
    let nsx = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let step = |source, target, fstype, flags, data, required| MountStep {
        source,
        target,
        fstype,
        flags,
        data,
        required,
    };
    vec![
        step("proc", "/proc", "proc", nsx, None, true),
        step("sysfs", "/sys", "sysfs", nsx, None, true),
        step(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=0755"),
            true,
        ),
        step(
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
            true,
        ),
        step(
            "tmpfs",
            "/tmp",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
            true,
        ),
        step(
            "configfs",
            "/sys/kernel/config",
            "configfs",
            nsx,
            None,
            false,
        ),
        step(
            "securityfs",
            "/sys/kernel/security",
            "securityfs",
            nsx,
            None,
            false,
        ),
    ]
}

/// Perform the mount plan. Returns the steps that failed (optional ones included); a required
/// step failing is an error with its target.
pub fn mount_early() -> Result<Vec<(&'static str, nix::Error)>, (&'static str, nix::Error)> {
    let mut soft = Vec::new();
    for s in mount_plan() {
        let _ = std::fs::create_dir_all(s.target);
        if let Err(e) = mount(Some(s.source), s.target, Some(s.fstype), s.flags, s.data) {
            // Already mounted (e.g. by the kernel for devtmpfs) is fine.
            if e == nix::Error::EBUSY {
                continue;
            }
            if s.required {
                return Err((s.target, e));
            }
            soft.push((s.target, e));
        }
    }
    Ok(soft)
}

/// Reap every exited child without blocking; returns how many were reaped.
pub fn reap_children() -> usize {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let mut n = 0;
    while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
        n += 1;
    }
    n
}

/// Sync and power off. Never returns: if power-off fails, sleeps forever.
pub fn power_off() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plan_order_and_flags() {
        let plan = mount_plan();
        let targets: Vec<_> = plan.iter().map(|s| s.target).collect();
        assert_eq!(
            targets,
            [
                "/proc",
                "/sys",
                "/dev",
                "/run",
                "/tmp",
                "/sys/kernel/config",
                "/sys/kernel/security"
            ]
        );
        // configfs after sysfs, which provides its mount point.
        for s in &plan {
            assert!(
                s.flags.contains(MsFlags::MS_NOSUID),
                "{} lacks nosuid",
                s.target
            );
        }
        assert!(!plan.iter().any(|s| s.fstype == "configfs" && s.required));
    }
}
