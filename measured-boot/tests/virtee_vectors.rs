//! The 22 launch-digest cases of virtee/sev (tests/data/virtee-sev).
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use tl_measured_boot::snp::{
    self, sev_launch_digest, seves_launch_digest, snp_launch_digest, snp_ovmf_hash, Ec2Rdx,
    SnpError, SnpInputs, VmmType,
};
use tl_measured_boot::Digest48;

const CASES: &str = include_str!("data/virtee-sev/launch_digest_cases.json");
const AMDSEV: &[u8] = include_bytes!("data/virtee-sev/ovmf_AmdSev_suffix.bin");
const OVMFX64: &[u8] = include_bytes!("data/virtee-sev/ovmf_OvmfX64_suffix.bin");
const AMDSEV_OVMF_HASH: &str = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74";

/// `Some("x")` / `Some("x".into())` → Some("x"); `None` → None.
fn opt_str(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    if s == "None" {
        return None;
    }
    let start = s.find('"')?;
    let end = s[start + 1..].find('"')? + start + 1;
    Some(s[start + 1..end].to_owned())
}

fn outcome(case: &Value) -> Result<String, SnpError> {
    let a = &case["args"];
    let ovmf = if a["ovmf_file"].as_str().unwrap().contains("AmdSev") {
        AMDSEV
    } else {
        OVMFX64
    };
    let kernel: Option<&[u8]> = opt_str(&a["kernel_file"]).map(|_| &[][..]);
    let initrd: Option<&[u8]> = opt_str(&a["initrd_file"]).map(|_| &[][..]);
    let append = opt_str(&a["append"]);
    assert_eq!(
        a["vcpu_type"].as_str().unwrap_or("CpuType::EpycV4"),
        "CpuType::EpycV4"
    );
    let sig = snp::vcpu_signature("EPYC-v4").unwrap();
    let vcpus: u32 = a["vcpus"].as_str().map(|s| s.parse().unwrap()).unwrap_or(0);
    let vmm = match a["vmm_type"].as_str() {
        Some(s) if s.contains("EC2") => VmmType::Ec2(Ec2Rdx::VirteeSev),
        _ => VmmType::Qemu,
    };
    if let Some(gf) = a["guest_features"].as_str() {
        let gf = u64::from_str_radix(
            gf.trim_start_matches("GuestFeatures(0x")
                .trim_end_matches(')'),
            16,
        )
        .unwrap();
        let ovmf_hash = match a["ovmf_hash_str"].as_str() {
            Some(s) if s != "None" => {
                let lit = case["ovmf_hash_literal_passed_as_ovmf_hash_str"]
                    .as_str()
                    .or(case["expected_ovmf_hash_hex"].as_str())
                    .unwrap();
                Some(Digest48::from_hex(lit).unwrap().0)
            }
            _ => None,
        };
        let m = snp_launch_digest(&SnpInputs {
            ovmf,
            kernel,
            initrd,
            append: append.as_deref(),
            vcpus,
            vcpu_sig: sig,
            guest_features: gf,
            vmm,
            ovmf_hash,
        })?;
        Ok(m.launch_digest.to_hex())
    } else if vcpus > 0 {
        Ok(seves_launch_digest(ovmf, kernel, initrd, append.as_deref(), vcpus, sig, vmm)?.to_hex())
    } else {
        Ok(sev_launch_digest(ovmf, kernel, initrd, append.as_deref())?.to_hex())
    }
}

