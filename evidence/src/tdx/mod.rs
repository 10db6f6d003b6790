//! Intel TDX DCAP quotes (version 4, and version 5 with TD 1.0 or TD 1.5
//! report bodies): a total parser and the signature-chain verifier.
//!
//! The parser checks every length against the input before reading, copies
//! at most the input's own bytes, and never panics; trailing bytes after the
//! signature data (configfs-tsm and some SDKs pad the buffer with zeros) are
//! ignored, since nothing signs them. See `docs/formats/evidence.md` for the
//! layout.

pub mod verify;

use crate::error::EvidenceError;

/// Quote header length (v4 and v5).
pub const HEADER_LEN: usize = 48;
/// TD 1.0 report body length.
pub const TD10_BODY_LEN: usize = 584;
/// TD 1.5 report body length (TD 1.0 plus TEE_TCB_SVN2 and MRSERVICETD).
pub const TD15_BODY_LEN: usize = 648;
/// SGX report body length (the QE report).
pub const SGX_REPORT_LEN: usize = 384;
/// Attestation key type ECDSA-256-with-P-256.
pub const ATT_KEY_TYPE_ECDSA_P256: u16 = 2;
/// TEE type of TDX in the quote header.
pub const TEE_TYPE_TDX: u32 = 0x81;
/// Certification data type: QE report certification data.
pub const CERT_DATA_QE_REPORT: u16 = 6;
/// Certification data type: PCK leaf || intermediate || root, PEM.
pub const CERT_DATA_PCK_CHAIN: u16 = 5;

type Result<T> = core::result::Result<T, EvidenceError>;

/// The 48-byte quote header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteHeader {
    pub version: u16,
    pub att_key_type: u16,
    pub tee_type: u32,
    pub qe_svn: u16,
    pub pce_svn: u16,
    pub qe_vendor_id: [u8; 16],
    pub user_data: [u8; 20],
}

/// Intel's QE vendor ID (939A7233-F79C-4CA9-940A-0DB3957F0607), the only
/// one a quote chained to the Intel root may name.
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];

/// Which TD report body the quote carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// TD 1.0 report, 584 bytes (quote v4, or v5 body type 2).
    Td10,
    /// TD 1.5 report, 648 bytes (quote v5 body type 3).
    Td15,
}

/// The TD report body: what the TDX module measured and the TD reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TdReportBody {
    pub kind: BodyKind,
    pub tee_tcb_svn: [u8; 16],
    pub mrseam: [u8; 48],
    pub mrsignerseam: [u8; 48],
    pub seam_attributes: [u8; 8],
    pub td_attributes: [u8; 8],
    pub xfam: [u8; 8],
    pub mrtd: [u8; 48],
    pub mrconfigid: [u8; 48],
    pub mrowner: [u8; 48],
    pub mrownerconfig: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub report_data: [u8; 64],
    /// TD 1.5 only.
    pub tee_tcb_svn2: Option<[u8; 16]>,
    /// TD 1.5 only.
    pub mrservicetd: Option<[u8; 48]>,
}

impl TdReportBody {
    /// TDATTRIBUTES as a little-endian u64.
    pub fn td_attributes_u64(&self) -> u64 {
        u64::from_le_bytes(self.td_attributes)
    }
    /// XFAM as a little-endian u64.
    pub fn xfam_u64(&self) -> u64 {
        u64::from_le_bytes(self.xfam)
    }
    /// The TD is under debug: TDATTRIBUTES bit 0 (DEBUG: the host can read
    /// its memory and state) or a profiling bit of the TUD byte (4 to 6).
    /// Intel: any TUD bit set makes the TD untrusted; whether such a TD is
    /// acceptable is policy (`allow_debug`).
    pub fn debug(&self) -> bool {
        self.td_attributes_u64() & (td_attributes::DEBUG | td_attributes::TUD_PROFILING) != 0
    }

    /// Refuse attributes that make a TD unfit for confidential work whatever
    /// the policy, as Intel's quote verification and dcap-qvl do: reserved
    /// (must-be-zero) bits, MIGRATABLE, SERVTD_EXT, SEPT_VE_DISABLE clear,
    /// and (TD 1.5) a bound service TD. Debug is left to policy
    /// ([`Self::debug`]).
    pub fn check_attributes(&self) -> Result<()> {
        use td_attributes as a;
        let bad = |why| Err(EvidenceError::TdxTdAttributes(why));
        let v = self.td_attributes_u64();
        if self.mrservicetd.is_some_and(|m| m != [0u8; 48]) {
            return bad("MRSERVICETD is not zero: a service TD is bound to this TD");
        }
        if v & a::RESERVED_MBZ != 0 {
            return bad("a reserved (must-be-zero) bit is set");
        }
        if v & a::MIGRATABLE != 0 {
            return bad("MIGRATABLE is set: a migration TD can export this TD");
        }
        if v & a::SERVTD_EXT != 0 {
            return bad("SERVTD_EXT is set: service TDs can be bound to this TD");
        }
        if v & a::SEPT_VE_DISABLE == 0 {
            return bad("SEPT_VE_DISABLE is clear: the host can inject #VE through pending pages");
        }
        Ok(())
    }
}

