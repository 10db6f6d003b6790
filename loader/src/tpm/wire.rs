//! TPM 2.0 command marshalling and response parsing (pure: bytes in, bytes
//! out). Only the structures the loader's commands use are encoded here;
//! every length read from a response is checked against the remaining input
//! before any copy.

use tl_evidence::tpm::PcrSelection;

use super::TpmError;

pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
pub const TPM_ST_SESSIONS: u16 = 0x8002;

pub const TPM_CC_CREATE_PRIMARY: u32 = 0x0000_0131;
pub const TPM_CC_CREATE: u32 = 0x0000_0153;
pub const TPM_CC_LOAD: u32 = 0x0000_0157;
pub const TPM_CC_QUOTE: u32 = 0x0000_0158;
pub const TPM_CC_UNSEAL: u32 = 0x0000_015E;
pub const TPM_CC_FLUSH_CONTEXT: u32 = 0x0000_0165;
pub const TPM_CC_START_AUTH_SESSION: u32 = 0x0000_0176;
pub const TPM_CC_GET_CAPABILITY: u32 = 0x0000_017A;
pub const TPM_CC_PCR_READ: u32 = 0x0000_017E;
pub const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;
pub const TPM_CC_PCR_EXTEND: u32 = 0x0000_0182;

pub const TPM_RS_PW: u32 = 0x4000_0009;
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
pub const TPM_RH_NULL: u32 = 0x4000_0007;
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;

pub const TPM_SE_POLICY: u8 = 0x01;
pub const TPM_CAP_PCRS: u32 = 0x0000_0005;

pub const TPM_ALG_AES: u16 = 0x0006;
pub const TPM_ALG_KEYEDHASH: u16 = 0x0008;
pub const TPM_ALG_CFB: u16 = 0x0043;
pub use tl_evidence::tpm::attest::{
    TPM_ALG_ECC, TPM_ALG_ECDSA, TPM_ALG_NULL, TPM_ALG_SHA256, TPM_ECC_NIST_P256,
};

/// Object attributes (TPMA_OBJECT).
pub const FIXED_TPM: u32 = 1 << 1;
pub const FIXED_PARENT: u32 = 1 << 4;
pub const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
pub const USER_WITH_AUTH: u32 = 1 << 6;
pub const ADMIN_WITH_POLICY: u32 = 1 << 7;
pub const NO_DA: u32 = 1 << 10;
pub const RESTRICTED: u32 = 1 << 16;
pub const DECRYPT: u32 = 1 << 17;
pub const SIGN: u32 = 1 << 18;

/// Number of PCRs a selection bitmap covers (`PCR_SELECT_MAX` = 3 bytes).
pub const PCR_COUNT: u32 = 24;

/// Largest response accepted from a TPM (TPM 2.0 `MAX_RESPONSE_SIZE` is
/// 4096 on every TPM in the field; twice that leaves room).
pub const MAX_RESPONSE: usize = 8192;

/// A big-endian writer.
#[derive(Debug, Default)]
pub struct W(pub Vec<u8>);

impl W {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A `TPM2B_*`: u16 size then the bytes.
    pub fn tpm2b(&mut self, b: &[u8]) -> Result<&mut Self, TpmError> {
        let n = u16::try_from(b.len()).map_err(|_| TpmError::Argument("TPM2B too long"))?;
        self.u16(n);
        self.0.extend_from_slice(b);
        Ok(self)
    }
}

/// A big-endian reader over a response.
#[derive(Debug)]
pub struct R<'a>(pub &'a [u8]);

fn malformed(what: &'static str) -> TpmError {
    TpmError::Malformed(what)
}

