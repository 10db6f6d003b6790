//! The loader's configuration (TOML, part of the measured image).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::halt::{Halt, HaltCode};

/// Which CPU TEE to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeeChoice {
    /// The simulated TEE (only when explicitly enabled).
    Sim,
    /// Intel TDX.
    Tdx,
    /// AMD SEV-SNP.
    Snp,
    /// Detect the hardware TEE; never falls back to `sim`.
    Auto,
}

/// How the loader's encryption key is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyMode {
    /// A fresh key per boot.
    Ephemeral,
    /// Derived from the SEV-SNP firmware's derived key (needs `tee = "snp"`).
    #[serde(rename = "snp-derived")]
    SnpDerived,
    /// Derived from a seed sealed to the TPM's PCRs (needs `[tpm]` with
    /// `sealed_seed`, made by `trusted-loader tpm-seal`).
    #[serde(rename = "tpm-sealed")]
    TpmSealed,
}

fn default_tsm_root() -> PathBuf {
    PathBuf::from(crate::tsm::DEFAULT_TSM_ROOT)
}
fn default_work_base() -> PathBuf {
    PathBuf::from("/run")
}
fn default_true() -> bool {
    true
}

/// Loader configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// CA base URL (`https://...`).
    pub ca_url: String,
    /// CA root certificate (PEM) path.
    pub ca_root: PathBuf,
    /// CPU TEE.
    pub tee: TeeChoice,
    /// Must be true for `tee = "sim"`.
    #[serde(default)]
    pub allow_simulation: bool,
    /// configfs-tsm report root.
    #[serde(default = "default_tsm_root")]
    pub tsm_root: PathBuf,
    /// TDX measurement register directory (RTMR3 extends, see [`crate::tdx`]);
    /// default for `tee = "tdx"`: /sys/class/misc/tdx_guest/measurements.
    /// For `tee = "sim"` extends go there only when it is set.
    #[serde(default)]
    pub tdx_measurements_dir: Option<PathBuf>,
    /// TDX: the firmware's CC event log, replayed against the quote's
    /// RTMR0-2 (default: /sys/firmware/acpi/tables/data/CCEL when present).
    #[serde(default)]
    pub tdx_ccel: Option<PathBuf>,
    /// TDX on kernels without configfs-tsm (`tsm_root` absent): the guest
    /// device whose `TDX_CMD_GET_REPORT0` gives the TDREPORT (default
    /// /dev/tdx_guest) ...
    #[serde(default)]
    pub tdx_guest_device: Option<PathBuf>,
    /// ... and the host's quote generation service that quotes it:
    /// `vsock:CID:PORT` (default `vsock:2:4050`) or `unix:/path`.
    #[serde(default)]
    pub tdx_qgs: Option<String>,
    /// Directory where the order and grants appear.
    pub order_source_dir: PathBuf,
    /// How long to wait for the order, in seconds (1..=86400).
    pub deadline_seconds: u64,
    /// Where the work area is created.
    #[serde(default = "default_work_base")]
    pub work_base: PathBuf,
    /// Mount a tmpfs for the work area.
    #[serde(default = "default_true")]
    pub tmpfs: bool,
    /// Key mode.
    pub key_mode: KeyMode,
    /// Where the run report is written.
    pub report_out: PathBuf,
    /// Where the loader publishes its certificate and encryption key for owners.
    pub publish_dir: PathBuf,
    /// Where sealed outputs and their grants are written.
    pub output_dir: PathBuf,
    /// Bound on each CA call including retries, in seconds (1..=600).
    #[serde(default = "default_ca_timeout")]
    pub ca_timeout_seconds: u64,
    // ---- PID 1 mode and the relayed order source (image/README.md) ----
    // All optional; none changes the checks of the pipeline.
    /// Kernel modules (`.ko` paths inside the image) loaded in this order
    /// before anything else, in PID 1 mode only.
    #[serde(default)]
    pub kernel_modules: Vec<PathBuf>,
    /// A static IPv4 address configured in PID 1 mode only.
    #[serde(default)]
    pub network: Option<NetworkConfig>,
    /// The TLS server name checked on the CA's certificate when `ca_url`
    /// names an address (e.g. a forwarded port) that is not in it.
    #[serde(default)]
    pub ca_tls_name: Option<String>,
    /// Seed of the simulated TEE that the loader serves itself on `tsm_root`.
    /// Accepted only with `tee = "sim"` and `allow_simulation = true`.
    #[serde(default)]
    pub sim_seed_file: Option<PathBuf>,
    /// The firmware's TCG event log; when set it must be readable and its
    /// digest is recorded in the event log.
    #[serde(default)]
    pub firmware_event_log: Option<PathBuf>,
    /// Relayed order source (`http(s)://`): `GET` returns the order bundle
    /// ([`crate::relay`]), which is unpacked into `order_source_dir`.
    #[serde(default)]
    pub order_url: Option<String>,
    /// Where the certificate, encryption key, outputs and run report are
    /// `POST`ed for the owners (`http(s)://`); goes with `order_url`.
    #[serde(default)]
    pub publish_url: Option<String>,
    /// `[gpu]`: where GPUs are inventoried and NVML is loaded from.
    #[serde(default)]
    pub gpu: crate::gpu::GpuConfig,
    /// `[tpm]`: a vTPM quoted beside the CPU evidence, and the TPM-sealed key.
    #[serde(default)]
    pub tpm: Option<TpmSection>,
    /// The configuration text as read (its digest goes into the event log).
    #[serde(skip)]
    source: String,
}