#[test]
fn all_22_virtee_cases_agree() {
    let v: Value = serde_json::from_str(CASES).unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 22);
    let mut failures = Vec::new();
    for c in cases {
        let name = c["test"].as_str().unwrap();
        let got = outcome(c);
        match (c["expected_launch_digest_hex"].as_str(), got) {
            (Some(want), Ok(got)) if want == got => {}
            (None, Err(e)) => {
                assert!(name.ends_with("should_fail"), "{name}");
                assert!(
                    matches!(
                        e.code(),
                        "SNP_KERNEL_HASHES_UNSUPPORTED" | "SEV_NO_HASHES_TABLE"
                    ),
                    "{name}: {e}"
                );
            }
            (want, got) => failures.push(format!("{name}: want {want:?}, got {got:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn ovmf_hash_of_amdsev_suffix() {
    assert_eq!(snp_ovmf_hash(AMDSEV).unwrap().to_hex(), AMDSEV_OVMF_HASH);
}

#[test]
fn resume_from_ovmf_hash_equals_full_run() {
    let base = SnpInputs {
        ovmf: AMDSEV,
        kernel: Some(b"kernel"),
        initrd: Some(b"initrd"),
        append: Some("console=ttyS0"),
        vcpus: 3,
        vcpu_sig: snp::vcpu_signature("EPYC-Milan").unwrap(),
        guest_features: 0x21,
        vmm: VmmType::Qemu,
        ovmf_hash: None,
    };
    let full = snp_launch_digest(&base).unwrap();
    let seed = snp_ovmf_hash(AMDSEV).unwrap();
    assert_eq!(full.ovmf_hash, seed);
    let resumed = snp_launch_digest(&SnpInputs {
        ovmf_hash: Some(seed.0),
        ..base
    })
    .unwrap();
    assert_eq!(full.launch_digest, resumed.launch_digest);
    assert_eq!(full.vmsas.len(), 3);
    assert_eq!(full.vmsas.last().unwrap().digest_after, full.launch_digest);
    assert!(full.hashes_table.is_some());
    // A different seed changes the result.
    let mut other = seed.0;
    other[0] ^= 1;
    let changed = snp_launch_digest(&SnpInputs {
        ovmf_hash: Some(other),
        ..base
    })
    .unwrap();
    assert_ne!(changed.launch_digest, full.launch_digest);
}

#[test]
fn ec2_rdx_choice_matters() {
    let mk = |rdx| {
        snp_launch_digest(&SnpInputs {
            ovmf: AMDSEV,
            kernel: None,
            initrd: None,
            append: None,
            vcpus: 1,
            vcpu_sig: 0,
            guest_features: 1,
            vmm: VmmType::Ec2(rdx),
            ovmf_hash: None,
        })
        .unwrap()
        .launch_digest
    };
    assert_ne!(mk(Ec2Rdx::SevSnpMeasure), mk(Ec2Rdx::VirteeSev));
}

#[test]
fn kernel_with_ovmfx64_names_the_reason() {
    let e = snp_launch_digest(&SnpInputs {
        ovmf: OVMFX64,
        kernel: Some(b""),
        initrd: None,
        append: None,
        vcpus: 1,
        vcpu_sig: 0x800f12,
        guest_features: 1,
        vmm: VmmType::Qemu,
        ovmf_hash: None,
    })
    .unwrap_err();
    assert_eq!(e.code(), "SNP_KERNEL_HASHES_UNSUPPORTED");
    assert!(e.to_string().contains("SNP_KERNEL_HASHES"));
}

#[test]
fn initrd_without_kernel_is_rejected() {
    let e = snp_launch_digest(&SnpInputs {
        ovmf: AMDSEV,
        kernel: None,
        initrd: Some(b"x"),
        append: None,
        vcpus: 1,
        vcpu_sig: 0x800f12,
        guest_features: 1,
        vmm: VmmType::Qemu,
        ovmf_hash: None,
    })
    .unwrap_err();
    assert_eq!(e.code(), "SEV_INITRD_OR_APPEND_WITHOUT_KERNEL");
}

#[test]
fn measurement_serializes_to_json() {
    let m = snp_launch_digest(&SnpInputs {
        ovmf: AMDSEV,
        kernel: Some(b""),
        initrd: None,
        append: None,
        vcpus: 2,
        vcpu_sig: 0x800f12,
        guest_features: 0x21,
        vmm: VmmType::Ec2(Ec2Rdx::SevSnpMeasure),
        ovmf_hash: None,
    })
    .unwrap();
    let j = serde_json::to_value(&m).unwrap();
    assert_eq!(j["launch_digest"].as_str().unwrap().len(), 96);
    assert_eq!(j["inputs"]["vcpu_sig"], "0x800f12");
    assert_eq!(j["inputs"]["vmm"]["type"], "ec2");
    assert_eq!(j["inputs"]["vmm"]["ec2_rdx"], "sev-snp-measure");
    assert_eq!(j["vmsas"].as_array().unwrap().len(), 2);
}
