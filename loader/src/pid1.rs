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

// ---- Kernel modules and the network, for a minimal image ----------------

/// Load kernel modules in the given order (`finit_module`); a module already
/// loaded or built in counts as loaded. Returns the names loaded.
pub fn load_modules(paths: &[std::path::PathBuf]) -> Result<Vec<String>, crate::halt::Halt> {
    use crate::halt::{Halt, HaltCode};
    let mut loaded = Vec::new();
    for p in paths {
        let f = std::fs::File::open(p).map_err(|e| {
            Halt::new(
                HaltCode::ConfigInvalid,
                format!("module {}: {e}", p.display()),
            )
        })?;
        match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => {
                return Err(Halt::new(
                    HaltCode::ConfigInvalid,
                    format!("loading module {}: {e}", p.display()),
                ))
            }
        }
        loaded.push(
            p.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
    }
    Ok(loaded)
}

/// Give `net.interface` its IPv4 address and netmask and bring it up. The
/// interface appears asynchronously after its driver loads, so this retries
/// for up to `wait`.
pub fn configure_network(
    net: &crate::config::NetworkConfig,
    wait: std::time::Duration,
) -> Result<(), crate::halt::Halt> {
    use crate::halt::{Halt, HaltCode};
    let start = std::time::Instant::now();
    loop {
        match ifconfig::configure(&net.interface, net.address, net.prefix_len) {
            Ok(()) => return Ok(()),
            Err(e) if e == nix::Error::ENODEV && start.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(Halt::new(
                    HaltCode::ConfigInvalid,
                    format!("configuring {}: {e}", net.interface),
                ))
            }
        }
    }
}

/// The three `SIOCSIF*` ioctls that configure an IPv4 interface: the only
/// `unsafe` in the loader's PID 1 mode. Each call passes a pointer to a fully
/// initialized `ifreq` that lives for the duration of the call; the kernel
/// reads it (and writes nothing for these requests).
#[allow(unsafe_code)]
mod ifconfig {
    use nix::libc;
    use std::net::Ipv4Addr;
    use std::os::fd::{AsRawFd, OwnedFd};

    fn ifreq(name: &str, ifru: libc::__c_anonymous_ifr_ifru) -> Result<libc::ifreq, nix::Error> {
        let mut ifr_name = [0 as libc::c_char; libc::IFNAMSIZ];
        if name.len() >= libc::IFNAMSIZ {
            return Err(nix::Error::EINVAL);
        }
        for (d, s) in ifr_name.iter_mut().zip(name.bytes()) {
            *d = s as libc::c_char;
        }
        Ok(libc::ifreq {
            ifr_name,
            ifr_ifru: ifru,
        })
    }

    fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
        // sockaddr_in laid out in a sockaddr: family, port (0), address, zero padding.
        let mut sa_data = [0 as libc::c_char; 14];
        for (d, s) in sa_data[2..6].iter_mut().zip(a.octets()) {
            *d = s as libc::c_char;
        }
        libc::sockaddr {
            sa_family: libc::AF_INET as libc::sa_family_t,
            sa_data,
        }
    }

    fn ioctl(fd: &OwnedFd, request: libc::Ioctl, req: &libc::ifreq) -> Result<(), nix::Error> {
        // SAFETY: `req` points to an initialized ifreq valid for the call; the
        // requests used here (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS) only read it.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, req as *const libc::ifreq) };
        if r < 0 {
            Err(nix::Error::last())
        } else {
            Ok(())
        }
    }

    pub(super) fn configure(name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), nix::Error> {
        use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix.min(32)))
            .unwrap_or(0);
        ioctl(
            &fd,
            libc::SIOCSIFADDR as _,
            &ifreq(
                name,
                libc::__c_anonymous_ifr_ifru {
                    ifru_addr: sockaddr(addr),
                },
            )?,
        )?;
        ioctl(
            &fd,
            libc::SIOCSIFNETMASK as _,
            &ifreq(
                name,
                libc::__c_anonymous_ifr_ifru {
                    ifru_netmask: sockaddr(Ipv4Addr::from(mask)),
                },
            )?,
        )?;
        let flags = (libc::IFF_UP | libc::IFF_BROADCAST | libc::IFF_MULTICAST) as libc::c_short;
        ioctl(
            &fd,
            libc::SIOCSIFFLAGS as _,
            &ifreq(name, libc::__c_anonymous_ifr_ifru { ifru_flags: flags })?,
        )
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
