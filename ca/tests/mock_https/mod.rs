//! An HTTPS server on 127.0.0.1 for the fetch commands' tests: a fresh
//! test CA, fixed responses (body and headers) by path and query, 404
//! otherwise.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::Arc;

/// One fixed response.
#[derive(Clone, Debug, Default)]
pub struct Route {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Route {
    pub fn body(body: Vec<u8>) -> Route {
        Route {
            body,
            headers: Vec::new(),
        }
    }
}

/// The running server: its base URL and TLS root.
pub struct MockHttps {
    pub url: String,
    pub root_der: Vec<u8>,
    pub root_pem: String,
    _rt: tokio::runtime::Runtime,
}

pub fn serve(routes: HashMap<String, Route>) -> MockHttps {
    let ca_kp = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_kp).unwrap();
    let kp = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let leaf = params.signed_by(&kp, &ca, &ca_kp).unwrap();

    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(kp.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let routes = Arc::new(routes);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let routes = routes.clone();
        async move {
            use axum::response::IntoResponse;
            let key = uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            match routes.get(&key) {
                Some(r) => {
                    let mut resp = (axum::http::StatusCode::OK, r.body.clone()).into_response();
                    for (k, v) in &r.headers {
                        resp.headers_mut().insert(
                            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                            axum::http::HeaderValue::from_str(v).unwrap(),
                        );
                    }
                    resp
                }
                None => (axum::http::StatusCode::NOT_FOUND, Vec::new()).into_response(),
            }
        }
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let app = app.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    MockHttps {
        url: format!("https://{addr}"),
        root_der: ca.der().to_vec(),
        root_pem: ca.pem(),
        _rt: rt,
    }
}
