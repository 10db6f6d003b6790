//! tl-evidence's DCAP verification held against dcap-qvl, the reference
//! implementation, on every real quote in the test data whose collateral
//! dcap-qvl reads (its `QuoteCollateralV3` JSON), at the times the sources
//! verified them, then on every single-bit flip of each quote.
//!
//! Fails (exit 1) when tl-evidence accepts what dcap-qvl rejects, or when
//! both accept with another TCB status or other advisories. Flips that only
//! dcap-qvl accepts are listed (tl-evidence is stricter there) but do not
//! fail.
//!
//! Bit flips of real quotes mostly exercise signatures. The appraisal's
//! rules (TD attributes, TCB level matching, TDX module levels, TD 1.5
//! relaunch, status convergence, level order) are held against dcap-qvl on
//! simulated variants: quotes and collateral from the simulated TEE, signed
//! and chained to its root, which both verifiers are given as their only
//! anchor. Each variant must get the same verdict from both (accepted with
//! the same status and advisories, or rejected); a TD under debug counts as
//! rejected, as dcap-qvl's default does.
//!
//! On every one of those inputs, dcap-qvl as tl-evidence ships it
//! (`dcap::reference`, its `Config` on x509-cert and aws-lc-rs, behind `tl
//! evidence verify --reference`) must give exactly the verdict of dcap-qvl's
//! own configuration (ring). Prints a JSON summary.

use std::panic::{catch_unwind, AssertUnwindSafe};

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::claims::TcbStatus;
use tl_evidence::dcap::TdxCollateral;
use tl_evidence::sim::{SimCollateralOptions, SimMeasurements, SimQuoteOptions, SimTd15, SimTee};
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/tdx/");

fn data(rel: &str) -> Vec<u8> {
    let raw = std::fs::read(format!("{DATA}{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"));
    if rel.ends_with(".txt") || rel.ends_with(".hex") {
        let s = String::from_utf8(raw).expect("hex text");
        hex::decode(s.trim().trim_start_matches("0x")).expect("hex")
    } else {
        raw
    }
}

const INTEL_ROOT: &[u8] = tl_evidence::INTEL_SGX_ROOT_CA_DER;

/// A verdict: accepted with (TCB status, advisory IDs), or rejected with why.
type Verdict = Result<(String, Vec<String>), String>;

struct Case {
    name: &'static str,
    quote: &'static str,
    collateral: &'static str,
    now: u64,
    sgx: bool,
    /// What the sources say (MANIFEST.md): `Some(status)` or `None` = rejected.
    expected: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "dcap-qvl tdx_quote",
        quote: "dcap-qvl/tdx_quote",
        collateral: "dcap-qvl/tdx_quote_collateral.json",
        now: 1_752_919_234,
        sgx: false,
        expected: Some("UpToDate"),
    },
    Case {
        name: "dcap-qvl tdx_quote_outdated",
        quote: "dcap-qvl/tdx_quote_outdated",
        collateral: "dcap-qvl/tdx_quote_outdated_collateral.json",
        now: 1_774_003_274,
        sgx: false,
        expected: None,
    },
    Case {
        name: "dcap-qvl near_quote",
        quote: "dcap-qvl/near_quote_hex.txt",
        collateral: "dcap-qvl/near_quote_collateral.json",
        now: 1_759_276_800,
        sgx: false,
        expected: Some("UpToDate"),
    },
    Case {
        name: "go-tdx-guest quote_v5_sample",
        quote: "go-tdx-guest/quote_v5_sample.dat",
        collateral: "dcap-qvl/tdx_quote_outdated_collateral.json",
        now: 1_774_003_274,
        sgx: false,
        expected: Some("UpToDate"),
    },
    Case {
        name: "dcap-qvl sgx_quote",
        quote: "dcap-qvl/sgx_quote",
        collateral: "dcap-qvl/sgx_quote_collateral.json",
        now: 1_752_919_277,
        sgx: true,
        expected: Some("ConfigurationAndSWHardeningNeeded"),
    },
    Case {
        name: "tdx_quote with another FMSPC's collateral",
        quote: "dcap-qvl/tdx_quote",
        collateral: "dcap-qvl/near_quote_collateral.json",
        now: 1_759_276_800,
        sgx: false,
        expected: None,
    },
    Case {
        name: "tdx_quote a year after its collateral",
        quote: "dcap-qvl/tdx_quote",
        collateral: "dcap-qvl/tdx_quote_collateral.json",
        now: 1_752_919_234 + 365 * 86_400,
        sgx: false,
        expected: None,
    },
];

