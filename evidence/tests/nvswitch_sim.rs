//! NVSwitch evidence inside `verify_bundle`: simulated GPUs and NVSwitches
//! (P-384 chains to the simulated NVIDIA root, SPDM reports in NVIDIA's
//! layout, from `tl_evidence::sim`) answering nonces derived from the
//! enrollment nonce, with a simulated TDX quote binding all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use tl_evidence::binding::{
    device_evidence_digest, gpu_evidence_digest, gpu_nonce, nvswitch_nonce, Binding,
};
use tl_evidence::bundle::{
    CpuEvidence, CpuEvidenceKind, EvidenceBundle, GpuEvidence, NvSwitchEvidence,
};
use tl_evidence::nvidia::{verify_report, verify_switch_report, GpuAnchors};
use tl_evidence::sim::{SimMeasurements, SimNvKind, SimTee, SIM_NVSWITCH_VBIOS_VERSION};
use tl_evidence::verify::{verify_bundle, TrustAnchors, VerifyOptions};
use tl_evidence::EvidenceError;

const NOW: u64 = 1_760_000_000;
const NONCE: &[u8] = b"enrollment nonce";

fn sim() -> SimTee {
    SimTee::from_seed([5; 32])
}

fn opts(sim: &SimTee) -> VerifyOptions {
    let mut o = VerifyOptions::new(NOW, TrustAnchors::simulated(sim.root_certificate_der()));
    o.expected_nonce = Some(NONCE.to_vec());
    o.gpu_anchors = GpuAnchors::from_der(&[sim.nvidia_root_der().as_slice()]).unwrap();
    o
}

fn binding(digest: [u8; 32]) -> Binding<'static> {
    Binding {
        nonce: NONCE,
        signing_public_key: b"spki",
        encryption_public_key: b"hpke",
        gpu_evidence_digest: digest,
        tpm_ak_digest: None,
    }
}

fn gpu(sim: &SimTee, index: u32) -> GpuEvidence {
    let d = sim.nvidia_device(SimNvKind::Gpu, index);
    GpuEvidence {
        index,
        report: d.report(&gpu_nonce(NONCE, index)),
        certificates: d.chain_der().to_vec(),
    }
}

fn switch(sim: &SimTee, index: u32) -> NvSwitchEvidence {
    let d = sim.nvidia_device(SimNvKind::NvSwitch, index);
    NvSwitchEvidence {
        index,
        report: d.report(&nvswitch_nonce(NONCE, index)),
        certificates: d.chain_der().to_vec(),
    }
}

/// A bundle with these GPUs and switches and a quote whose report data binds
/// `bound` (by default the bundle's own device digest).
fn bundle(
    sim: &SimTee,
    gpus: Vec<GpuEvidence>,
    nvswitches: Vec<NvSwitchEvidence>,
    bound: Option<[u8; 32]>,
) -> (EvidenceBundle, [u8; 32]) {
    let digest = device_evidence_digest(
        gpus.iter().map(|g| g.report.as_slice()),
        nvswitches.iter().map(|s| s.report.as_slice()),
    );
    let rd = binding(bound.unwrap_or(digest)).report_data();
    let b = EvidenceBundle {
        gpus,
        nvswitches,
        ..EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::TdxQuote,
            quote: sim.tdx_quote(&rd, &SimMeasurements::default()),
            certificates: vec![],
        })
    };
    (b, digest)
}