impl<'a> R<'a> {
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TpmError> {
        if n > self.0.len() {
            return Err(malformed(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, TpmError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, TpmError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, TpmError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn tpm2b(&mut self, what: &'static str) -> Result<&'a [u8], TpmError> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }
    /// A whole `TPM2B_*` including its size prefix.
    pub fn tpm2b_raw(&mut self, what: &'static str) -> Result<&'a [u8], TpmError> {
        let all = self.0;
        let n = self.u16(what)? as usize;
        self.take(n, what)?;
        all.get(..n + 2).ok_or(malformed(what))
    }
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
    pub fn end(&self, what: &'static str) -> Result<(), TpmError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(malformed(what))
        }
    }
}

/// Marshal a `TPML_PCR_SELECTION` (3-byte bitmaps, PCRs 0..=23).
pub fn pcr_selection(w: &mut W, sel: &[PcrSelection]) -> Result<(), TpmError> {
    let count = u32::try_from(sel.len()).map_err(|_| TpmError::Argument("too many banks"))?;
    w.u32(count);
    for s in sel {
        let mut bits = [0u8; 3];
        for &p in &s.pcrs {
            if p >= PCR_COUNT {
                return Err(TpmError::Argument("PCR index above 23"));
            }
            bits[(p / 8) as usize] |= 1 << (p % 8);
        }
        w.u16(s.hash_alg).u8(3).bytes(&bits);
    }
    Ok(())
}

/// Parse a `TPML_PCR_SELECTION`.
pub fn parse_pcr_selection(r: &mut R<'_>) -> Result<Vec<PcrSelection>, TpmError> {
    let count = r.u32("TPML_PCR_SELECTION count")?;
    if count > 16 {
        return Err(malformed("too many PCR banks"));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        let hash_alg = r.u16("TPMS_PCR_SELECTION hash")?;
        let n = r.u8("sizeofSelect")? as usize;
        let bits = r.take(n, "pcrSelect")?;
        let pcrs = bits
            .iter()
            .enumerate()
            .flat_map(|(i, b)| {
                (0..8u32)
                    .filter(move |j| b & (1 << j) != 0)
                    .map(move |j| i as u32 * 8 + j)
            })
            .collect();
        out.push(PcrSelection { hash_alg, pcrs });
    }
    Ok(out)
}

/// A password authorization with an empty password (`TPM_RS_PW`).
pub fn password_auth() -> Vec<u8> {
    let mut w = W::default();
    w.u32(TPM_RS_PW).u16(0).u8(0).u16(0);
    w.0
}

/// A policy-session authorization (no HMAC: the policy has no PolicyAuthValue).
pub fn policy_auth(session: u32, nonce_caller: &[u8]) -> Result<Vec<u8>, TpmError> {
    let mut w = W::default();
    w.u32(session).tpm2b(nonce_caller)?.u8(0).u16(0);
    Ok(w.0)
}

/// A complete command: header, handles, authorization area (when any), parameters.
pub fn command(cc: u32, handles: &[u32], auths: &[Vec<u8>], params: &[u8]) -> Vec<u8> {
    let mut body = W::default();
    for h in handles {
        body.u32(*h);
    }
    if !auths.is_empty() {
        let len: usize = auths.iter().map(Vec::len).sum();
        // Authorization areas are a few dozen bytes each.
        body.u32(len as u32);
        for a in auths {
            body.bytes(a);
        }
    }
    body.bytes(params);
    let tag = if auths.is_empty() {
        TPM_ST_NO_SESSIONS
    } else {
        TPM_ST_SESSIONS
    };
    let mut w = W::default();
    // Commands are built from bounded parts (keys, digests, selections).
    w.u16(tag)
        .u32((10 + body.0.len()) as u32)
        .u32(cc)
        .bytes(&body.0);
    w.0
}

/// A parsed successful response: its handles and its parameter area.
#[derive(Debug)]
pub struct Response<'a> {
    pub handles: Vec<u32>,
    pub params: &'a [u8],
}

/// Parse a response to `command` (named for errors) that returns `n_handles` handles.
pub fn response<'a>(
    command: &'static str,
    resp: &'a [u8],
    n_handles: usize,
) -> Result<Response<'a>, TpmError> {
    let mut r = R(resp);
    let tag = r.u16("response tag")?;
    let size = r.u32("response size")?;
    if size as usize != resp.len() {
        return Err(malformed("response size field"));
    }
    let rc = r.u32("response code")?;
    if rc != 0 {
        return Err(TpmError::from_rc(command, rc));
    }
    let mut handles = Vec::with_capacity(n_handles);
    for _ in 0..n_handles {
        handles.push(r.u32("response handle")?);
    }
    let params = match tag {
        TPM_ST_SESSIONS => {
            let n = r.u32("parameterSize")? as usize;
            r.take(n, "parameters")?
        }
        TPM_ST_NO_SESSIONS => r.rest(),
        _ => return Err(malformed("response tag")),
    };
    Ok(Response { handles, params })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        let mut w = W::default();
        pcr_selection(&mut w, &sel).unwrap();
        assert_eq!(
            w.0,
            [0, 0, 0, 2, 0, 0x0b, 3, 0x81, 0x00, 0x81, 0, 0x0c, 3, 0, 0, 0]
        );
        let back = parse_pcr_selection(&mut R(&w.0)).unwrap();
        assert_eq!(back, sel);
        let bad = [PcrSelection {
            hash_alg: 0x000b,
            pcrs: vec![24],
        }];
        assert_eq!(
            pcr_selection(&mut W::default(), &bad).unwrap_err().code(),
            "TPM_ARGUMENT"
        );
    }

