//! The loader's client of the CA: HTTPS over rustls, trusting only the CA root
//! named in the (measured) configuration. Bounded retries with backoff and an
//! overall deadline: a CA that is down, slow or lying ends in a halt, never a
//! hang.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tl_ca::orders::SignedOrderAccept;
use tl_ca::report::SignedRunReport;
use tl_ca::server::{EnrollRequest, EnrollResponse, LogInclusion};

use crate::halt::{Halt, HaltCode};

/// Longest answer the loader reads from the CA.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// A client of one CA.
#[derive(Debug)]
pub struct CaClient {
    base: String,
    http: reqwest::blocking::Client,
    deadline: Duration,
    attempts: u32,
}

/// The CA's answer to `POST /v1/nonce`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NonceResponse {
    pub nonce: String,
    pub expires_at: u64,
}

enum Failure {
    /// Worth another try: connection refused, timeout, 5xx.
    Transient(String),
    /// The CA answered and refused: no retry.
    Rejected {
        status: u16,
        code: String,
        detail: String,
    },
    /// The CA answered something that is not the protocol.
    Invalid(String),
}

impl CaClient {
    /// `base` is `https://host:port`; `ca_root_der` is the only trust anchor.
    /// `deadline` bounds each call including its retries; `request_timeout`
    /// bounds one HTTP exchange.
    pub fn new(
        base: &str,
        ca_root_der: &[u8],
        deadline: Duration,
        request_timeout: Duration,
    ) -> Result<Self, Halt> {
        Self::with_tls_name(base, None, ca_root_der, deadline, request_timeout)
    }

    /// Like [`CaClient::new`], but when `tls_name` is given, connect to the
    /// address in `base` (an `ip:port`, e.g. a forwarded port) and check the
    /// CA's certificate for `tls_name` instead of that address.
    pub fn with_tls_name(
        base: &str,
        tls_name: Option<&str>,
        ca_root_der: &[u8],
        deadline: Duration,
        request_timeout: Duration,
    ) -> Result<Self, Halt> {
        let tls = tl_ca::server::client_config(ca_root_der)
            .map_err(|e| Halt::new(HaltCode::ConfigInvalid, format!("CA root: {e}")))?;
        let mut builder = reqwest::blocking::Client::builder();
        let mut base = base.to_owned();
        if let Some(name) = tls_name {
            let bad = |d: String| Halt::new(HaltCode::ConfigInvalid, d);
            let mut url = reqwest::Url::parse(&base).map_err(|e| bad(format!("ca_url: {e}")))?;
            let ip = url
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok())
                .ok_or_else(|| bad("ca_tls_name needs ca_url to name an IP address".into()))?;
            let addr = std::net::SocketAddr::new(ip, url.port_or_known_default().unwrap_or(443));
            url.set_host(Some(name))
                .map_err(|e| bad(format!("ca_tls_name: {e}")))?;
            builder = builder.resolve(name, addr);
            base = url.as_str().to_owned();
        }
        let http = builder
            .use_preconfigured_tls(tls)
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            .pool_max_idle_per_host(1)
            .build()
            .map_err(|e| Halt::new(HaltCode::ConfigInvalid, format!("HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
            deadline,
            attempts: 5,
        })
    }

    /// `POST /v1/nonce`.
    pub fn nonce(&self) -> Result<NonceResponse, Halt> {
        self.call(
            "/v1/nonce",
            &serde_json::json!({}),
            HaltCode::EnrollRejected,
        )
    }

    /// `POST /v1/enroll`.
    pub fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, Halt> {
        self.call("/v1/enroll", req, HaltCode::EnrollRejected)
    }

    /// `POST /v1/orders/accept`: a refusal is `ORDER_ROLLBACK` when the CA says
    /// so, otherwise `ENROLL_REJECTED`.
    pub fn accept_order(&self, signed: &SignedOrderAccept) -> Result<serde_json::Value, Halt> {
        self.call("/v1/orders/accept", signed, HaltCode::EnrollRejected)
    }