fn ours(quote: &[u8], col: &TdxCollateral, now: u64, sgx: bool) -> Verdict {
    let anchors = TrustAnchors::intel(tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec());
    if sgx {
        return tl_evidence::dcap::sgx::verify_sgx_quote(quote, &anchors, col, now)
            .map(|v| (format!("{:?}", v.tcb.status), v.tcb.advisory_ids))
            .map_err(|e| e.code().to_string());
    }
    ours_tdx(quote, anchors, col, now)
}

/// A TDX quote through `verify_bundle`; a TD under debug counts as
/// rejected, as dcap-qvl's default does.
fn ours_tdx(quote: &[u8], anchors: TrustAnchors, col: &TdxCollateral, now: u64) -> Verdict {
    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: quote.to_vec(),
        certificates: vec![],
    });
    let mut opts = VerifyOptions::new(now, anchors);
    opts.collateral = Some(Collateral::tdx(col.clone()));
    match verify_bundle(&bundle, &opts) {
        Ok(v) if v.claims.debug => Err("TD under debug".into()),
        Ok(v) => Ok((format!("{:?}", v.claims.tcb_status), v.claims.advisory_ids)),
        Err(e) => Err(e.code().to_string()),
    }
}

/// dcap-qvl's verdict with `root` as its only anchor.
fn reference(root: &[u8], quote: &[u8], col: &dcap_qvl::QuoteCollateralV3, now: u64) -> Verdict {
    let verifier = dcap_qvl::verify::QuoteVerifier::new(root.to_vec());
    match catch_unwind(AssertUnwindSafe(|| verifier.verify(quote, col, now))) {
        Ok(Ok(r)) => {
            let mut adv = r.advisory_ids;
            adv.sort();
            Ok((r.status, adv))
        }
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("dcap-qvl panicked".into()),
    }
}

