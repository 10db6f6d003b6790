//! The TDREPORT fallback's QGS client against a QGS speaking the real
//! framing over a Unix socket, which quotes with the simulated TEE: the
//! quote verifies and binds the report data; lying, failing and dead QGSs
//! are refused with their codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::sim::{SimMeasurements, SimTee};
use tl_evidence::verify::{verify_bundle, TrustAnchors, VerifyOptions};
use tl_loader::qgs::{
    quote_report, QgsAddress, GET_QUOTE_REQ, GET_QUOTE_RESP, HEADER_LEN, TDREPORT_LEN,
    TDREPORT_REPORTDATA_OFFSET,
};

#[derive(Clone, Copy)]
enum Behaviour {
    Honest,
    OtherReportData,
    Garbage,
    ServiceError,
}

/// One connection of a QGS: check the request's framing and header, quote
/// the TDREPORT's REPORTDATA with the simulated TEE, answer.
fn serve_one(l: UnixListener, sim: SimTee, b: Behaviour) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        let le = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap());
        assert_eq!(u16::from_le_bytes([body[0], body[1]]), 1);
        assert_eq!(le(4), GET_QUOTE_REQ);
        assert_eq!(le(8) as usize, body.len());
        assert_eq!(le(16) as usize, TDREPORT_LEN);
        let report = &body[HEADER_LEN + 8..];
        let mut rd = [0u8; 64];
        rd.copy_from_slice(&report[TDREPORT_REPORTDATA_OFFSET..TDREPORT_REPORTDATA_OFFSET + 64]);
        if let Behaviour::OtherReportData = b {
            rd[0] ^= 1;
        }
        let quote = match b {
            Behaviour::Garbage => vec![0x42; 600],
            _ => sim.tdx_quote(&rd, &SimMeasurements::default()),
        };
        let error: u32 = if let Behaviour::ServiceError = b {
            0x11
        } else {
            0
        };
        let n = (HEADER_LEN + 8 + quote.len()) as u32;
        let mut out = n.to_be_bytes().to_vec();
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&GET_QUOTE_RESP.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&error.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(quote.len() as u32).to_le_bytes());
        out.extend_from_slice(&quote);
        s.write_all(&out).unwrap();
    })
}

/// A TDREPORT-shaped buffer with `rd` as its REPORTDATA.
fn tdreport(rd: &[u8; 64]) -> Vec<u8> {
    let mut r = vec![0u8; TDREPORT_LEN];
    r[TDREPORT_REPORTDATA_OFFSET..TDREPORT_REPORTDATA_OFFSET + 64].copy_from_slice(rd);
    r
}

fn run(dir: &Path, b: Behaviour) -> (SimTee, Result<Vec<u8>, tl_loader::qgs::QgsError>) {
    let sock = dir.join("qgs.sock");
    let _ = std::fs::remove_file(&sock);
    let l = UnixListener::bind(&sock).unwrap();
    let sim = SimTee::from_seed([5; 32]);
    let h = serve_one(l, sim.clone(), b);
    let rd = [0x3cu8; 64];
    let r = quote_report(
        &QgsAddress::Unix(sock),
        &tdreport(&rd),
        &rd,
        Duration::from_secs(10),
    );
    h.join().unwrap();
    (sim, r)
}

#[test]
fn an_honest_qgs_quote_verifies_and_binds_the_report_data() {
    let d = tempfile::tempdir().unwrap();
    let (sim, r) = run(d.path(), Behaviour::Honest);
    let quote = r.unwrap();
    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote,
        certificates: vec![],
    });
    let v = verify_bundle(
        &bundle,
        &VerifyOptions::new(
            1_760_000_000,
            TrustAnchors::simulated(sim.root_certificate_der()),
        ),
    )
    .unwrap();
    assert_eq!(v.claims.report_data, [0x3c; 64]);
}

#[test]
fn lying_failing_and_dead_qgs_are_refused() {
    let d = tempfile::tempdir().unwrap();
    for (b, want) in [
        (Behaviour::OtherReportData, "TDX_QGS_WRONG_REPORT_DATA"),
        (Behaviour::Garbage, "TDX_QGS_MALFORMED"),
        (Behaviour::ServiceError, "TDX_QGS_ERROR"),
    ] {
        let (_, r) = run(d.path(), b);
        assert_eq!(r.unwrap_err().code(), want);
    }
    // Nobody listening.
    let err = quote_report(
        &QgsAddress::Unix(d.path().join("absent.sock")),
        &tdreport(&[0; 64]),
        &[0; 64],
        Duration::from_secs(1),
    )
    .unwrap_err();
    assert_eq!(err.code(), "TDX_QGS_IO");
    // A QGS that accepts and never answers runs into the timeout.
    let sock = d.path().join("mute.sock");
    let l = UnixListener::bind(&sock).unwrap();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        drop(s);
    });
    let t = std::time::Instant::now();
    let err = quote_report(
        &QgsAddress::Unix(sock),
        &tdreport(&[0; 64]),
        &[0; 64],
        Duration::from_millis(300),
    )
    .unwrap_err();
    assert_eq!(err.code(), "TDX_QGS_IO");
    assert!(t.elapsed() < Duration::from_millis(1400));
    h.join().unwrap();
}