/// TDATTRIBUTES bits (Intel TDX Module ABI specification 348551-008US,
/// table 3.23), as a little-endian u64.
pub mod td_attributes {
    /// TUD bit 0: the TD runs in debug mode.
    pub const DEBUG: u64 = 1 << 0;
    /// TUD bits 4 to 6: profiling features of a TD under debug.
    pub const TUD_PROFILING: u64 = 0x70;
    /// SEC bit 17: a hash of the service TD binding is in the report.
    pub const SERVTD_EXT: u64 = 1 << 17;
    /// SEC bit 28: EPT violations on pending pages do not become #VE.
    pub const SEPT_VE_DISABLE: u64 = 1 << 28;
    /// SEC bit 29: the TD can be migrated by a migration TD.
    pub const MIGRATABLE: u64 = 1 << 29;
    /// Bits 1-3, 7-15, 23-26 and 32-61: reserved, must be zero.
    pub const RESERVED_MBZ: u64 = 0x3FFF_FFFF_0780_FF8E;
}

/// The quoting enclave's SGX report body (384 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QeReport {
    pub cpu_svn: [u8; 16],
    pub misc_select: u32,
    pub attributes: [u8; 16],
    pub mrenclave: [u8; 32],
    pub mrsigner: [u8; 32],
    pub isv_prod_id: u16,
    pub isv_svn: u16,
    pub report_data: [u8; 64],
}

/// A parsed TDX quote. Nothing in it is trusted until
/// [`verify::verify_quote_signatures`] has checked it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub header: QuoteHeader,
    pub body: TdReportBody,
    /// ECDSA P-256 signature (r || s) over [`Quote::signed_bytes`].
    pub signature: [u8; 64],
    /// The attestation key (x || y, P-256).
    pub attestation_key: [u8; 64],
    pub qe_report: QeReport,
    /// The raw QE report, as signed by the PCK key.
    pub qe_report_raw: [u8; SGX_REPORT_LEN],
    /// ECDSA P-256 signature (r || s) over the raw QE report by the PCK key.
    pub qe_report_signature: [u8; 64],
    pub qe_auth_data: Vec<u8>,
    /// The PCK certificate chain as carried (PEM, leaf first).
    pub pck_chain_pem: Vec<u8>,
    signed: Vec<u8>,
}

impl Quote {
    /// The bytes the attestation key signs: header and body (for v5, with
    /// the body type and size fields between them).
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed
    }

    /// Parse a quote. Total: any input gives `Ok` or an error.
    pub fn parse(input: &[u8]) -> Result<Quote> {
        let mut r = Reader::new(input);
        let header = QuoteHeader {
            version: r.u16()?,
            att_key_type: r.u16()?,
            tee_type: r.u32()?,
            qe_svn: r.u16()?,
            pce_svn: r.u16()?,
            qe_vendor_id: r.array()?,
            user_data: r.array()?,
        };
        if header.tee_type != TEE_TYPE_TDX {
            return Err(EvidenceError::Unsupported("quote TEE type is not TDX"));
        }
        if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256 {
            return Err(EvidenceError::Unsupported(
                "quote attestation key type is not ECDSA P-256",
            ));
        }
        let kind = match header.version {
            4 => BodyKind::Td10,
            5 => {
                let body_type = r.u16()?;
                let body_size = r.u32()?;
                let (kind, len) = match body_type {
                    2 => (BodyKind::Td10, TD10_BODY_LEN),
                    3 => (BodyKind::Td15, TD15_BODY_LEN),
                    _ => return Err(EvidenceError::Unsupported("quote v5 body type")),
                };
                if usize::try_from(body_size).ok() != Some(len) {
                    return Err(EvidenceError::Malformed("quote v5 body size"));
                }
                kind
            }
            _ => return Err(EvidenceError::Unsupported("quote version")),
        };
        let body = TdReportBody {
            kind,
            tee_tcb_svn: r.array()?,
            mrseam: r.array()?,
            mrsignerseam: r.array()?,
            seam_attributes: r.array()?,
            td_attributes: r.array()?,
            xfam: r.array()?,
            mrtd: r.array()?,
            mrconfigid: r.array()?,
            mrowner: r.array()?,
            mrownerconfig: r.array()?,
            rtmr: [r.array()?, r.array()?, r.array()?, r.array()?],
            report_data: r.array()?,
            tee_tcb_svn2: match kind {
                BodyKind::Td15 => Some(r.array()?),
                BodyKind::Td10 => None,
            },
            mrservicetd: match kind {
                BodyKind::Td15 => Some(r.array()?),
                BodyKind::Td10 => None,
            },
        };
        let signed = input
            .get(..r.pos)
            .ok_or(EvidenceError::Malformed("quote signed region"))?
            .to_vec();

        let sig_len = r.len32()?;
        let mut s = Reader::new(r.take(sig_len)?);
        let signature = s.array()?;
        let attestation_key = s.array()?;
        let cert_type = s.u16()?;
        let cert_len = s.len32()?;
        if cert_type != CERT_DATA_QE_REPORT {
            return Err(EvidenceError::Unsupported(
                "certification data is not QE report certification data",
            ));
        }
        let mut c = Reader::new(s.take(cert_len)?);
        let qe_report_raw: [u8; SGX_REPORT_LEN] = c.array()?;
        let qe_report_signature = c.array()?;
        let auth_len = usize::from(c.u16()?);
        let qe_auth_data = c.take(auth_len)?.to_vec();
        let nested_type = c.u16()?;
        let nested_len = c.len32()?;
        if nested_type != CERT_DATA_PCK_CHAIN {
            return Err(EvidenceError::Unsupported(
                "QE certification data is not a PCK certificate chain",
            ));
        }
        let pck_chain_pem = c.take(nested_len)?.to_vec();
        // Nested sizes must account for every byte of the data that holds them.
        c.finish()?;
        s.finish()?;

        Ok(Quote {
            header,
            body,
            signature,
            attestation_key,
            qe_report: QeReport::parse(&qe_report_raw)?,
            qe_report_raw,
            qe_report_signature,
            qe_auth_data,
            pck_chain_pem,
            signed,
        })
    }
}