/// dcap-qvl's verifier as tl-evidence ships it (`dcap::reference`: its
/// `Config` on x509-cert and aws-lc-rs), with dcap-qvl's default settings.
/// It must give exactly the verdict of dcap-qvl's own configuration (ring),
/// which dcap-qvl asks of any custom `Config`.
fn in_tree(root: &[u8], quote: &[u8], col: &TdxCollateral, now: u64) -> Verdict {
    let r = catch_unwind(AssertUnwindSafe(|| {
        tl_evidence::dcap::reference::verify_with_dcap_qvl(quote, col, root, now, false)
    }));
    match r {
        Ok(Ok(v)) => sorted(Ok((v.status, v.advisory_ids))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("dcap-qvl (in tree) panicked".into()),
    }
}

/// The in-tree configuration against dcap-qvl's own on input `what`: same
/// acceptance, and the same status and advisories when accepted. Counts
/// agreements in `same`, reports the rest in `failures`.
fn hold_in_tree(
    what: &str,
    in_tree: &Verdict,
    reference: &Verdict,
    same: &mut usize,
    failures: &mut Vec<String>,
) {
    let alike = match (in_tree, reference) {
        (Ok(x), Ok(y)) => x == y,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if alike {
        *same += 1;
    } else {
        failures.push(format!(
            "{what}: dcap-qvl on tl's crypto {in_tree:?}, on its own {reference:?}"
        ));
    }
}

fn sorted(v: Verdict) -> Verdict {
    v.map(|(s, mut a)| {
        a.sort();
        (s, a)
    })
}

/// Time of the simulated variants; their collateral is current then.
const SIM_NOW: u64 = 1_760_000_000;

/// One simulated variant: what changes from the simulated defaults.
struct Variant {
    name: String,
    m: SimMeasurements,
    q: SimQuoteOptions,
    /// Platform level status, then edits of the TCB info and QE identity.
    platform: TcbStatus,
    edit: Edit,
}

/// Changes to the TCB info and QE identity JSON before they are signed.
type Edit = Box<dyn Fn(&mut serde_json::Value, &mut serde_json::Value)>;

fn variant(name: impl Into<String>) -> Variant {
    Variant {
        name: name.into(),
        m: SimMeasurements::default(),
        q: SimQuoteOptions::default(),
        platform: TcbStatus::UpToDate,
        edit: Box::new(|_, _| {}),
    }
}

const SEPT_VE_DISABLE: u64 = 1 << 28;

fn variants() -> Vec<Variant> {
    let mut out = vec![variant("baseline")];
    // Every TD attribute bit, one at a time (bit 28 by clearing it).
    for bit in 0..64u32 {
        let mut v = variant(format!("td_attributes bit {bit}"));
        v.m.td_attributes = if bit == 28 {
            0
        } else {
            SEPT_VE_DISABLE | 1 << bit
        };
        out.push(v);
    }
    // TEE_TCB_SVN: module minor and major version, TDX component 2.
    for minor in [0u8, 1, 2, 3, 4, 6, 9] {
        for major in [0u8, 1, 2, 3] {
            for c2 in [0u8, 2, 3, 4] {
                let mut v = variant(format!("tee_tcb_svn {minor:02x}{major:02x}{c2:02x}"));
                v.m.tee_tcb_svn[0] = minor;
                v.m.tee_tcb_svn[1] = major;
                v.m.tee_tcb_svn[2] = c2;
                out.push(v);
            }
        }
    }
    let statuses = [
        "UpToDate",
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
        "Revoked",
    ];
    // Platform, TDX module and QE level statuses, with advisories on each,
    // at the module's up-to-date and out-of-date levels.
    for platform in statuses {
        for module in ["UpToDate", "OutOfDate", "Revoked", "ConfigurationNeeded"] {
            for qe in statuses {
                for minor in [6u8, 3] {
                    let mut v = variant(format!(
                        "platform {platform}, module {module}, QE {qe}, module minor {minor}"
                    ));
                    v.m.tee_tcb_svn[0] = minor;
                    let (module, qe, platform) =
                        (module.to_string(), qe.to_string(), platform.to_string());
                    v.edit = Box::new(move |t, q| {
                        t["tcbLevels"][0]["tcbStatus"] = platform.clone().into();
                        t["tcbLevels"][0]["advisoryIDs"] = serde_json::json!(["SIM-SA-P"]);
                        let m = &mut t["tdxModuleIdentities"][0]["tcbLevels"][0];
                        m["tcbStatus"] = module.clone().into();
                        m["advisoryIDs"] = serde_json::json!(["SIM-SA-M", "SIM-SA-P"]);
                        q["tcbLevels"][0]["tcbStatus"] = qe.clone().into();
                        q["tcbLevels"][0]["advisoryIDs"] = serde_json::json!(["SIM-SA-Q"]);
                    });
                    out.push(v);
                }
            }
        }
    }
    // Platform levels in reverse (not Intel's) order, with the platform
    // matching only the lower level.
    for c2 in [3u8, 0] {
        let mut v = variant(format!("tcbLevels reversed, TDX component 2 = {c2}"));
        v.m.tee_tcb_svn[2] = c2;
        v.edit = Box::new(|t, _| {
            if let Some(l) = t["tcbLevels"].as_array_mut() {
                l.reverse();
            }
        });
        out.push(v);
    }
    // TD 1.5: launch and current module minors, platform statuses, a bound
    // service TD.
    for platform in [
        TcbStatus::UpToDate,
        TcbStatus::ConfigurationNeeded,
        TcbStatus::SWHardeningNeeded,
    ] {
        for launch in [1u8, 3, 6] {
            for current in [1u8, 3, 6] {
                let mut v = variant(format!(
                    "TD 1.5 platform {platform:?}, launch minor {launch}, current minor {current}"
                ));
                v.platform = platform;
                v.m.tee_tcb_svn[0] = launch;
                let mut svn2 = v.m.tee_tcb_svn;
                svn2[0] = current;
                v.q.td15 = Some(SimTd15 {
                    tee_tcb_svn2: svn2,
                    mrservicetd: [0; 48],
                });
                out.push(v);
            }
        }
    }
    // MISCSELECT of the QE report against the QE identity's, both byte
    // orders.
    for (identity, mask) in [
        ("01000000", "FFFFFFFF"),
        ("00000001", "FFFFFFFF"),
        ("00000000", "FEFFFFFF"),
    ] {
        for report in [0u32, 1, 0x0100_0000] {
            let mut v = variant(format!(
                "QE miscselect {identity}/{mask}, report {report:#x}"
            ));
            v.q.qe_misc_select = report;
            v.edit = Box::new(move |_, q| {
                q["miscselect"] = identity.into();
                q["miscselectMask"] = mask.into();
            });
            out.push(v);
        }
    }
    // TD 1.5 with TDX component 2 behind at launch, now, or both.
    for (launch_c2, current_c2) in [(2u8, 3u8), (3, 2), (2, 2)] {
        for (launch, current) in [(6u8, 6u8), (3, 6)] {
            let mut v = variant(format!(
                "TD 1.5 launch minor {launch} component 2 = {launch_c2}, current minor {current} component 2 = {current_c2}"
            ));
            v.m.tee_tcb_svn[0] = launch;
            v.m.tee_tcb_svn[2] = launch_c2;
            let mut svn2 = v.m.tee_tcb_svn;
            svn2[0] = current;
            svn2[2] = current_c2;
            v.q.td15 = Some(SimTd15 {
                tee_tcb_svn2: svn2,
                mrservicetd: [0; 48],
            });
            // The lower platform level: the platform's own SGX components
            // and PCESVN, TDX component 2 at 2.
            v.edit = Box::new(|t, _| {
                let top = t["tcbLevels"][0]["tcb"].clone();
                let lower = &mut t["tcbLevels"][1]["tcb"];
                lower["sgxtcbcomponents"] = top["sgxtcbcomponents"].clone();
                lower["pcesvn"] = top["pcesvn"].clone();
                lower["tdxtcbcomponents"][2]["svn"] = 2.into();
            });
            out.push(v);
        }
    }
    let mut v = variant("TD 1.5 with a bound service TD");
    v.q.td15 = Some(SimTd15 {
        tee_tcb_svn2: v.m.tee_tcb_svn,
        mrservicetd: [1; 48],
    });
    out.push(v);
    out
}

/// The simulated variants through both verifiers; disagreements go to
/// `failures`. Returns the summary.
fn simulated(failures: &mut Vec<String>, in_tree_same: &mut usize) -> serde_json::Value {
    let sim = SimTee::from_seed([42; 32]);
    let root = sim.root_certificate_der();
    let (mut accepted, mut rejected) = (0usize, 0usize);
    let mut relaunch_narrower = Vec::new();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let all = variants();
    for v in &all {
        let mut o = SimCollateralOptions::at(SIM_NOW);
        o.platform_status = v.platform;
        let json = sim.tdx_collateral_json_edited(&o, |t, q| (v.edit)(t, q));
        let quote = sim.tdx_quote_with(&[0x11; 64], &v.m, &v.q);
        let a = match TdxCollateral::from_json(&json) {
            Ok(col) => sorted(ours_tdx(
                &quote,
                TrustAnchors::simulated(root.clone()),
                &col,
                SIM_NOW,
            )),
            Err(e) => Err(e.code().to_string()),
        };
        let qcol: dcap_qvl::QuoteCollateralV3 =
            serde_json::from_slice(&json).expect("dcap-qvl reads simulated collateral");
        let b = reference(&root, &quote, &qcol, SIM_NOW);
        if let Ok(col) = TdxCollateral::from_json(&json) {
            let t = in_tree(&root, &quote, &col, SIM_NOW);
            let what = format!("simulated {}", v.name);
            hold_in_tree(&what, &t, &b, in_tree_same, failures);
        }
        match (&a, &b) {
            (Ok(x), Ok(y)) if x == y => {
                accepted += 1;
                *statuses.entry(x.0.clone()).or_default() += 1;
            }
            (Err(_), Err(_)) => rejected += 1,
            // Intel's checkForRelaunch is narrower than dcap-qvl's reading:
            // it advises a relaunch only when the TDX module level made the
            // launch out of date. Where dcap-qvl advises one and tl-evidence
            // keeps the launch status (same advisories), tl-evidence follows
            // Intel and is the stricter.
            (Ok(x), Ok(y))
                if y.0.starts_with("TDRelaunchAdvised")
                    && (x.0 == "OutOfDate" || x.0 == "OutOfDateConfigurationNeeded")
                    && x.1 == y.1 =>
            {
                relaunch_narrower.push(v.name.clone())
            }
            _ => failures.push(format!(
                "simulated {}: tl-evidence {a:?}, dcap-qvl {b:?}",
                v.name
            )),
        }
    }
    serde_json::json!({
        "variants": all.len(),
        "accepted_alike": accepted,
        "rejected_by_both": rejected,
        "statuses_accepted": statuses,
        "relaunch_advised_only_by_dcap_qvl": relaunch_narrower,
    })
}

fn main() {
    let mut failures = Vec::new();
    let mut summary = Vec::new();
    let mut in_tree_same = 0usize;
    for c in CASES {
        let quote = data(c.quote);
        let col_json = data(c.collateral);
        let col = TdxCollateral::from_json(&col_json).expect("tl-evidence reads the collateral");
        let qcol: dcap_qvl::QuoteCollateralV3 =
            serde_json::from_slice(&col_json).expect("dcap-qvl reads the collateral");

        let a = sorted(ours(&quote, &col, c.now, c.sgx));
        let b = reference(INTEL_ROOT, &quote, &qcol, c.now);
        let t = in_tree(INTEL_ROOT, &quote, &col, c.now);
        hold_in_tree(c.name, &t, &b, &mut in_tree_same, &mut failures);
        let status = |v: &Verdict| v.as_ref().ok().map(|(s, _)| s.clone());
        if status(&a).as_deref() != c.expected {
            failures.push(format!(
                "{}: tl-evidence {a:?}, sources say {:?}",
                c.name, c.expected
            ));
        }
        match (&a, &b) {
            (Ok(x), Ok(y)) if x != y => {
                failures.push(format!("{}: tl-evidence {x:?}, dcap-qvl {y:?}", c.name))
            }
            (Ok(x), Err(e)) => failures.push(format!(
                "{}: tl-evidence accepts {x:?}, dcap-qvl rejects: {e}",
                c.name
            )),
            _ => {}
        }

        // Every single-bit flip of an accepted quote (one bit per byte,
        // rotating, so every byte is touched).
        let (mut both, mut neither, mut only_reference) = (0usize, 0usize, Vec::new());
        if a.is_ok() {
            for i in 0..quote.len() {
                let mut q = quote.clone();
                q[i] ^= 1 << (i % 8);
                let a = sorted(ours(&q, &col, c.now, c.sgx));
                let b = reference(INTEL_ROOT, &q, &qcol, c.now);
                let t = in_tree(INTEL_ROOT, &q, &col, c.now);
                let what = format!("{} byte {i}", c.name);
                hold_in_tree(&what, &t, &b, &mut in_tree_same, &mut failures);
                match (&a, &b) {
                    (Ok(x), Ok(y)) if x == y => both += 1,
                    (Ok(x), Ok(y)) => failures.push(format!(
                        "{} byte {i}: tl-evidence {x:?}, dcap-qvl {y:?}",
                        c.name
                    )),
                    (Ok(x), Err(e)) => failures.push(format!(
                        "{} byte {i}: tl-evidence accepts {x:?}, dcap-qvl rejects: {e}",
                        c.name
                    )),
                    (Err(e), Ok(_)) => only_reference.push(format!("byte {i}: tl-evidence {e}")),
                    (Err(_), Err(_)) => neither += 1,
                }
            }
        }
        summary.push(serde_json::json!({
            "case": c.name,
            "tl_evidence": format!("{a:?}"),
            "dcap_qvl": format!("{b:?}"),
            "flips": {
                "bytes": if a.is_ok() { quote.len() } else { 0 },
                "both_accept_same_verdict": both,
                "both_reject": neither,
                "only_dcap_qvl_accepts": only_reference,
            },
        }));
    }
    let simulated = simulated(&mut failures, &mut in_tree_same);
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "cases": summary,
            "simulated": simulated,
            "dcap_qvl_on_tl_crypto_same_verdict": in_tree_same,
            "failures": failures,
        }))
        .expect("json")
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