#[test]
fn gpus_and_switches_verify_and_bind() {
    let s = sim();
    let (b, digest) = bundle(
        &s,
        vec![gpu(&s, 0), gpu(&s, 1)],
        vec![switch(&s, 0), switch(&s, 1), switch(&s, 2)],
        None,
    );
    assert_eq!(b.gpu_evidence_digest(), digest);
    let v = verify_bundle(&b, &opts(&s)).unwrap();
    assert_eq!(v.claims.gpus.len(), 2);
    assert_eq!(v.claims.nvswitches.len(), 3);
    let d0 = s.nvidia_device(SimNvKind::NvSwitch, 0);
    for (i, c) in v.claims.nvswitches.iter().enumerate() {
        assert_eq!(c.index, i as u32);
        assert!(c.tnvl_mode && c.locked);
        assert_eq!(c.vbios_version, SIM_NVSWITCH_VBIOS_VERSION);
        assert_eq!(c.measurements.len(), 4);
        assert_eq!(c.measurements[&1], hex::encode(d0.measurement(1)));
    }
    assert_eq!(v.nvswitch_devices.len(), 3);
    assert_eq!(v.nvswitch_devices[0].info.project, "5612");
    assert_eq!(v.nvswitch_devices[0].info.chip_sku, "890");
    assert_eq!(v.gpu_devices[0].info.chip_sku, "882");
    assert_eq!(v.nvswitch_devices[0].fwid, hex::encode(d0.fwid()));
    assert_ne!(v.nvswitch_devices[0].fwid, v.nvswitch_devices[1].fwid);
    v.check_binding(&binding(digest)).unwrap();
    // A binding of the GPUs alone (switches left out) does not pass.
    let gpus_only = gpu_evidence_digest(b.gpus.iter().map(|g| g.report.as_slice()));
    assert_eq!(
        v.check_binding(&binding(gpus_only)).unwrap_err().code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
    // Claims round-trip through JSON with the switches.
    let json = serde_json::to_string(&v.claims).unwrap();
    assert!(json.contains("\"nvswitches\""));
    let back: tl_evidence::PlatformClaims = serde_json::from_str(&json).unwrap();
    assert_eq!(back, v.claims);
}

#[test]
fn relayed_switch_report_is_not_bound() {
    // The quote binds a device digest without this switch: the report was
    // added (relayed from another machine) after the CPU evidence was taken.
    let s = sim();
    let (without, digest_without) = bundle(&s, vec![gpu(&s, 0)], vec![], None);
    let (b, digest) = bundle(
        &s,
        vec![gpu(&s, 0)],
        vec![switch(&s, 0)],
        Some(digest_without),
    );
    assert_ne!(digest, digest_without);
    let v = verify_bundle(&b, &opts(&s)).unwrap();
    assert_eq!(
        v.check_binding(&binding(b.gpu_evidence_digest()))
            .unwrap_err()
            .code(),
        "EVIDENCE_BINDING_MISMATCH"
    );
    assert!(verify_bundle(&without, &opts(&s)).is_ok());
}

fn code_of(b: &EvidenceBundle, o: &VerifyOptions) -> (String, String) {
    let e = verify_bundle(b, o).unwrap_err();
    (e.code().to_owned(), e.to_string())
}

#[test]
fn switch_negatives_have_their_own_codes_and_name_the_switch() {
    let s = sim();
    let o = opts(&s);
    let check = |sw: Vec<NvSwitchEvidence>, o: &VerifyOptions, want: &str| {
        let (b, _) = bundle(&s, vec![], sw, None);
        let (code, msg) = code_of(&b, o);
        assert_eq!(code, want, "{msg}");
        assert!(msg.starts_with("NVSwitch "), "{msg}");
    };
    // A report for another switch's nonce (moved to another index).
    let mut moved = switch(&s, 1);
    moved.index = 0;
    check(vec![moved], &o, "GPU_NONCE_MISMATCH");
    // A GPU's report presented as a switch's: the nonce domains differ.
    let d = s.nvidia_device(SimNvKind::Gpu, 0);
    let as_gpu = NvSwitchEvidence {
        index: 0,
        report: d.report(&gpu_nonce(NONCE, 0)),
        certificates: d.chain_der().to_vec(),
    };
    check(vec![as_gpu], &o, "GPU_NONCE_MISMATCH");
    // The same index twice.
    check(
        vec![switch(&s, 0), switch(&s, 0)],
        &o,
        "GPU_INDEX_DUPLICATE",
    );
    // A chain to another root.
    let other = SimTee::from_seed([6; 32]);
    check(vec![switch(&other, 0)], &o, "GPU_UNTRUSTED_ROOT");
    // Another device's chain.
    let mut swapped = switch(&s, 0);
    swapped.certificates = switch(&s, 1).certificates;
    check(vec![swapped], &o, "GPU_FWID_MISMATCH");
    // No chain at all.
    let mut bare = switch(&s, 0);
    bare.certificates.clear();
    check(vec![bare], &o, "GPU_CHAIN");
    // No enrollment nonce to derive switch nonces from.
    let mut no_nonce = opts(&s);
    no_nonce.expected_nonce = None;
    let (b, _) = bundle(&s, vec![], vec![switch(&s, 0)], None);
    assert_eq!(code_of(&b, &no_nonce).0, "GPU_NONCE_MISSING");
    // The default anchors (NVIDIA's root) do not accept the simulated root.
    let mut nvidia = opts(&s);
    nvidia.gpu_anchors = GpuAnchors::nvidia();
    assert_eq!(code_of(&b, &nvidia).0, "GPU_UNTRUSTED_ROOT");
}

#[test]
fn every_flipped_byte_of_a_switch_report_is_rejected() {
    let s = sim();
    let d = s.nvidia_device(SimNvKind::NvSwitch, 0);
    let nonce = nvswitch_nonce(NONCE, 0);
    let good = d.report(&nonce);
    let roots = GpuAnchors::from_der(&[s.nvidia_root_der().as_slice()]).unwrap();
    assert!(verify_switch_report(&good, d.chain_der(), &nonce, &roots, NOW).is_ok());
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x01;
        let e = verify_switch_report(&bad, d.chain_der(), &nonce, &roots, NOW)
            .expect_err("a flipped byte must be rejected");
        assert!(
            matches!(
                e,
                EvidenceError::GpuReportSignature
                    | EvidenceError::GpuReportMalformed(_)
                    | EvidenceError::GpuNonceMismatch
                    | EvidenceError::GpuFwidMismatch(_)
            ),
            "byte {i}: {e}"
        );
    }
}

#[test]
fn fwid_is_optional_for_switches_only() {
    let s = sim();
    let roots = GpuAnchors::from_der(&[s.nvidia_root_der().as_slice()]).unwrap();
    let sw = s.nvidia_device(SimNvKind::NvSwitch, 0);
    let n = nvswitch_nonce(NONCE, 0);
    let v =
        verify_switch_report(&sw.report_without_fwid(&n), sw.chain_der(), &n, &roots, NOW).unwrap();
    assert_eq!(v.info.fwid, None);
    let g = s.nvidia_device(SimNvKind::Gpu, 0);
    let n = gpu_nonce(NONCE, 0);
    assert!(verify_report(&g.report(&n), g.chain_der(), &n, &roots, NOW).is_ok());
    let e = verify_report(&g.report_without_fwid(&n), g.chain_der(), &n, &roots, NOW).unwrap_err();
    assert_eq!(e.code(), "GPU_FWID_MISMATCH");
}

#[test]
fn simulated_devices_are_reproducible() {
    let a = sim().nvidia_device(SimNvKind::NvSwitch, 3);
    let b = sim().nvidia_device(SimNvKind::NvSwitch, 3);
    assert_eq!(a.chain_der(), b.chain_der());
    assert_eq!(a.report(&[1; 32]), b.report(&[1; 32]));
    assert!(a.chain_pem().starts_with("-----BEGIN CERTIFICATE-----"));
}
