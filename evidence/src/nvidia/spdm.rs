//! SPDM GET_MEASUREMENTS request and response, as an NVIDIA GPU returns them
//! through NVML (`nvmlDeviceGetConfComputeGpuAttestationReport`).
//!
//! ```text
//! report   = request || response
//! request  = version(1) 0xE0 param1(1) param2(1) nonce(32) slot_id(1)       (37 bytes)
//! response = version(1) 0x60 param1(1) param2(1)
//!            number_of_blocks(1) record_length(u24 LE) record
//!            nonce(32) opaque_length(u16 LE) opaque
//!            signature(96: ECDSA P-384 r || s)
//!            [trailing zero padding, at most 16 bytes, unsigned]
//! block    = index(1) spec(1, 0x01 = DMTF) size(u16 LE)
//!            dmtf_value_type(1) dmtf_value_size(u16 LE) value
//! opaque   = { type(u16 LE) size(u16 LE) value }*          (NVIDIA TLVs)
//! ```
//!
//! The signed message is everything before the signature. Parsing is total:
//! every length is checked against the bytes present before anything is
//! read or allocated, and nothing here panics on hostile input.

use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

/// SPDM request code GET_MEASUREMENTS.
pub const GET_MEASUREMENTS: u8 = 0xE0;
/// SPDM response code MEASUREMENTS.
pub const MEASUREMENTS: u8 = 0x60;
/// Length of the request with a signature requested.
pub const REQUEST_LEN: usize = 37;
/// Length of the raw ECDSA P-384 signature.
pub const SIGNATURE_LEN: usize = 96;
/// The most unsigned zero bytes accepted after the signature.
pub const MAX_TRAILING: usize = 16;
/// The largest report accepted (NVIDIA reports are about 4 KiB).
pub const MAX_REPORT_LEN: usize = 64 * 1024;
/// The largest hex text accepted by [`decode_hex_report`].
pub const MAX_HEX_LEN: usize = 2 * MAX_REPORT_LEN + 64;

/// NVIDIA opaque-data TLV types (from NVIDIA's verifier).
pub mod opaque_type {
    pub const CERT_ISSUER_NAME: u16 = 1;
    pub const CERT_AUTHORITY_KEY_IDENTIFIER: u16 = 2;
    pub const DRIVER_VERSION: u16 = 3;
    pub const GPU_INFO: u16 = 4;
    pub const SKU: u16 = 5;
    pub const VBIOS_VERSION: u16 = 6;
    pub const MANUFACTURER_ID: u16 = 7;
    pub const TAMPER_DETECTION: u16 = 8;
    pub const SMC: u16 = 9;
    pub const VPR: u16 = 10;
    pub const NVDEC0_STATUS: u16 = 11;
    pub const MSRSCNT: u16 = 12;
    pub const CPRINFO: u16 = 13;
    pub const BOARD_ID: u16 = 14;
    pub const CHIP_SKU: u16 = 15;
    pub const CHIP_SKU_MOD: u16 = 16;
    pub const PROJECT: u16 = 17;
    pub const PROJECT_SKU: u16 = 18;
    pub const PROJECT_SKU_MOD: u16 = 19;
    pub const FWID: u16 = 20;
    pub const PROTECTED_PCIE_STATUS: u16 = 21;
    pub const OPAQUE_DATA_VERSION: u16 = 34;
    pub const FEATURE_FLAG: u16 = 36;
}

/// The GET_MEASUREMENTS request as the requester sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementsRequest {
    pub version: u8,
    pub param1: u8,
    pub param2: u8,
    pub nonce: [u8; 32],
    pub slot_id: u8,
}

/// One measurement block (DMTF measurement specification).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementBlock {
    pub index: u8,
    /// DMTF measurement value type (bit 7: raw bit stream; low bits: kind).
    pub value_type: u8,
    pub value: Vec<u8>,
}

/// One NVIDIA opaque-data field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpaqueField {
    pub kind: u16,
    pub value: Vec<u8>,
}

/// A parsed report: request, response fields, and where the signature is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpdmReport {
    pub request: MeasurementsRequest,
    pub version: u8,
    pub param1: u8,
    pub param2: u8,
    pub blocks: Vec<MeasurementBlock>,
    /// The responder's own nonce (not the requester's).
    pub responder_nonce: [u8; 32],
    pub opaque: Vec<OpaqueField>,
    pub signature: [u8; SIGNATURE_LEN],
    /// Number of bytes covered by the signature (request and response up
    /// to the signature).
    pub signed_len: usize,
    /// Unsigned zero bytes after the signature.
    pub trailing_len: usize,
}

impl SpdmReport {
    /// The first opaque field of this type.
    pub fn opaque(&self, kind: u16) -> Option<&[u8]> {
        self.opaque
            .iter()
            .find(|f| f.kind == kind)
            .map(|f| f.value.as_slice())
    }
}

fn bad(what: &'static str) -> EvidenceError {
    EvidenceError::GpuReportMalformed(what)
}

/// A cursor that never reads past its end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| bad(what))?;
        let s = self.buf.get(self.pos..end).ok_or_else(|| bad(what))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8> {
        let s = self.take(1, what)?;
        s.first().copied().ok_or_else(|| bad(what))
    }
    fn u16(&mut self, what: &'static str) -> Result<u16> {
        let s = self.take(2, what)?;
        let a: [u8; 2] = s.try_into().map_err(|_| bad(what))?;
        Ok(u16::from_le_bytes(a))
    }
    fn u24(&mut self, what: &'static str) -> Result<usize> {
        let s = self.take(3, what)?;
        match s {
            [a, b, c] => Ok(usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16),
            _ => Err(bad(what)),
        }
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        self.take(N, what)?.try_into().map_err(|_| bad(what))
    }
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
}