// ---- The vTPM -----------------------------------------------------------------

fn default_quote_pcrs() -> Vec<u32> {
    (0..=9).collect()
}
fn default_key_version() -> u32 {
    1
}

/// `[tpm]`: the TPM the loader quotes beside the CPU evidence (composite
/// evidence, see `tl_evidence::bundle::TpmEvidence`) and, with
/// `key_mode = "tpm-sealed"`, unseals its key seed from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmSection {
    /// TPM character device (default `/dev/tpmrm0`, the kernel's resource manager).
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// `host:port` of a TPM speaking raw TPM 2.0 commands over TCP (swtpm);
    /// for tests, so only with `allow_simulation = true`.
    #[serde(default)]
    pub tcp: Option<String>,
    /// Unix socket of a TPM speaking raw TPM 2.0 commands (swtpm's
    /// `--server type=unixio`); a TPM the host emulates, so only with
    /// `allow_simulation = true`.
    #[serde(default)]
    pub unix: Option<PathBuf>,
    /// Quote the SHA-256 `pcrs` beside the CPU evidence (default true).
    #[serde(default = "default_true")]
    pub quote: bool,
    /// SHA-256 PCRs to quote (default 0..=9: firmware and boot loader).
    #[serde(default = "default_quote_pcrs")]
    pub pcrs: Vec<u32>,
    /// The sealed seed (`trusted-loader tpm-seal`), for `key_mode = "tpm-sealed"`.
    #[serde(default)]
    pub sealed_seed: Option<PathBuf>,
    /// Key version of the derivation (a new version gives an unrelated key).
    #[serde(default = "default_key_version")]
    pub key_version: u32,
}

impl TpmSection {
    /// Where TPM commands go.
    pub fn transport(&self) -> crate::tpm::TpmTransportConfig {
        match (&self.tcp, &self.unix, &self.device) {
            (Some(address), _, _) => crate::tpm::TpmTransportConfig::Tcp {
                address: address.clone(),
            },
            (None, Some(path), _) => crate::tpm::TpmTransportConfig::Unix { path: path.clone() },
            (None, None, Some(path)) => {
                crate::tpm::TpmTransportConfig::Device { path: path.clone() }
            }
            (None, None, None) => crate::tpm::TpmTransportConfig::default(),
        }
    }