    /// `POST /v1/reports`.
    pub fn submit_report(&self, signed: &SignedRunReport) -> Result<LogInclusion, Halt> {
        self.call("/v1/reports", signed, HaltCode::ReportFailed)
    }

    fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        rejected: HaltCode,
    ) -> Result<T, Halt> {
        let start = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut last = String::from("no attempt made");
        for attempt in 1..=self.attempts {
            match self.once(path, body) {
                Ok(v) => return Ok(v),
                Err(Failure::Rejected {
                    status,
                    code,
                    detail,
                }) => {
                    let halt_code = if code == "ORDER_ROLLBACK" {
                        HaltCode::OrderRollback
                    } else {
                        rejected
                    };
                    return Err(Halt::new(
                        halt_code,
                        format!("CA refused {path} ({status} {code}): {detail}"),
                    ));
                }
                Err(Failure::Invalid(d)) => {
                    return Err(Halt::new(
                        HaltCode::CaResponseInvalid,
                        format!("{path}: {d}"),
                    ))
                }
                Err(Failure::Transient(d)) => {
                    last = format!("attempt {attempt}: {d}");
                }
            }
            if start.elapsed() + backoff >= self.deadline {
                return Err(Halt::new(
                    HaltCode::EnrollTimeout,
                    format!("{path}: no answer within {:?} ({last})", self.deadline),
                ));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        Err(Halt::new(
            HaltCode::EnrollUnreachable,
            format!(
                "{path}: CA unreachable after {} attempts ({last})",
                self.attempts
            ),
        ))
    }

    fn once<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, Failure> {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .json(body)
            .send()
            .map_err(|e| Failure::Transient(error_chain(&e)))?;
        let status = resp.status();
        if resp.content_length().unwrap_or(0) > MAX_RESPONSE as u64 {
            return Err(Failure::Invalid("answer too large".into()));
        }
        let bytes = read_capped(resp)?;
        if status.is_server_error() {
            return Err(Failure::Transient(format!("CA answered {status}")));
        }
        if !status.is_success() {
            let (code, detail) = parse_api_error(&bytes)
                .unwrap_or_else(|| ("UNKNOWN".into(), format!("HTTP {status}")));
            return Err(Failure::Rejected {
                status: status.as_u16(),
                code,
                detail,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Failure::Invalid(format!("bad JSON: {e}")))
    }
}

/// Reads at most [`MAX_RESPONSE`] bytes of a body.
fn read_capped(resp: reqwest::blocking::Response) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let mut out = Vec::new();
    resp.take(MAX_RESPONSE as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Failure::Transient(format!("reading answer: {e}")))?;
    if out.len() > MAX_RESPONSE {
        return Err(Failure::Invalid("answer too large".into()));
    }
    Ok(out)
}

fn parse_api_error(bytes: &[u8]) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let e = v.get("error")?;
    Some((
        e.get("code")?.as_str()?.to_owned(),
        e.get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or("")
            .to_owned(),
    ))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    fn root_der() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    /// With `ca_tls_name`, the client connects to the URL's address and asks
    /// for the TLS name (SNI) it will check, with no name resolution.
    #[test]
    fn tls_name_connects_to_the_address_and_sends_the_name() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("https://{}", l.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = vec![0u8; 2048];
            let n = c.read(&mut buf).unwrap();
            buf.truncate(n);
            buf
        });
        let client = CaClient::with_tls_name(
            &url,
            Some("ca.example"),
            &root_der(),
            Duration::from_secs(2),
            Duration::from_secs(1),
        )
        .unwrap();
        let _ = client.nonce();
        let hello = t.join().unwrap();
        assert!(
            hello.windows(10).any(|w| w == b"ca.example"),
            "no SNI in the ClientHello"
        );
    }

    #[test]
    fn tls_name_needs_an_address() {
        let e = CaClient::with_tls_name(
            "https://ca.example:8443",
            Some("localhost"),
            &root_der(),
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(e.code(), "CONFIG_INVALID");
    }
}