impl QeReport {
    /// Parse the 384-byte SGX report body.
    pub fn parse(raw: &[u8; SGX_REPORT_LEN]) -> Result<QeReport> {
        let mut r = Reader::new(raw);
        let cpu_svn = r.array()?;
        let misc_select = r.u32()?;
        r.take(28)?;
        let attributes = r.array()?;
        let mrenclave = r.array()?;
        r.take(32)?;
        let mrsigner = r.array()?;
        r.take(96)?;
        let isv_prod_id = r.u16()?;
        let isv_svn = r.u16()?;
        r.take(60)?;
        let report_data = r.array()?;
        Ok(QeReport {
            cpu_svn,
            misc_select,
            attributes,
            mrenclave,
            mrsigner,
            isv_prod_id,
            isv_svn,
            report_data,
        })
    }
}

/// A bounds-checked little-endian reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or(EvidenceError::Malformed("length overflow"))?;
        let out = self
            .buf
            .get(self.pos..end)
            .ok_or(EvidenceError::Malformed("truncated quote"))?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// Fails unless every byte has been read.
    fn finish(&self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(EvidenceError::Malformed(
                "bytes left over in signature data",
            ))
        }
    }

    /// A u32 length, as usize (checked against the input by `take`).
    fn len32(&mut self) -> Result<usize> {
        usize::try_from(self.u32()?).map_err(|_| EvidenceError::Malformed("length overflow"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(td_attributes: u64, mrservicetd: Option<[u8; 48]>) -> TdReportBody {
        TdReportBody {
            kind: if mrservicetd.is_some() {
                BodyKind::Td15
            } else {
                BodyKind::Td10
            },
            tee_tcb_svn: [0; 16],
            mrseam: [0; 48],
            mrsignerseam: [0; 48],
            seam_attributes: [0; 8],
            td_attributes: td_attributes.to_le_bytes(),
            xfam: [0; 8],
            mrtd: [0; 48],
            mrconfigid: [0; 48],
            mrowner: [0; 48],
            mrownerconfig: [0; 48],
            rtmr: [[0; 48]; 4],
            report_data: [0; 64],
            tee_tcb_svn2: mrservicetd.map(|_| [0; 16]),
            mrservicetd,
        }
    }

    #[test]
    fn reserved_mask_is_the_abi_must_be_zero_bits() {
        // Defined bits (ABI 348551-008US): DEBUG, TUD 4-6, 16-22, 27-31, 62, 63.
        let defined = [
            0u32, 4, 5, 6, 16, 17, 18, 19, 20, 21, 22, 27, 28, 29, 30, 31, 62, 63,
        ];
        for bit in 0..64 {
            assert_eq!(
                td_attributes::RESERVED_MBZ & (1 << bit) == 0,
                defined.contains(&bit),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_bound_service_td_is_refused() {
        let ok = td_attributes::SEPT_VE_DISABLE;
        assert_eq!(body(ok, Some([0; 48])).check_attributes(), Ok(()));
        let mut m = [0u8; 48];
        m[47] = 1;
        assert_eq!(
            body(ok, Some(m)).check_attributes().map_err(|e| e.code()),
            Err("TDX_TD_ATTRIBUTES")
        );
        assert_eq!(body(ok, None).check_attributes(), Ok(()));
    }
}