    /// The quoted PCR selection (SHA-256 bank).
    pub fn quote_selection(&self) -> Vec<tl_evidence::tpm::PcrSelection> {
        vec![tl_evidence::tpm::PcrSelection {
            hash_alg: tl_evidence::tpm::attest::TPM_ALG_SHA256,
            pcrs: self.pcrs.clone(),
        }]
    }

    fn check(&self, allow_simulation: bool, key_mode: KeyMode) -> Result<(), Halt> {
        let bad = |d: &str| Err(Halt::new(HaltCode::ConfigInvalid, d.to_owned()));
        let given = [
            self.tcp.is_some(),
            self.unix.is_some(),
            self.device.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return bad("tpm: give one of device, unix or tcp");
        }
        if (self.tcp.is_some() || self.unix.is_some()) && !allow_simulation {
            return Err(Halt::new(
                HaltCode::SimulationNotEnabled,
                "tpm.tcp / tpm.unix (a software TPM on a socket, for tests) requires allow_simulation = true",
            ));
        }
        let mut seen = [false; 24];
        for p in &self.pcrs {
            match seen.get_mut(*p as usize) {
                Some(s) if !*s => *s = true,
                _ => return bad("tpm.pcrs: PCR indexes 0..=23, each once"),
            }
        }
        if self.quote && self.pcrs.is_empty() {
            return bad("tpm.pcrs is empty: nothing to quote");
        }
        let paths = self
            .device
            .iter()
            .chain(&self.unix)
            .chain(&self.sealed_seed);
        if paths.into_iter().any(|p| !p.is_absolute()) {
            return bad("tpm.device, tpm.unix and tpm.sealed_seed must be absolute paths");
        }
        if key_mode == KeyMode::TpmSealed && self.sealed_seed.is_none() {
            return bad("key_mode = \"tpm-sealed\" requires tpm.sealed_seed");
        }
        Ok(())
    }
}

// ---- PID 1 mode and the QEMU boot harness (image/README.md) ----------------

/// A static IPv4 configuration of one interface.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Interface name (e.g. `eth0`).
    pub interface: String,
    /// IPv4 address.
    pub address: std::net::Ipv4Addr,
    /// Prefix length (0..=32).
    pub prefix_len: u8,
}

impl LoaderConfig {
    /// The QGS address for the TDREPORT fallback (checked at parse time).
    pub fn qgs_address(&self) -> Result<crate::qgs::QgsAddress, Halt> {
        match &self.tdx_qgs {
            None => Ok(crate::qgs::QgsAddress::default()),
            Some(s) => s.parse().map_err(|e: crate::qgs::QgsError| {
                Halt::new(HaltCode::ConfigInvalid, e.to_string())
            }),
        }
    }

    /// Checks of the PID 1 and relay options.
    fn check_pid1(&self) -> Result<(), Halt> {
        let bad = |d: &str| Err(Halt::new(HaltCode::ConfigInvalid, d.to_owned()));
        if self.sim_seed_file.is_some() && !(self.tee == TeeChoice::Sim && self.allow_simulation) {
            return Err(Halt::new(
                HaltCode::SimulationNotEnabled,
                "sim_seed_file requires tee = \"sim\" and allow_simulation = true",
            ));
        }
        if let Some(n) = &self.network {
            if n.prefix_len > 32 || n.interface.is_empty() || n.interface.len() > 15 {
                return bad("network: interface must be 1..=15 bytes, prefix_len 0..=32");
            }
        }
        for u in [&self.order_url, &self.publish_url].into_iter().flatten() {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return bad("order_url and publish_url must be http:// or https://");
            }
        }
        if self.publish_url.is_some() != self.order_url.is_some() {
            return bad("order_url and publish_url go together");
        }
        if self.ca_tls_name.as_deref() == Some("") {
            return bad("ca_tls_name is empty");
        }
        let paths = self.kernel_modules.iter().chain(&self.sim_seed_file);
        if paths
            .chain(&self.firmware_event_log)
            .any(|p| !p.is_absolute())
        {
            return bad(
                "kernel_modules, sim_seed_file and firmware_event_log must be absolute paths",
            );
        }
        Ok(())
    }
}

