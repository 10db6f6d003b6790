//! The adapter between the loader's TPM client and `tpm2-protocol` (pure:
//! bytes in, bytes out).
//!
//! `tpm2-protocol` owns the TPM 2.0 wire format: every command is one of its
//! typed command structures, marshalled by `tpm_marshal_command`, and every
//! response is checked (envelope, tag, handle and parameter areas, no trailing
//! bytes) and unmarshalled into its typed response structure. This module adds
//! what the loader needs around it: conversion between the evidence crate's
//! [`PcrSelection`] and `TPML_PCR_SELECTION`, the two authorization sessions
//! the loader uses, the response-code classification into [`TpmError`], and
//! access to the exact bytes of a response's leading parameter (a quote's
//! `TPM2B_ATTEST` is signed data and travels as the TPM returned it, never
//! re-encoded).

use tl_evidence::tpm::PcrSelection;
use tpm2_protocol::{
    basic::TpmHandle,
    data::{
        Tpm2bAuth, Tpm2bNonce, TpmAlgId, TpmSt, TpmaSession, TpmlPcrSelection, TpmsAuthCommand,
        TpmsPcrSelect, TpmsPcrSelection,
    },
    frame::{tpm_marshal_command, TpmFrame, TpmResponse, TpmUnmarshalBody},
    TpmMarshal, TpmSized, TpmWriter,
};

use zeroize::Zeroizing;

use super::TpmError;

pub const TPM_RS_PW: u32 = 0x4000_0009;
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
pub const TPM_RH_NULL: u32 = 0x4000_0007;
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;

/// Number of PCRs a selection bitmap covers (3 bytes: PCRs 0..=23, what
/// every PC Client TPM implements).
pub const PCR_COUNT: u32 = 24;

/// Largest command or response exchanged with a TPM (TPM 2.0
/// `MAX_COMMAND_SIZE`/`MAX_RESPONSE_SIZE` are 4096 on every TPM in the
/// field; twice that leaves room).
pub const MAX_RESPONSE: usize = 8192;

/// A `tpm2-protocol` marshalling failure as the caller's argument error.
fn encode_error(command: &'static str, e: tpm2_protocol::TpmError) -> TpmError {
    TpmError::Encode {
        command,
        detail: e.to_string(),
    }
}

/// A `tpm2-protocol` unmarshalling failure as a malformed response.
pub fn decode_error(command: &'static str, e: tpm2_protocol::TpmError) -> TpmError {
    TpmError::Decode {
        command,
        detail: e.to_string(),
    }
}

/// `TPML_PCR_SELECTION` for `sel` (3-byte bitmaps, PCRs 0..=23; at most 8 banks).
pub fn to_tpml(sel: &[PcrSelection]) -> Result<TpmlPcrSelection, TpmError> {
    let mut out = TpmlPcrSelection::new();
    for s in sel {
        let mut bits = [0u8; 3];
        for &p in &s.pcrs {
            if p >= PCR_COUNT {
                return Err(TpmError::Argument("PCR index above 23"));
            }
            bits[(p / 8) as usize] |= 1 << (p % 8);
        }
        let pcr_select = TpmsPcrSelect::try_from(&bits[..])
            .map_err(|_| TpmError::Argument("PCR selection bitmap"))?;
        out.try_push(TpmsPcrSelection {
            hash: TpmAlgId::try_from(s.hash_alg)
                .map_err(|_| TpmError::Argument("unknown PCR bank algorithm"))?,
            pcr_select,
        })
        .map_err(|_| TpmError::Argument("more than 8 PCR banks"))?;
    }
    Ok(out)
}

/// The evidence crate's selection for a `TPML_PCR_SELECTION` (bitmaps of up
/// to `TPM_PCR_SELECT_MAX` bytes, as the crate accepts them).
pub fn from_tpml(l: &TpmlPcrSelection) -> Vec<PcrSelection> {
    l.iter()
        .map(|s| PcrSelection::from_bitmap(s.hash.value(), &s.pcr_select))
        .collect()
}

/// The marshalled `TPML_PCR_SELECTION` (what a PolicyPCR digest covers).
pub fn tpml_bytes(sel: &[PcrSelection]) -> Result<Vec<u8>, TpmError> {
    to_bytes("TPML_PCR_SELECTION", &to_tpml(sel)?)
}

/// Marshal one structure.
pub fn to_bytes<T: TpmMarshal + TpmSized>(what: &'static str, v: &T) -> Result<Vec<u8>, TpmError> {
    let mut buf = vec![0u8; v.len()];
    let mut w = TpmWriter::new(&mut buf);
    v.marshal(&mut w).map_err(|e| encode_error(what, e))?;
    let n = w.len();
    buf.truncate(n);
    Ok(buf)
}

/// A password authorization with an empty password (`TPM_RS_PW`).
pub fn password_auth() -> TpmsAuthCommand {
    TpmsAuthCommand {
        session_handle: TpmHandle::new(TPM_RS_PW),
        nonce: Tpm2bNonce::default(),
        session_attributes: TpmaSession::default(),
        hmac: Tpm2bAuth::default(),
    }
}

