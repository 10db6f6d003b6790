//! The quote parser against an independent TPM 2.0 implementation
//! (`tpm2-protocol`, the marshaller the loader's TPM client is built on): on
//! every real quote in the test data both read the same fields; on mutated
//! quotes, whenever both accept they agree, and whatever this parser accepts
//! the reference accepts too (it is never the more permissive of the two).

use proptest::prelude::*;
use tl_evidence::tpm::TpmsAttest;
use tpm2_protocol::data::{TpmSt, TpmsAttest as Reference, TpmuAttest};
use tpm2_protocol::TpmUnmarshal;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tpm-eventlog/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("missing test data {p}: {e}"))
}

fn json(rel: &str) -> serde_json::Value {
    serde_json::from_slice(&read(rel)).expect("json")
}

/// Every real quote's TPMS_ATTEST.
fn real_quotes() -> Vec<(&'static str, Vec<u8>)> {
    use base64::Engine;
    let hex_field =
        |rel: &str| hex::decode(json(rel)["message"].as_str().expect("message")).expect("hex");
    let trustee = json("trustee-tpm/tpm_evidence.json");
    let trustee = base64::engine::general_purpose::STANDARD
        .decode(trustee["tpm_quote"]["message"].as_str().expect("message"))
        .expect("base64");
    vec![
        (
            "GCE Windows Shielded VM",
            read("go-attestation/windows_gcp_quote.tpms_attest.bin"),
        ),
        (
            "Azure SNP vTPM",
            hex_field("trustee-azure-vtpm/az-snp-vtpm/tpm-quote-v1.json"),
        ),
        (
            "Azure TDX vTPM",
            hex_field("trustee-azure-vtpm/az-tdx-vtpm/tpm-quote-v1.json"),
        ),
        ("trustee TPM evidence", trustee),
    ]
}

/// The reference's reading of a quote, as ours reports it; `None` when it
/// does not accept exactly one quote structure.
fn reference(bytes: &[u8]) -> Option<TpmsAttest> {
    let (r, rest) = Reference::unmarshal(bytes).ok()?;
    if !rest.is_empty() || r.attest_type != TpmSt::AttestQuote {
        return None;
    }
    let TpmuAttest::Quote(q) = &r.attested else {
        return None;
    };
    Some(TpmsAttest {
        qualified_signer: r.qualified_signer.to_vec(),
        extra_data: r.extra_data.to_vec(),
        clock_info: tl_evidence::tpm::attest::ClockInfo {
            clock: r.clock_info.clock.value(),
            reset_count: r.clock_info.reset_count.value(),
            restart_count: r.clock_info.restart_count.value(),
            safe: r.clock_info.safe.into(),
        },
        firmware_version: r.firmware_version.value(),
        pcr_select: q
            .pcr_select
            .iter()
            // Decoded here, not with `PcrSelection::from_bitmap`: the parser
            // under test uses that.
            .map(|s| tl_evidence::tpm::PcrSelection {
                hash_alg: s.hash.value(),
                pcrs: s
                    .pcr_select
                    .iter()
                    .enumerate()
                    .flat_map(|(i, b)| {
                        (0..8u32)
                            .filter(move |j| b & (1 << j) != 0)
                            .map(move |j| i as u32 * 8 + j)
                    })
                    .collect(),
            })
            .collect(),
        pcr_digest: q.pcr_digest.to_vec(),
    })
}

/// Every single-bit flip of every real quote: both parsers agree on the
/// fields whenever both accept, and this one never accepts a flip the
/// reference rejects.
#[test]
fn every_bit_flip_of_real_quotes() {
    let mut both = 0;
    for (name, q) in real_quotes() {
        for i in 0..q.len() {
            for bit in 0..8 {
                let mut m = q.clone();
                m[i] ^= 1 << bit;
                match (TpmsAttest::parse(&m), reference(&m)) {
                    (Ok(ours), Some(theirs)) => {
                        assert_eq!(ours, theirs, "{name}: byte {i} bit {bit}");
                        both += 1;
                    }
                    (Ok(_), None) => {
                        panic!("{name}: byte {i} bit {bit} accepted, reference rejects")
                    }
                    (Err(_), _) => {}
                }
            }
        }
    }
    // Most flips land in data fields (clock, digests, names), which both
    // accept: the comparison above is exercised, not vacuous.
    assert!(both > 2000, "only {both} flips accepted by both");
}

#[test]
fn real_quotes_read_the_same_in_both() {
    for (name, q) in real_quotes() {
        let ours = TpmsAttest::parse(&q).unwrap_or_else(|e| panic!("{name}: {e}"));
        let theirs = reference(&q).unwrap_or_else(|| panic!("{name}: reference rejects it"));
        assert_eq!(ours, theirs, "{name}");
        assert!(!ours.pcr_select.is_empty(), "{name}: selects PCRs");
    }
}

proptest! {
    /// Flip, insert or delete bytes of a real quote: whenever both parsers
    /// accept the result, they read the same fields.
    #[test]
    fn mutated_quotes_agree_when_both_accept(
        which in 0usize..4,
        edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut q = real_quotes().swap_remove(which).1;
        for (pos, byte, kind) in edits {
            let at = pos as usize % (q.len() + 1);
            match kind {
                0 if at < q.len() => q[at] ^= byte | 1,
                1 => q.insert(at, byte),
                _ if at < q.len() => {
                    q.remove(at);
                }
                _ => {}
            }
        }
        match (TpmsAttest::parse(&q), reference(&q)) {
            (Ok(ours), Some(theirs)) => prop_assert_eq!(ours, theirs),
            (Ok(ours), None) => prop_assert!(false, "accepted what the reference rejects: {:?}", ours),
            (Err(_), _) => {}
        }
    }
}
