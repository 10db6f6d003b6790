//! Quoting a TDREPORT through the host's Quote Generation Service (QGS).
//!
//! On kernels without configfs-tsm the TD takes its TDREPORT from
//! `/dev/tdx_guest` (`TDX_CMD_GET_REPORT0`, see [`crate::tdx`]) and sends it
//! to the QGS on the host, which has the quoting enclave sign it. The
//! transport is a stream (vsock to the host, CID 2, port 4050 by default; a
//! Unix socket in tests); each message is framed by a 4-byte big-endian
//! length, and its body is Intel's `qgs_msg_lib` layout (little-endian):
//!
//! ```text
//! header:  u16 major_version (1) | u16 minor_version | u32 type | u32 size (whole body) | u32 error_code
//! request  (type 0, GET_QUOTE_REQ):  header | u32 report_size | u32 id_list_size | report | id_list
//! response (type 1, GET_QUOTE_RESP): header | u32 selected_id_size | u32 quote_size | selected_id | quote
//! ```
//!
//! The QGS is outside the TD and untrusted: whatever it returns is only
//! accepted when it parses as a TDX quote whose REPORTDATA is the one the
//! loader asked for (the CA then verifies it like any other quote). Every
//! length is checked before use and a response is bounded by
//! [`MAX_MESSAGE`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

/// Message type of a quote request.
pub const GET_QUOTE_REQ: u32 = 0;
/// Message type of a quote response.
pub const GET_QUOTE_RESP: u32 = 1;
/// The only major version spoken.
pub const MAJOR_VERSION: u16 = 1;
/// Size of the message header.
pub const HEADER_LEN: usize = 16;
/// Largest response accepted (a quote with its certification data is a few KiB).
pub const MAX_MESSAGE: usize = 1 << 20;
/// Size of a TDREPORT (`TDREPORT_STRUCT`).
pub const TDREPORT_LEN: usize = 1024;
/// Offset of REPORTDATA in a TDREPORT (inside REPORTMACSTRUCT).
pub const TDREPORT_REPORTDATA_OFFSET: usize = 128;
/// The host's vsock CID.
pub const VSOCK_HOST_CID: u32 = 2;
/// The QGS's customary vsock port (`/etc/tdx-attest.conf`).
pub const DEFAULT_VSOCK_PORT: u32 = 4050;

/// Why a quote could not be had from the QGS.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QgsError {
    #[error("QGS transport: {0}")]
    Io(#[from] std::io::Error),
    #[error("QGS response malformed: {0}")]
    Malformed(&'static str),
    #[error("QGS returned error code {0:#x}")]
    Service(u32),
    #[error("the QGS returned a quote for other report data")]
    WrongReportData,
    #[error("QGS address {0:?}: expected vsock:CID:PORT or unix:PATH")]
    Address(String),
}

impl QgsError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io(_) => "TDX_QGS_IO",
            Self::Malformed(_) => "TDX_QGS_MALFORMED",
            Self::Service(_) => "TDX_QGS_ERROR",
            Self::WrongReportData => "TDX_QGS_WRONG_REPORT_DATA",
            Self::Address(_) => "TDX_QGS_ADDRESS",
        }
    }
}

/// Where the QGS listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QgsAddress {
    /// AF_VSOCK (from a guest: CID 2 is the host).
    Vsock { cid: u32, port: u32 },
    /// A Unix stream socket.
    Unix(PathBuf),
}

impl Default for QgsAddress {
    fn default() -> Self {
        QgsAddress::Vsock {
            cid: VSOCK_HOST_CID,
            port: DEFAULT_VSOCK_PORT,
        }
    }
}

