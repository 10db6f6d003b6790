#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use tl_evidence::claims::{GpuClaims, SnpClaims, TdxClaims, TpmClaims};
use tl_evidence::{PlatformClaims, TcbStatus, TeeKind};
use tl_policy::{Algorithm, SigningKey};

pub const X25519_A: &str = "x25519:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const X25519_B: &str = "x25519:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

pub struct Keys {
    pub owner: SigningKey,
    pub lab: SigningKey,
    pub clinic: SigningKey,
}

pub fn keys() -> Keys {
    Keys {
        owner: SigningKey::ed25519_from_seed(&[1; 32]).unwrap(),
        lab: SigningKey::generate(Algorithm::EcdsaP256).unwrap(),
        clinic: SigningKey::ed25519_from_seed(&[3; 32]).unwrap(),
    }
}

pub fn h(byte: u8, n: usize) -> String {
    hex::encode(vec![byte; n])
}

/// A full order exercising every section; `expires` 2030-01-01 (1893456000).
pub fn order_toml(k: &Keys) -> String {
    format!(
        r#"
[order]
family = "demo/lab-clinic-training"
version = 3
expires = "2030-01-01T00:00:00Z"
description = "train on lab and clinic data"
signers = ["engine-owner", "lab", "clinic"]

[parties.engine-owner]
signing_key = "{owner}"
encryption_key = "{xa}"

[parties.lab]
signing_key = "{lab}"
encryption_key = "{xb}"

[parties.clinic]
signing_key = "{clinic}"

[platform]
allow_simulated = false
accept_tcb = ["UpToDate", "SWHardeningNeeded"]
tee = ["tdx", "sev-snp"]

[platform.tdx]
mrtd = "{m48a}"
rtmr0 = "{m48b}"
rtmr3 = "{m48c}"
td_attributes = "0000000010000000"

[platform.snp]
measurement = ["{m48a}", "{m48b}"]
host_data = "{m32}"
min_reported_tcb = 100
vmpl = 0

[platform.gpu]
count = 1
driver_versions = ["550.54.15"]
measurements = {{ 9 = "{m48a}" }}

[[components]]
name = "engine"
role = "engine"
owner = "engine-owner"
size = 1000
sha256 = "{c1}"
mount = "bin/engine"
executable = true

[[components]]
name = "lab.csv"
role = "dataset"
owner = "lab"
size = 2000
sha256 = "{c2}"
sha384 = "{c3}"
tree_sha256 = "{c4}"

[[components]]
name = "clinic.csv"
role = "dataset"
owner = "clinic"
size = 3000
tree_sha256 = "{c5}"

[launch]
argv = ["{{components}}/bin/engine", "--lab", "{{components}}/lab.csv", "--out", "{{outputs}}/model.json"]
env = {{ RUST_LOG = "info" }}
memory_mb = 512
cpu_seconds = 60
timeout_seconds = 120

[[outputs]]
name = "model"
path = "model.json"
recipients = ["engine-owner"]
max_bytes = 10485760
"#,
        owner = k.owner.public_key(),
        lab = k.lab.public_key(),
        clinic = k.clinic.public_key(),
        xa = X25519_A,
        xb = X25519_B,
        m48a = h(0xa1, 48),
        m48b = h(0xb2, 48),
        m48c = h(0xc3, 48),
        m32 = h(0xd4, 32),
        c1 = h(0x11, 32),
        c2 = h(0x22, 32),
        c3 = h(0x33, 48),
        c4 = h(0x44, 32),
        c5 = h(0x55, 32),
    )
}

pub const EXPIRES: u64 = 1_893_456_000;

/// TDX claims matching `order_toml`.
pub fn tdx_claims() -> PlatformClaims {
    PlatformClaims {
        tee: TeeKind::Tdx,
        simulated: false,
        debug: false,
        tcb_status: TcbStatus::UpToDate,
        advisory_ids: vec![],
        report_data: [0; 64],
        tdx: Some(TdxClaims {
            mrtd: [0xa1; 48],
            rtmr: vec![[0xb2; 48], [0; 48], [0; 48], [0xc3; 48]],
            mrconfigid: [0; 48],
            mrowner: [0; 48],
            mrownerconfig: [0; 48],
            td_attributes: 0x1000_0000,
            xfam: 0xe7,
            tee_tcb_svn: [0; 16],
            mrservicetd: None,
        }),
        snp: None,
        tpm: None,
        gpus: vec![gpu(0)],
        nvswitches: Vec::new(),
    }
}

pub fn gpu(index: u32) -> GpuClaims {
    GpuClaims {
        index,
        cc_mode: true,
        debug: false,
        driver_version: "550.54.15".into(),
        vbios_version: "96.00.5E.00.01".into(),
        measurements: [(9, h(0xa1, 48)), (10, h(0x01, 48))].into_iter().collect(),
    }
}

/// SNP claims matching `order_toml`.
pub fn snp_claims() -> PlatformClaims {
    PlatformClaims {
        tee: TeeKind::SevSnp,
        tdx: None,
        snp: Some(SnpClaims {
            measurement: [0xb2; 48],
            host_data: [0xd4; 32],
            policy: 0x30000,
            vmpl: 0,
            reported_tcb: 200,
            committed_tcb: 200,
        }),
        ..tdx_claims()
    }
}

pub fn tpm_claims(pcr0: &str) -> TpmClaims {
    TpmClaims {
        pcrs: [(
            "sha256".to_string(),
            [(0u32, pcr0.to_string())].into_iter().collect(),
        )]
        .into_iter()
        .collect(),
        event_log_sha256: None,
    }
}