fn default_ca_timeout() -> u64 {
    30
}

impl LoaderConfig {
    /// Parse and check a TOML configuration; errors are `CONFIG_INVALID` halts.
    pub fn from_toml(text: &str) -> Result<Self, Halt> {
        let bad = |d: String| Halt::new(HaltCode::ConfigInvalid, d);
        let mut c: LoaderConfig = toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?;
        c.source = text.to_owned();
        if !(1..=600).contains(&c.ca_timeout_seconds) {
            return Err(bad("ca_timeout_seconds must be in 1..=600".into()));
        }
        if !c.ca_url.starts_with("https://") {
            return Err(bad("ca_url must be https://".into()));
        }
        if !(1..=86_400).contains(&c.deadline_seconds) {
            return Err(bad("deadline_seconds must be in 1..=86400".into()));
        }
        if c.tee == TeeChoice::Sim && !c.allow_simulation {
            return Err(Halt::new(
                HaltCode::SimulationNotEnabled,
                "tee = \"sim\" requires allow_simulation = true",
            ));
        }
        c.check_pid1()?;
        c.qgs_address()?;
        if c.key_mode == KeyMode::SnpDerived && c.tee != TeeChoice::Snp {
            return Err(bad(
                "key_mode = \"snp-derived\" requires tee = \"snp\"".into()
            ));
        }
        match &c.tpm {
            Some(t) => t.check(c.allow_simulation, c.key_mode)?,
            None if c.key_mode == KeyMode::TpmSealed => {
                return Err(bad(
                    "key_mode = \"tpm-sealed\" requires a [tpm] section".into()
                ))
            }
            None => {}
        }
        for (name, p) in [
            ("ca_root", &c.ca_root),
            ("tsm_root", &c.tsm_root),
            ("order_source_dir", &c.order_source_dir),
            ("work_base", &c.work_base),
            ("report_out", &c.report_out),
            ("publish_dir", &c.publish_dir),
            ("output_dir", &c.output_dir),
            ("gpu.pci_devices_root", &c.gpu.pci_devices_root),
        ]
        .into_iter()
        .chain(
            c.tdx_measurements_dir
                .as_ref()
                .map(|p| ("tdx_measurements_dir", p)),
        )
        .chain(c.tdx_guest_device.as_ref().map(|p| ("tdx_guest_device", p)))
        .chain(c.tdx_ccel.as_ref().map(|p| ("tdx_ccel", p)))
        {
            if !p.is_absolute() {
                return Err(bad(format!("{name} must be an absolute path")));
            }
        }
        if let Some(sim) = &c.gpu.simulated {
            if !c.allow_simulation {
                return Err(Halt::new(
                    HaltCode::SimulationNotEnabled,
                    "[gpu.simulated] requires allow_simulation = true",
                ));
            }
            if !sim.seed_file.is_absolute() {
                return Err(bad(
                    "gpu.simulated.seed_file must be an absolute path".into()
                ));
            }
            if sim.gpus > 64 || sim.nvswitches > 64 {
                return Err(bad(
                    "gpu.simulated: at most 64 GPUs and 64 NVSwitches".into()
                ));
            }
        }
        for (name, p) in [
            ("gpu.nvml_library", &c.gpu.nvml_library),
            ("gpu.nscq_library", &c.gpu.nscq_library),
        ] {
            if p.as_ref().is_some_and(|p| !p.is_absolute()) {
                return Err(bad(format!("{name} must be an absolute path")));
            }
        }
        Ok(c)
    }

