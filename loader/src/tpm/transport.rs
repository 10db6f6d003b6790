//! How commands reach the TPM: the kernel's resource-managed character device
//! (`/dev/tpmrm0`, in the guest) or a socket speaking raw TPM 2.0 command
//! and response bytes (swtpm's `--server type=unixio` or `type=tcp`: tests,
//! the demo, and hosts that hand a software TPM to the loader).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::wire::MAX_RESPONSE;
use super::TpmError;

/// Sends one command and returns its whole response.
pub trait Transport: std::fmt::Debug + Send {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError>;
}

/// Which transport to open (part of the loader configuration).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "transport", rename_all = "lowercase", deny_unknown_fields)]
pub enum TpmTransportConfig {
    /// A TPM character device, normally `/dev/tpmrm0`.
    Device { path: PathBuf },
    /// A TCP address (`host:port`) speaking raw TPM 2.0 commands (swtpm).
    Tcp { address: String },
    /// A Unix stream socket speaking raw TPM 2.0 commands (swtpm's
    /// `--server type=unixio,path=...`).
    Unix { path: PathBuf },
}

impl Default for TpmTransportConfig {
    fn default() -> Self {
        TpmTransportConfig::Device {
            path: PathBuf::from(DEFAULT_DEVICE),
        }
    }
}

/// The kernel's resource-managed TPM device.
pub const DEFAULT_DEVICE: &str = "/dev/tpmrm0";

/// Bound on one command's round trip over a socket.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

impl std::fmt::Display for TpmTransportConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TpmTransportConfig::Device { path } => write!(f, "{}", path.display()),
            TpmTransportConfig::Tcp { address } => write!(f, "tcp {address}"),
            TpmTransportConfig::Unix { path } => write!(f, "unix {}", path.display()),
        }
    }
}

impl TpmTransportConfig {
    pub fn open(&self) -> Result<Box<dyn Transport>, TpmError> {
        match self {
            TpmTransportConfig::Device { path } => Ok(Box::new(DeviceTransport::open(path)?)),
            TpmTransportConfig::Tcp { address } => Ok(Box::new(TcpTransport::connect(address)?)),
            TpmTransportConfig::Unix { path } => Ok(Box::new(UnixTransport::connect(path)?)),
        }
    }
}

fn io(what: &str, e: std::io::Error) -> TpmError {
    TpmError::Transport(format!("{what}: {e}"))
}

/// Length of a response from its 10-byte header, bounded.
fn response_len(header: &[u8]) -> Result<usize, TpmError> {
    let size = match header {
        [_, _, a, b, c, d, ..] => u32::from_be_bytes([*a, *b, *c, *d]) as usize,
        _ => return Err(TpmError::Malformed("response shorter than its header")),
    };
    if !(10..=MAX_RESPONSE).contains(&size) {
        return Err(TpmError::Malformed("response size out of bounds"));
    }
    Ok(size)
}

/// A TPM character device: one `write` per command, one `read` per response.
#[derive(Debug)]
pub struct DeviceTransport {
    file: std::fs::File,
    path: PathBuf,
}

impl DeviceTransport {
    pub fn open(path: &std::path::Path) -> Result<Self, TpmError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io(&format!("open {}", path.display()), e))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }
}

impl Transport for DeviceTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        let what = self.path.display().to_string();
        self.file.write_all(command).map_err(|e| io(&what, e))?;
        let mut buf = vec![0u8; MAX_RESPONSE];
        let n = self.file.read(&mut buf).map_err(|e| io(&what, e))?;
        buf.truncate(n);
        if response_len(&buf)? != n {
            return Err(TpmError::Malformed("device returned a partial response"));
        }
        Ok(buf)
    }
}

/// A TCP connection to a TPM that speaks raw commands (swtpm's server socket).
#[derive(Debug)]
pub struct TcpTransport {
    stream: TcpStream,
}

impl TcpTransport {
    pub fn connect(address: &str) -> Result<Self, TpmError> {
        let stream = TcpStream::connect(address).map_err(|e| io(address, e))?;
        stream
            .set_read_timeout(Some(SOCKET_TIMEOUT))
            .and_then(|_| stream.set_write_timeout(Some(SOCKET_TIMEOUT)))
            .map_err(|e| io(address, e))?;
        Ok(Self { stream })
    }
}

impl Transport for TcpTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        stream_transact(&mut self.stream, command)
    }
}

/// A Unix-socket connection to a TPM that speaks raw commands.
#[derive(Debug)]
pub struct UnixTransport {
    stream: UnixStream,
}

impl UnixTransport {
    pub fn connect(path: &std::path::Path) -> Result<Self, TpmError> {
        let what = path.display().to_string();
        let stream = UnixStream::connect(path).map_err(|e| io(&what, e))?;
        stream
            .set_read_timeout(Some(SOCKET_TIMEOUT))
            .and_then(|_| stream.set_write_timeout(Some(SOCKET_TIMEOUT)))
            .map_err(|e| io(&what, e))?;
        Ok(Self { stream })
    }
}

impl Transport for UnixTransport {
    fn transact(&mut self, command: &[u8]) -> Result<Vec<u8>, TpmError> {
        stream_transact(&mut self.stream, command)
    }
}

/// One command over a byte stream: write it, read the 10-byte header, then
/// exactly the rest of the response its size field announces (bounded).
fn stream_transact<S: Read + Write>(stream: &mut S, command: &[u8]) -> Result<Vec<u8>, TpmError> {
    stream.write_all(command).map_err(|e| io("TPM socket", e))?;
    let mut buf = vec![0u8; 10];
    stream
        .read_exact(&mut buf)
        .map_err(|e| io("TPM socket", e))?;
    let size = response_len(&buf)?;
    buf.resize(size, 0);
    stream
        .read_exact(&mut buf[10..])
        .map_err(|e| io("TPM socket", e))?;
    Ok(buf)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_forms() {
        #[derive(Deserialize)]
        struct C {
            tpm: TpmTransportConfig,
        }
        let c: C =
            toml::from_str("[tpm]\ntransport = \"tcp\"\naddress = \"127.0.0.1:2321\"").unwrap();
        assert_eq!(
            c.tpm,
            TpmTransportConfig::Tcp {
                address: "127.0.0.1:2321".into()
            }
        );
        let c: C =
            toml::from_str("[tpm]\ntransport = \"unix\"\npath = \"/run/swtpm.sock\"").unwrap();
        assert_eq!(
            c.tpm,
            TpmTransportConfig::Unix {
                path: "/run/swtpm.sock".into()
            }
        );
        let c: C = toml::from_str("[tpm]\ntransport = \"device\"\npath = \"/dev/tpmrm0\"").unwrap();
        assert_eq!(c.tpm, TpmTransportConfig::default());
        assert!(toml::from_str::<C>("[tpm]\ntransport = \"serial\"").is_err());
        assert!(
            toml::from_str::<C>("[tpm]\ntransport = \"tcp\"\naddress = \"x\"\nextra = 1").is_err()
        );
    }

    #[test]
    fn response_bounds() {
        assert!(response_len(&[0x80, 1, 0, 0, 0, 10]).is_ok());
        assert!(response_len(&[0x80, 1, 0, 0, 0, 9]).is_err());
        assert!(response_len(&[0x80, 1, 0, 0, 0x20, 1]).is_err());
        assert!(response_len(&[0x80, 1]).is_err());
    }
}