/// Decode the hex text form (as NVIDIA's tools and test data store it):
/// optional `0x`, hex digits, surrounding whitespace.
pub fn decode_hex_report(text: &[u8]) -> Result<Vec<u8>> {
    if text.len() > MAX_HEX_LEN {
        return Err(bad("hex report too long"));
    }
    let t = text.trim_ascii();
    let t = t
        .strip_prefix(b"0x")
        .or_else(|| t.strip_prefix(b"0X"))
        .unwrap_or(t);
    hex::decode(t).map_err(|_| bad("hex report"))
}

/// Parse a report (binary). Only SPDM 1.1 and 1.2 with a signature
/// requested are accepted.
pub fn parse_report(bytes: &[u8]) -> Result<SpdmReport> {
    if bytes.len() > MAX_REPORT_LEN {
        return Err(bad("report too long"));
    }
    let mut r = Reader { buf: bytes, pos: 0 };
    let version = r.u8("request version")?;
    if !matches!(version, 0x11 | 0x12) {
        return Err(bad("unsupported SPDM version"));
    }
    if r.u8("request code")? != GET_MEASUREMENTS {
        return Err(bad("request is not GET_MEASUREMENTS"));
    }
    let param1 = r.u8("request param1")?;
    if param1 & 1 == 0 {
        return Err(bad("request did not ask for a signature"));
    }
    let param2 = r.u8("request param2")?;
    let nonce = r.array::<32>("request nonce")?;
    let slot_id = r.u8("request slot")?;
    let request = MeasurementsRequest {
        version,
        param1,
        param2,
        nonce,
        slot_id,
    };

    let rversion = r.u8("response version")?;
    if rversion != version {
        return Err(bad("response version differs from request"));
    }
    if r.u8("response code")? != MEASUREMENTS {
        return Err(bad("response is not MEASUREMENTS"));
    }
    let rparam1 = r.u8("response param1")?;
    let rparam2 = r.u8("response param2")?;
    let n_blocks = r.u8("number of blocks")?;
    let record_len = r.u24("record length")?;
    let record = r.take(record_len, "measurement record")?;
    let blocks = parse_record(record, n_blocks)?;
    let responder_nonce = r.array::<32>("response nonce")?;
    let opaque_len = r.u16("opaque length")?;
    let opaque = parse_opaque(r.take(usize::from(opaque_len), "opaque data")?)?;
    let signed_len = r.pos;
    let signature = r.array::<SIGNATURE_LEN>("signature")?;
    let trailing = r.rest();
    if trailing.len() > MAX_TRAILING || trailing.iter().any(|b| *b != 0) {
        return Err(bad("bytes after the signature"));
    }
    Ok(SpdmReport {
        request,
        version: rversion,
        param1: rparam1,
        param2: rparam2,
        blocks,
        responder_nonce,
        opaque,
        signature,
        signed_len,
        trailing_len: trailing.len(),
    })
}

fn parse_record(record: &[u8], n_blocks: u8) -> Result<Vec<MeasurementBlock>> {
    let mut r = Reader {
        buf: record,
        pos: 0,
    };
    let mut out: Vec<MeasurementBlock> = Vec::with_capacity(usize::from(n_blocks));
    for _ in 0..n_blocks {
        let index = r.u8("block index")?;
        if index == 0 || out.iter().any(|b| b.index == index) {
            return Err(bad("block index zero or repeated"));
        }
        if r.u8("block spec")? != 1 {
            return Err(bad("block is not a DMTF measurement"));
        }
        let size = r.u16("block size")?;
        let mut v = Reader {
            buf: r.take(usize::from(size), "block")?,
            pos: 0,
        };
        let value_type = v.u8("DMTF value type")?;
        let value_size = v.u16("DMTF value size")?;
        let value = v.take(usize::from(value_size), "DMTF value")?.to_vec();
        if !v.rest().is_empty() {
            return Err(bad("block size does not match its value"));
        }
        out.push(MeasurementBlock {
            index,
            value_type,
            value,
        });
    }
    if !r.rest().is_empty() {
        return Err(bad("measurement record longer than its blocks"));
    }
    Ok(out)
}

fn parse_opaque(data: &[u8]) -> Result<Vec<OpaqueField>> {
    let mut r = Reader { buf: data, pos: 0 };
    let mut out = Vec::new();
    while !r.rest().is_empty() {
        let kind = r.u16("opaque type")?;
        let size = r.u16("opaque size")?;
        let value = r.take(usize::from(size), "opaque value")?.to_vec();
        out.push(OpaqueField { kind, value });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_short_inputs_are_malformed() {
        for n in 0..40 {
            let v = vec![0x11u8; n];
            assert_eq!(
                parse_report(&v).map_err(|e| e.code()),
                Err("GPU_REPORT_MALFORMED")
            );
        }
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex_report(b" 0x0aFF\n").ok(), Some(vec![0x0a, 0xff]));
        assert!(decode_hex_report(b"0g").is_err());
        assert!(decode_hex_report(b"abc").is_err());
    }
}