/// A policy-session authorization (no HMAC: the policy has no
/// PolicyAuthValue). The session ends with the command (`continueSession`
/// clear).
pub fn policy_auth(session: u32, nonce_caller: &[u8]) -> Result<TpmsAuthCommand, TpmError> {
    Ok(TpmsAuthCommand {
        session_handle: TpmHandle::new(session),
        nonce: Tpm2bNonce::try_from(nonce_caller)
            .map_err(|_| TpmError::Argument("session nonce longer than a digest"))?,
        session_attributes: TpmaSession::default(),
        hmac: Tpm2bAuth::default(),
    })
}

/// A complete command: header, handles, authorization area (when
/// `sessions` is not empty), parameters.
pub fn command<C: TpmFrame>(
    name: &'static str,
    cmd: &C,
    sessions: &[TpmsAuthCommand],
) -> Result<Zeroizing<Vec<u8>>, TpmError> {
    let tag = if sessions.is_empty() {
        TpmSt::NoSessions
    } else {
        TpmSt::Sessions
    };
    let mut buf = Zeroizing::new(vec![0u8; MAX_RESPONSE]);
    let mut w = TpmWriter::new(&mut buf);
    tpm_marshal_command(cmd, tag, sessions, &mut w).map_err(|e| encode_error(name, e))?;
    let n = w.len();
    buf.truncate(n);
    Ok(buf)
}