    #[test]
    fn command_header() {
        let c = command(TPM_CC_PCR_EXTEND, &[16], &[password_auth()], &[1, 2]);
        assert_eq!(&c[..2], &TPM_ST_SESSIONS.to_be_bytes());
        assert_eq!(
            u32::from_be_bytes([c[2], c[3], c[4], c[5]]) as usize,
            c.len()
        );
        assert_eq!(&c[6..10], &TPM_CC_PCR_EXTEND.to_be_bytes());
        assert_eq!(&c[10..14], &16u32.to_be_bytes());
        assert_eq!(&c[14..18], &9u32.to_be_bytes());
        let c = command(TPM_CC_FLUSH_CONTEXT, &[], &[], &[0, 0, 0, 1]);
        assert_eq!(c, [0x80, 1, 0, 0, 0, 14, 0, 0, 1, 0x65, 0, 0, 0, 1]);
    }

    #[test]
    fn responses() {
        // success, sessions, one handle, 3 parameter bytes, then an auth area
        let mut ok = vec![0x80, 0x02, 0, 0, 0, 0, 0, 0, 0, 0];
        ok.extend_from_slice(&[0x80, 0, 0, 1]);
        ok.extend_from_slice(&[0, 0, 0, 3, 7, 8, 9]);
        ok.extend_from_slice(&[0, 0, 1, 0, 0]);
        let n = ok.len() as u32;
        ok[2..6].copy_from_slice(&n.to_be_bytes());
        let r = response("Test", &ok, 1).unwrap();
        assert_eq!(r.handles, vec![0x8000_0001]);
        assert_eq!(r.params, &[7, 8, 9]);
        // size field lies
        let mut bad = ok.clone();
        bad[5] ^= 1;
        assert_eq!(
            response("Test", &bad, 1).unwrap_err().code(),
            "TPM_RESPONSE_MALFORMED"
        );
        // truncated anywhere up to the end of the parameters (the
        // response authorization area is not used)
        for cut in 0..21 {
            let mut t = ok[..cut].to_vec();
            if t.len() >= 6 {
                let n = t.len() as u32;
                t[2..6].copy_from_slice(&n.to_be_bytes());
            }
            assert!(response("Test", &t, 1).is_err(), "cut {cut}");
        }
        // error code
        let err = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x09, 0x9d];
        let e = response("Unseal", &err, 0).unwrap_err();
        assert_eq!(e.code(), "TPM_POLICY_FAILED");
        let err = [0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x01];
        assert_eq!(response("Quote", &err, 0).unwrap_err().code(), "TPM_RC");
    }
}