impl std::str::FromStr for QgsAddress {
    type Err = QgsError;
    /// `vsock:CID:PORT` or `unix:/absolute/path`.
    fn from_str(s: &str) -> Result<Self, QgsError> {
        let bad = || QgsError::Address(s.to_owned());
        if let Some(rest) = s.strip_prefix("vsock:") {
            let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
            return Ok(QgsAddress::Vsock {
                cid: cid.parse().map_err(|_| bad())?,
                port: port.parse().map_err(|_| bad())?,
            });
        }
        match s.strip_prefix("unix:") {
            Some(p) if p.starts_with('/') => Ok(QgsAddress::Unix(PathBuf::from(p))),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for QgsAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QgsAddress::Vsock { cid, port } => write!(f, "vsock:{cid}:{port}"),
            QgsAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// The framed GET_QUOTE_REQ for `report` (no attestation key id list: the
/// QGS picks its default, the ECDSA quoting enclave).
pub fn encode_request(report: &[u8]) -> Vec<u8> {
    let body_len = HEADER_LEN + 8 + report.len();
    let mut m = Vec::with_capacity(4 + body_len);
    // A TDREPORT is 1 KiB; nothing here comes near u32::MAX.
    let body_u32 = u32::try_from(body_len).unwrap_or(u32::MAX);
    m.extend_from_slice(&body_u32.to_be_bytes());
    m.extend_from_slice(&MAJOR_VERSION.to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&GET_QUOTE_REQ.to_le_bytes());
    m.extend_from_slice(&body_u32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(
        &u32::try_from(report.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    m.extend_from_slice(&0u32.to_le_bytes());
    m.extend_from_slice(report);
    m
}

fn le32(b: &[u8], at: usize) -> Result<u32, QgsError> {
    b.get(at..at + 4)
        .and_then(|s| <[u8; 4]>::try_from(s).ok())
        .map(u32::from_le_bytes)
        .ok_or(QgsError::Malformed("truncated"))
}

/// The quote in a GET_QUOTE_RESP body (without the length frame).
pub fn decode_response(body: &[u8]) -> Result<Vec<u8>, QgsError> {
    if body.len() < HEADER_LEN + 8 {
        return Err(QgsError::Malformed("shorter than a response header"));
    }
    let major = u16::from_le_bytes([body[0], body[1]]);
    if major != MAJOR_VERSION {
        return Err(QgsError::Malformed("major version"));
    }
    if le32(body, 4)? != GET_QUOTE_RESP {
        return Err(QgsError::Malformed("not a GET_QUOTE_RESP"));
    }
    if le32(body, 8)? as usize != body.len() {
        return Err(QgsError::Malformed("size field disagrees with the frame"));
    }
    let error = le32(body, 12)?;
    if error != 0 {
        return Err(QgsError::Service(error));
    }
    let id_len = le32(body, 16)? as usize;
    let quote_len = le32(body, 20)? as usize;
    let rest = &body[HEADER_LEN + 8..];
    if quote_len == 0 {
        return Err(QgsError::Malformed("empty quote"));
    }
    match id_len.checked_add(quote_len) {
        Some(n) if n == rest.len() => Ok(rest[id_len..].to_vec()),
        _ => Err(QgsError::Malformed(
            "id and quote sizes disagree with the body",
        )),
    }
}

/// Send `report` over `stream` and read the quote back.
pub fn get_quote<S: Read + Write>(stream: &mut S, report: &[u8]) -> Result<Vec<u8>, QgsError> {
    stream.write_all(&encode_request(report))?;
    stream.flush()?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let n = u32::from_be_bytes(len) as usize;
    if !(HEADER_LEN + 8..=MAX_MESSAGE).contains(&n) {
        return Err(QgsError::Malformed("response length out of bounds"));
    }
    let mut body = vec![0u8; n];
    stream.read_exact(&mut body)?;
    decode_response(&body)
}

/// The REPORTDATA of a TDREPORT.
pub fn tdreport_report_data(report: &[u8]) -> Option<&[u8]> {
    report.get(TDREPORT_REPORTDATA_OFFSET..TDREPORT_REPORTDATA_OFFSET + 64)
}

/// Connect to the QGS at `addr` (with `timeout` on every read and write),
/// quote `report`, and accept the result only if it is a TDX quote binding
/// `report_data`.
pub fn quote_report(
    addr: &QgsAddress,
    report: &[u8],
    report_data: &[u8; 64],
    timeout: Duration,
) -> Result<Vec<u8>, QgsError> {
    let quote = match addr {
        QgsAddress::Unix(path) => {
            let mut s = std::os::unix::net::UnixStream::connect(path)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            get_quote(&mut s, report)?
        }
        QgsAddress::Vsock { cid, port } => {
            let mut s = vsock_connect(*cid, *port, timeout)?;
            get_quote(&mut s, report)?
        }
    };
    let q = tl_evidence::tdx::Quote::parse(&quote)
        .map_err(|_| QgsError::Malformed("the QGS returned no TDX quote"))?;
    if q.body.report_data != *report_data {
        return Err(QgsError::WrongReportData);
    }
    Ok(quote)
}

/// An AF_VSOCK stream to `cid:port`, as a `File` (read/write on the socket).
fn vsock_connect(cid: u32, port: u32, timeout: Duration) -> Result<std::fs::File, QgsError> {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, VsockAddr,
    };
    use nix::sys::time::TimeVal;
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)?;
    let tv = TimeVal::new(
        i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        i64::from(timeout.subsec_micros()),
    );
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(std::io::Error::from)?;
    setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(std::io::Error::from)?;
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &VsockAddr::new(cid, port),
    )
    .map_err(std::io::Error::from)?;
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn response(error: u32, id: &[u8], quote: &[u8]) -> Vec<u8> {
        let n = (HEADER_LEN + 8 + id.len() + quote.len()) as u32;
        let mut b = Vec::new();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&GET_QUOTE_RESP.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&error.to_le_bytes());
        b.extend_from_slice(&(id.len() as u32).to_le_bytes());
        b.extend_from_slice(&(quote.len() as u32).to_le_bytes());
        b.extend_from_slice(id);
        b.extend_from_slice(quote);
        b
    }

    #[test]
    fn request_layout_is_qgs_msg_lib() {
        let m = encode_request(&[0xaa; TDREPORT_LEN]);
        // 4-byte big-endian frame, then the 16-byte header, two u32 and the report.
        assert_eq!(&m[..4], &(1048u32).to_be_bytes());
        assert_eq!(
            &m[4..28],
            &[
                1, 0, 0, 0, // major 1, minor 0
                0, 0, 0, 0, // GET_QUOTE_REQ
                0x18, 4, 0, 0, // size 1048
                0, 0, 0, 0, // error code
                0, 4, 0, 0, // report_size 1024
                0, 0, 0, 0, // id_list_size 0
            ]
        );
        assert_eq!(m.len(), 4 + 1048);
        assert!(m[28..].iter().all(|b| *b == 0xaa));
    }

    #[test]
    fn response_decoding_and_hostile_responses() {
        assert_eq!(
            decode_response(&response(0, b"id", b"QUOTE")).unwrap(),
            b"QUOTE"
        );
        assert_eq!(decode_response(&response(0, b"", b"Q")).unwrap(), b"Q");
        assert_eq!(
            decode_response(&response(0x12, b"", b"Q"))
                .unwrap_err()
                .code(),
            "TDX_QGS_ERROR"
        );
        assert_eq!(
            decode_response(&response(0, b"", b"")).unwrap_err().code(),
            "TDX_QGS_MALFORMED"
        );
        let good = response(0, b"id", b"QUOTE");
        // Every truncation is refused; so is any extra byte.
        for cut in 0..good.len() {
            assert!(decode_response(&good[..cut]).is_err(), "cut {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode_response(&long).is_err());
        // Sizes that overflow or disagree.
        let mut b = good.clone();
        b[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_response(&b).is_err());
        let mut b = good.clone();
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_response(&b).is_err());
        // Wrong type, wrong major version.
        let mut b = good.clone();
        b[4] = 0;
        assert!(decode_response(&b).is_err());
        let mut b = good;
        b[0] = 2;
        assert!(decode_response(&b).is_err());
    }

    #[test]
    fn stream_exchange_and_bounds() {
        // A stream that answers with a prepared frame and records the request.
        struct Fake {
            answer: std::io::Cursor<Vec<u8>>,
            sent: Vec<u8>,
        }
        impl Read for Fake {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                self.answer.read(b)
            }
        }
        impl Write for Fake {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.sent.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let body = response(0, b"", b"QUOTE");
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&body);
        let mut f = Fake {
            answer: std::io::Cursor::new(framed),
            sent: vec![],
        };
        assert_eq!(get_quote(&mut f, &[1; 8]).unwrap(), b"QUOTE");
        assert_eq!(f.sent, encode_request(&[1; 8]));
        // A length frame beyond the bound is refused before any allocation.
        let mut f = Fake {
            answer: std::io::Cursor::new(u32::MAX.to_be_bytes().to_vec()),
            sent: vec![],
        };
        assert_eq!(
            get_quote(&mut f, &[1]).unwrap_err().code(),
            "TDX_QGS_MALFORMED"
        );
        // The connection closing early is an I/O error.
        let mut f = Fake {
            answer: std::io::Cursor::new(vec![0, 0, 0, 40, 1]),
            sent: vec![],
        };
        assert_eq!(get_quote(&mut f, &[1]).unwrap_err().code(), "TDX_QGS_IO");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            "vsock:2:4050".parse::<QgsAddress>().unwrap(),
            QgsAddress::default()
        );
        assert_eq!(
            "unix:/run/qgs.sock".parse::<QgsAddress>().unwrap(),
            QgsAddress::Unix("/run/qgs.sock".into())
        );
        for bad in ["vsock:2", "vsock:x:1", "unix:rel", "tcp:1.2.3.4:5", ""] {
            assert!(bad.parse::<QgsAddress>().is_err(), "{bad}");
        }
        assert_eq!(QgsAddress::default().to_string(), "vsock:2:4050");
    }
}