/// The response code of a response frame, if it has a header.
pub fn response_code(resp: &[u8]) -> Option<u32> {
    match resp.get(6..10) {
        Some([a, b, c, d]) => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Parse a response to `name`: a non-zero response code becomes
/// [`TpmError::Rc`] or [`TpmError::PolicyFailed`] (read before the frame is
/// interpreted, so vendor codes unknown to the protocol crate are reported
/// as they are); a successful response must be exactly one well-formed
/// frame of `R`.
pub fn response<R: TpmUnmarshalBody>(name: &'static str, resp: &[u8]) -> Result<R, TpmError> {
    check_code(name, resp)?;
    TpmResponse::cast(resp)
        .and_then(|f| f.unmarshal::<R>())
        .map_err(|e| decode_error(name, e))
}

/// A response's header: its size field must be its length, and a non-zero
/// response code is the command's failure.
pub fn check_code(name: &'static str, resp: &[u8]) -> Result<(), TpmError> {
    let rc = response_code(resp).ok_or(TpmError::Malformed("response shorter than its header"))?;
    if resp.get(2..6) != Some(&(resp.len() as u32).to_be_bytes()[..]) {
        return Err(TpmError::Malformed("response size field"));
    }
    match rc {
        0 => Ok(()),
        rc => Err(TpmError::from_rc(name, rc)),
    }
}

/// The bytes of the parameter area of a successful response that has
/// `handles` handles (call after [`response`] has accepted the frame).
pub fn parameters(resp: &[u8], handles: usize) -> Result<&[u8], TpmError> {
    let frame = TpmResponse::cast(resp).map_err(|e| decode_error("response", e))?;
    let body = frame
        .body()
        .get(handles * 4..)
        .ok_or(TpmError::Malformed("handle area"))?;
    match frame.tag() {
        Ok(TpmSt::Sessions) => {
            let (size, rest) = body
                .split_first_chunk::<4>()
                .ok_or(TpmError::Malformed("parameterSize"))?;
            rest.get(..u32::from_be_bytes(*size) as usize)
                .ok_or(TpmError::Malformed("parameter area"))
        }
        Ok(_) => Ok(body),
        Err(e) => Err(decode_error("response", e)),
    }
}

/// The first `TPM2B_*` of a parameter area, size prefix included, exactly
/// as the TPM sent it.
pub fn leading_tpm2b(params: &[u8]) -> Result<&[u8], TpmError> {
    let (size, _) = params
        .split_first_chunk::<2>()
        .ok_or(TpmError::Malformed("TPM2B size"))?;
    params
        .get(..2 + u16::from_be_bytes(*size) as usize)
        .ok_or(TpmError::Malformed("TPM2B contents"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tpm2_protocol::frame::{TpmFlushContextCommand, TpmPcrExtendCommand, TpmQuoteResponse};

    #[test]
    fn selection_roundtrip() {
        let sel = vec![
            PcrSelection {
                hash_alg: 0x000b,
                pcrs: vec![0, 7, 16, 23],
            },
            PcrSelection {
                hash_alg: 0x000c,
                pcrs: vec![],
            },
        ];
        let b = tpml_bytes(&sel).unwrap();
        assert_eq!(
            b,
            [0, 0, 0, 2, 0, 0x0b, 3, 0x81, 0x00, 0x81, 0, 0x0c, 3, 0, 0, 0]
        );
        assert_eq!(from_tpml(&to_tpml(&sel).unwrap()), sel);
        let bad = [PcrSelection {
            hash_alg: 0x000b,
            pcrs: vec![24],
        }];
        assert_eq!(to_tpml(&bad).unwrap_err().code(), "TPM_ARGUMENT");
        let many: Vec<_> = (0..9)
            .map(|_| PcrSelection {
                hash_alg: 0x000b,
                pcrs: vec![0],
            })
            .collect();
        assert_eq!(to_tpml(&many).unwrap_err().code(), "TPM_ARGUMENT");
    }

    #[test]
    fn command_frames() {
        let extend = TpmPcrExtendCommand {
            handles: [TpmHandle::new(16)],
            digests: Default::default(),
        };
        let c = command("PCR_Extend", &extend, &[password_auth()]).unwrap();
        assert_eq!(
            c.as_slice(),
            [
                0x80, 0x02, 0, 0, 0, 31, 0, 0, 1, 0x82, // header
                0, 0, 0, 16, // pcrHandle
                0, 0, 0, 9, 0x40, 0, 0, 9, 0, 0, 0, 0, 0, // TPM_RS_PW, empty
                0, 0, 0, 0, // no digests
            ]
        );
        let flush = TpmFlushContextCommand {
            handles: [],
            flush_handle: TpmHandle::new(0x8000_0001),
        };
        let c = command("FlushContext", &flush, &[]).unwrap();
        assert_eq!(
            c.as_slice(),
            [0x80, 1, 0, 0, 0, 14, 0, 0, 1, 0x65, 0x80, 0, 0, 1]
        );
    }

    /// A successful Quote response with sessions: parameterSize, a 3-byte
    /// TPM2B_ATTEST, a NULL signature, then an empty response session.
    fn quote_response(attest: &[u8]) -> Vec<u8> {
        let mut params = (attest.len() as u16).to_be_bytes().to_vec();
        params.extend_from_slice(attest);
        params.extend_from_slice(&[0x00, 0x10]); // TPM_ALG_NULL signature
        let mut r = vec![0x80, 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
        r.extend_from_slice(&(params.len() as u32).to_be_bytes());
        r.extend_from_slice(&params);
        r.extend_from_slice(&[0, 0, 1, 0, 0]);
        let n = r.len() as u32;
        r[2..6].copy_from_slice(&n.to_be_bytes());
        r
    }

    /// A minimal TPMS_ATTEST of a quote: magic, TPM_ST_ATTEST_QUOTE, empty
    /// signer name and extraData, clock info, firmware version, an empty
    /// PCR selection and digest.
    fn attest() -> Vec<u8> {
        let mut a = vec![0xff, 0x54, 0x43, 0x47, 0x80, 0x18, 0, 0, 0, 0];
        a.extend_from_slice(&[0; 17]); // clock, resetCount, restartCount, safe
        a.extend_from_slice(&[0; 8]); // firmwareVersion
        a.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // pcrSelect, pcrDigest
        a
    }

    #[test]
    fn responses() {
        let ok = quote_response(&attest());
        let q: TpmQuoteResponse = response("Quote", &ok).unwrap();
        assert_eq!(q.signature.sig_alg, TpmAlgId::Null);
        let p = parameters(&ok, 0).unwrap();
        let raw = leading_tpm2b(p).unwrap();
        assert_eq!(&raw[2..], attest().as_slice());
        // size field lies
        let mut bad = ok.clone();
        bad[5] ^= 1;
        assert_eq!(
            response::<TpmQuoteResponse>("Quote", &bad)
                .unwrap_err()
                .code(),
            "TPM_RESPONSE_MALFORMED"
        );
        // truncated anywhere up to the end of the parameters (the response
        // authorization area is not used: without sessions in it the frame
        // is still whole)
        for cut in 0..ok.len() - 5 {
            let mut t = ok[..cut].to_vec();
            if t.len() >= 6 {
                let n = t.len() as u32;
                t[2..6].copy_from_slice(&n.to_be_bytes());
            }
            assert!(
                response::<TpmQuoteResponse>("Quote", &t).is_err(),
                "cut {cut}"
            );
        }
        // trailing bytes inside the parameter area
        let mut long = ok.clone();
        long.insert(14 + 2 + attest().len() + 2, 0);
        long[13] += 1;
        long[5] += 1;
        assert_eq!(
            response::<TpmQuoteResponse>("Quote", &long)
                .unwrap_err()
                .code(),
            "TPM_RESPONSE_MALFORMED"
        );
        // error codes, including one the protocol crate does not know
        let err = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x9d];
        let e = response::<TpmQuoteResponse>("Unseal", &err).unwrap_err();
        assert_eq!(e.code(), "TPM_POLICY_FAILED");
        let err = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];
        assert_eq!(
            response::<TpmQuoteResponse>("Quote", &err)
                .unwrap_err()
                .code(),
            "TPM_RC"
        );
        let vendor = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x0f, 0xff];
        assert_eq!(
            response::<TpmQuoteResponse>("Quote", &vendor)
                .unwrap_err()
                .code(),
            "TPM_RC"
        );
    }
}