    /// The configuration text this value was parsed from.
    pub fn source_text(&self) -> &str {
        &self.source
    }

    /// Read and parse a configuration file.
    pub fn load(path: &Path) -> Result<Self, Halt> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Halt::new(HaltCode::ConfigInvalid, format!("{}: {e}", path.display())))?;
        Self::from_toml(&text)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
ca_url = "https://10.0.2.100:8443"
ca_root = "/etc/tl/ca.pem"
tee = "auto"
order_source_dir = "/run/order"
deadline_seconds = 600
key_mode = "ephemeral"
report_out = "/run/report.json"
publish_dir = "/run/publish"
output_dir = "/run/outputs"
"#;

    #[test]
    fn good_config_with_defaults() {
        let c = LoaderConfig::from_toml(GOOD).unwrap();
        assert_eq!(c.tee, TeeChoice::Auto);
        assert_eq!(c.tsm_root, PathBuf::from("/sys/kernel/config/tsm/report"));
        assert!(c.tmpfs);
        assert_eq!(c.work_base, PathBuf::from("/run"));
        assert_eq!(
            c.gpu.pci_devices_root,
            PathBuf::from("/sys/bus/pci/devices")
        );
        assert_eq!(c.gpu.nvml_library, None);
    }

    #[test]
    fn gpu_section() {
        let c = LoaderConfig::from_toml(&format!(
            "{GOOD}\n[gpu]\npci_devices_root = \"/tmp/pci\"\nnvml_library = \"/opt/nvml.so\""
        ))
        .unwrap();
        assert_eq!(c.gpu.pci_devices_root, PathBuf::from("/tmp/pci"));
        assert_eq!(c.gpu.nvml_library, Some(PathBuf::from("/opt/nvml.so")));
        let code = |t: &str| {
            LoaderConfig::from_toml(&format!("{GOOD}\n[gpu]\n{t}"))
                .unwrap_err()
                .code()
        };
        assert_eq!(code("nvml_library = \"nvml.so\""), "CONFIG_INVALID");
        assert_eq!(code("nscq_library = \"nscq.so\""), "CONFIG_INVALID");
        // Simulated devices only where simulation is allowed.
        let sim = "[gpu.simulated]\nseed_file = \"/run/seed\"\ngpus = 1\nnvswitches = 2";
        assert_eq!(
            LoaderConfig::from_toml(&format!("{GOOD}\n{sim}"))
                .unwrap_err()
                .code(),
            "SIMULATION_NOT_ENABLED"
        );
        let c =
            LoaderConfig::from_toml(&format!("{GOOD}\nallow_simulation = true\n{sim}")).unwrap();
        let s = c.gpu.simulated.unwrap();
        assert_eq!((s.gpus, s.nvswitches), (1, 2));
        for bad in [
            "[gpu.simulated]\nseed_file = \"seed\"",
            "[gpu.simulated]\nseed_file = \"/s\"\ngpus = 65",
            "[gpu.simulated]\nseed_file = \"/s\"\nother = 1",
        ] {
            let e = LoaderConfig::from_toml(&format!("{GOOD}\nallow_simulation = true\n{bad}"))
                .unwrap_err();
            assert_eq!(e.code(), "CONFIG_INVALID", "{bad}");
        }
        assert_eq!(code("pci_devices_root = \"pci\""), "CONFIG_INVALID");
        assert_eq!(code("other = 1"), "CONFIG_INVALID");
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/loader-config.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|r| r.split("```").next())
            .unwrap();
        let c = LoaderConfig::from_toml(example).unwrap();
        assert_eq!((c.tee, c.key_mode), (TeeChoice::Tdx, KeyMode::TpmSealed));
        assert_eq!(c.tpm.unwrap().pcrs, (0..=7).collect::<Vec<_>>());
    }

    #[test]
    fn tpm_section() {
        let sim = format!(
            "{}\nallow_simulation = true\n",
            GOOD.replace("\"auto\"", "\"sim\"")
                .replace("\"ephemeral\"", "\"tpm-sealed\"")
        );
        let c = LoaderConfig::from_toml(&format!(
            "{sim}[tpm]\ntcp = \"127.0.0.1:2321\"\nsealed_seed = \"/var/lib/tl/seed\"\n"
        ))
        .unwrap();
        let t = c.tpm.as_ref().unwrap();
        assert!(t.quote);
        assert_eq!(t.pcrs, (0..=9).collect::<Vec<_>>());
        assert_eq!(t.key_version, 1);
        assert_eq!(
            t.transport(),
            crate::tpm::TpmTransportConfig::Tcp {
                address: "127.0.0.1:2321".into()
            }
        );
        let c = LoaderConfig::from_toml(&format!(
            "{sim}[tpm]\nunix = \"/run/swtpm.sock\"\nsealed_seed = \"/var/lib/tl/seed\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.tpm.unwrap().transport(),
            crate::tpm::TpmTransportConfig::Unix {
                path: "/run/swtpm.sock".into()
            }
        );
        let plain = LoaderConfig::from_toml(&format!("{GOOD}[tpm]\n")).unwrap();
        assert_eq!(
            plain.tpm.unwrap().transport(),
            crate::tpm::TpmTransportConfig::default()
        );
        let code = |t: &str| LoaderConfig::from_toml(t).unwrap_err().code();
        // tpm-sealed without a seed or without [tpm]
        assert_eq!(code(&format!("{sim}[tpm]\n")), "CONFIG_INVALID");
        assert_eq!(code(&sim), "CONFIG_INVALID");
        // TCP only with simulation allowed
        assert_eq!(
            code(&format!("{GOOD}[tpm]\ntcp = \"127.0.0.1:1\"\n")),
            "SIMULATION_NOT_ENABLED"
        );
        assert_eq!(
            code(&format!("{GOOD}[tpm]\nunix = \"/run/swtpm.sock\"\n")),
            "SIMULATION_NOT_ENABLED"
        );
        for bad in [
            "pcrs = [24]",
            "pcrs = [1, 1]",
            "pcrs = []",
            "device = \"tpmrm0\"",
            "sealed_seed = \"seed\"",
            "device = \"/dev/tpmrm0\"\ntcp = \"127.0.0.1:1\"",
            "unix = \"/run/s\"\ntcp = \"127.0.0.1:1\"",
            "unix = \"swtpm.sock\"",
            "other = 1",
        ] {
            assert_eq!(
                code(&format!("{GOOD}allow_simulation = true\n[tpm]\n{bad}\n")),
                "CONFIG_INVALID",
                "{bad}"
            );
        }
        // Nothing to quote is fine when quoting is off.
        assert!(
            LoaderConfig::from_toml(&format!("{GOOD}[tpm]\nquote = false\npcrs = []\n")).is_ok()
        );
    }

    #[test]
    fn rejects() {
        let code = |t: &str| LoaderConfig::from_toml(t).unwrap_err().code();
        assert_eq!(code(&format!("{GOOD}\nextra = 1")), "CONFIG_INVALID");
        assert_eq!(code(&GOOD.replace("https://", "http://")), "CONFIG_INVALID");
        assert_eq!(code(&GOOD.replace("600", "0")), "CONFIG_INVALID");
        assert_eq!(code(&GOOD.replace("\"auto\"", "\"sgx\"")), "CONFIG_INVALID");
        assert_eq!(
            code(&GOOD.replace("\"ephemeral\"", "\"sealed\"")),
            "CONFIG_INVALID"
        );
        assert_eq!(
            code(&GOOD.replace("\"/run/order\"", "\"order\"")),
            "CONFIG_INVALID"
        );
        assert_eq!(
            code(&GOOD.replace("\"auto\"", "\"sim\"")),
            "SIMULATION_NOT_ENABLED"
        );
        let sim = format!(
            "{}\nallow_simulation = true",
            GOOD.replace("\"auto\"", "\"sim\"")
        );
        assert_eq!(LoaderConfig::from_toml(&sim).unwrap().tee, TeeChoice::Sim);
        assert_eq!(code("not toml ["), "CONFIG_INVALID");
        let snp = GOOD
            .replace("\"auto\"", "\"snp\"")
            .replace("\"ephemeral\"", "\"snp-derived\"");
        let c = LoaderConfig::from_toml(&snp).unwrap();
        assert_eq!((c.tee, c.key_mode), (TeeChoice::Snp, KeyMode::SnpDerived));
        assert_eq!(
            code(&GOOD.replace("\"ephemeral\"", "\"snp-derived\"")),
            "CONFIG_INVALID"
        );
    }

    #[test]
    fn pid1_options() {
        let sim = format!(
            "{}\nallow_simulation = true\n",
            GOOD.replace("\"auto\"", "\"sim\"")
        );
        let full = format!(
            "{sim}kernel_modules = [\"/lib/modules/virtio.ko\"]\nca_tls_name = \"localhost\"\nsim_seed_file = \"/etc/seed\"\nfirmware_event_log = \"/sys/x\"\norder_url = \"http://10.0.2.100:8080/order\"\npublish_url = \"http://10.0.2.100:8080/publish\"\n[network]\ninterface = \"eth0\"\naddress = \"10.0.2.15\"\nprefix_len = 24\n"
        );
        let c = LoaderConfig::from_toml(&full).unwrap();
        assert_eq!(c.network.as_ref().unwrap().prefix_len, 24);
        assert_eq!(c.kernel_modules.len(), 1);
        assert_eq!(c.ca_tls_name.as_deref(), Some("localhost"));
        let plain = LoaderConfig::from_toml(GOOD).unwrap();
        assert!(plain.kernel_modules.is_empty() && plain.order_url.is_none());
        let code = |t: &str| LoaderConfig::from_toml(t).unwrap_err().code();
        // The simulated TEE's seed only with the simulated TEE, explicitly enabled.
        assert_eq!(
            code(&format!("{GOOD}sim_seed_file = \"/etc/seed\"\n")),
            "SIMULATION_NOT_ENABLED"
        );
        assert_eq!(
            code(&full.replace("prefix_len = 24", "prefix_len = 33")),
            "CONFIG_INVALID"
        );
        assert_eq!(
            code(&full.replace("http://10", "ftp://10")),
            "CONFIG_INVALID"
        );
        assert_eq!(
            code(&full.replace("publish_url", "#publish_url")),
            "CONFIG_INVALID"
        );
        assert_eq!(
            code(&full.replace("\"/lib/modules", "\"lib/modules")),
            "CONFIG_INVALID"
        );
        assert_eq!(code(&format!("{full}bogus = 1\n")), "CONFIG_INVALID");
        // The QGS fallback's address and device.
        let q = LoaderConfig::from_toml(&format!(
            "{GOOD}tdx_qgs = \"unix:/run/qgs.sock\"\ntdx_guest_device = \"/dev/tdx-guest\"\n"
        ))
        .unwrap();
        assert_eq!(
            q.qgs_address().unwrap(),
            crate::qgs::QgsAddress::Unix("/run/qgs.sock".into())
        );
        assert_eq!(
            plain.qgs_address().unwrap(),
            crate::qgs::QgsAddress::default()
        );
        assert_eq!(
            code(&format!("{GOOD}tdx_qgs = \"tcp:1.2.3.4:5\"\n")),
            "CONFIG_INVALID"
        );
        assert_eq!(
            code(&format!("{GOOD}tdx_guest_device = \"tdx_guest\"\n")),
            "CONFIG_INVALID"
        );
    }
}
