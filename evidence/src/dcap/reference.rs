//! dcap-qvl's whole verifier as a second opinion, on this crate's crypto.
//!
//! [`verify_with_dcap_qvl`] runs `dcap_qvl::verify::QuoteVerifier` end to
//! end (its own quote parser, chain, CRL and signature checks, TCB levels)
//! through dcap-qvl's pluggable `Config`: certificates are read with
//! x509-cert and signatures checked and digests computed with aws-lc-rs, so
//! no ring or RustCrypto enters the build. It is what `tl evidence verify
//! --reference` prints beside this crate's verdict, for reviewers who want
//! two independent verifiers to agree on a quote from the field.
//!
//! It is never the main path: it parses and checks the collateral on every
//! call (1,690 verifications/s here against 2,320/s for this crate's
//! verifier with cached collateral; docs/benchmarks.md), its failures are
//! text (no reason codes), and Intel's QVL is stricter than it in a few
//! places this crate follows (see ARCHITECTURE.md). `scripts/crosscheck-dcap`
//! checks that this configuration gives dcap-qvl's default (ring) verdict
//! on every real quote and every bit flip of it.

use aws_lc_rs::digest::{digest, SHA256, SHA384};
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use dcap_qvl::config::{Config, CryptoProvider, EcdsaSigEncoder, ParsedCert, PckCa, X509Codec};
use dcap_qvl::QuoteCollateralV3;
use der::{Decode, Encode};
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};

use super::collateral::TdxCollateral;
use crate::claims::TcbStatus;

/// dcap-qvl's verdict: its TCB status and advisory IDs, or its error text
/// (with the causes it chains).
pub type ReferenceResult = core::result::Result<ReferenceVerdict, String>;

/// What dcap-qvl's verifier concluded about a quote it accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReferenceVerdict {
    /// dcap-qvl's TCB status name (`UpToDate`, `TDRelaunchAdvised`, ...).
    pub status: String,
    pub advisory_ids: Vec<String>,
}

/// The reason code of a refusal because this crate's verdict and dcap-qvl's
/// differ (`tl evidence verify --reference`, `tl-ca serve --reference-check`).
pub const REFERENCE_DISAGREES: &str = "REFERENCE_DISAGREES";

/// The dcap-qvl version this crate builds against.
pub const DCAP_QVL_VERSION: &str = "0.7.1";

/// Verify `quote` with dcap-qvl against `collateral`, trusting only
/// `root_der`, at `now_unix`. With `allow_debug` a TD or enclave in debug
/// mode verifies (this crate's verifier treats debug as an acceptance
/// question, so a comparison with it wants `true`); without, it fails, as
/// dcap-qvl's default. A TD bound to a service TD always fails (dcap-qvl's
/// default, and this crate's).
pub fn verify_with_dcap_qvl(
    quote: &[u8],
    collateral: &TdxCollateral,
    root_der: &[u8],
    now_unix: u64,
    allow_debug: bool,
) -> ReferenceResult {
    let collateral = quote_collateral_v3(collateral)?;
    let verifier =
        dcap_qvl::verify::QuoteVerifier::<AwsLcConfig>::new_with_config(root_der.to_vec())
            .allow_debug(allow_debug);
    // The quote is hostile input to a verifier this crate does not own: a
    // panic in it is a rejection, not the end of the caller.
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        verifier.verify(quote, &collateral, now_unix)
    }));
    match run {
        Ok(Ok(r)) => Ok(ReferenceVerdict {
            status: r.status,
            advisory_ids: r.advisory_ids,
        }),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err("dcap-qvl panicked on this input".into()),
    }
}

/// How this crate's verdict and dcap-qvl's compare.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Agreement {
    /// Both verified the quote, with the same TCB status and advisories.
    AcceptedAlike,
    /// Both refused it (their reasons are their own).
    RejectedByBoth,
    /// They differ; says how.
    Disagree(String),
}

/// Compare this crate's verification result (`None`: it failed) with
/// dcap-qvl's. Advisories compare as sets. A status one side gives and the
/// other does not is a disagreement even where it is known and explained
/// (Intel's relaunch rule, narrower than dcap-qvl's: ARCHITECTURE.md).
pub fn compare(ours: Option<(TcbStatus, &[String])>, reference: &ReferenceResult) -> Agreement {
    match (ours, reference) {
        (None, Err(_)) => Agreement::RejectedByBoth,
        (Some(_), Err(e)) => Agreement::Disagree(format!("dcap-qvl rejects it: {e}")),
        (None, Ok(r)) => Agreement::Disagree(format!("dcap-qvl accepts it as {}", r.status)),
        (Some((status, advisories)), Ok(r)) => {
            let ours_name = format!("{status:?}");
            let mut a: Vec<&String> = advisories.iter().collect();
            let mut b: Vec<&String> = r.advisory_ids.iter().collect();
            a.sort();
            a.dedup();
            b.sort();
            b.dedup();
            if ours_name != r.status {
                Agreement::Disagree(format!(
                    "TCB status {ours_name} here, {} by dcap-qvl",
                    r.status
                ))
            } else if a != b {
                Agreement::Disagree(format!(
                    "advisories [{}] here, [{}] by dcap-qvl",
                    advisories.join(", "),
                    r.advisory_ids.join(", ")
                ))
            } else {
                Agreement::AcceptedAlike
            }
        }
    }
}

/// The collateral in dcap-qvl's input shape: the signed JSON texts as
/// received, the signatures, the issuer chains as PEM and the CRLs as DER.
fn quote_collateral_v3(c: &TdxCollateral) -> core::result::Result<QuoteCollateralV3, String> {
    let text = |raw: &[u8]| {
        String::from_utf8(raw.to_vec()).map_err(|_| "collateral JSON is not UTF-8".to_string())
    };
    let pem = |chain: &[crate::x509::P256Cert]| {
        chain
            .iter()
            .map(|c| crate::x509::der_to_pem("CERTIFICATE", &c.der))
            .collect::<String>()
    };
    Ok(QuoteCollateralV3 {
        pck_crl_issuer_chain: pem(&c.pck_crl_chain),
        root_ca_crl: c.root_ca_crl.der.clone(),
        pck_crl: c.pck_crl.der.clone(),
        tcb_info_issuer_chain: pem(&c.tcb_info_chain),
        tcb_info: text(&c.tcb_info.raw)?,
        tcb_info_signature: c.tcb_info.signature.to_vec(),
        qe_identity_issuer_chain: pem(&c.qe_identity_chain),
        qe_identity: text(&c.qe_identity.raw)?,
        qe_identity_signature: c.qe_identity.signature.to_vec(),
        pck_certificate_chain: None,
    })
}

/// dcap-qvl's `Config` on x509-cert and aws-lc-rs, mirroring its own
/// audited `X509CertBackend`, `DerSigEncoder` and `RingCrypto`.
#[derive(Debug)]
pub struct AwsLcConfig;

impl Config for AwsLcConfig {
    type X509 = X509CertBackend;
    type SigEncoder = DerSigEncoder;
    type Crypto = AwsLcCrypto;
}

/// Certificates through x509-cert (dcap-qvl's `X509CertBackend`, on the
/// x509-cert version this workspace uses).
#[derive(Debug)]
pub struct X509CertBackend;

/// A certificate decoded by [`X509CertBackend`].
#[derive(Debug)]
pub struct X509CertParsed {
    cert: x509_cert::Certificate,
}

impl X509Codec for X509CertBackend {
    type Parsed<'a> = X509CertParsed;

    fn from_der(cert_der: &[u8]) -> anyhow::Result<X509CertParsed> {
        let cert = x509_cert::Certificate::from_der(cert_der)
            .map_err(|e| anyhow::anyhow!("Failed to decode certificate: {e}"))?;
        Ok(X509CertParsed { cert })
    }
}

impl ParsedCert for X509CertParsed {
    fn pck_ca(&self) -> Option<PckCa> {
        let issuer = self.cert.tbs_certificate.issuer.to_string();
        if issuer.contains("Intel SGX PCK Processor CA") {
            Some(PckCa::Processor)
        } else if issuer.contains("Intel SGX PCK Platform CA") {
            Some(PckCa::Platform)
        } else {
            None
        }
    }

    fn extension(&self, oid: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        let mut found = self
            .cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .filter(|e| e.extn_id.as_bytes() == oid);
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if found.next().is_some() {
            anyhow::bail!("extension {} appears more than once", first.extn_id);
        }
        Ok(Some(first.extn_value.as_bytes().to_vec()))
    }
}

/// Raw `r || s` to a DER `Ecdsa-Sig-Value`, as dcap-qvl's `DerSigEncoder`.
#[derive(Debug)]
pub struct DerSigEncoder;

impl EcdsaSigEncoder for DerSigEncoder {
    fn encode_ecdsa_sig(r: &[u8], s: &[u8]) -> anyhow::Result<Vec<u8>> {
        let int = |v| der::asn1::UintRef::new(v).map_err(|e| anyhow::anyhow!("ECDSA integer: {e}"));
        vec![int(r)?, int(s)?]
            .to_der()
            .map_err(|e| anyhow::anyhow!("ECDSA signature: {e}"))
    }
}

/// ECDSA P-256 with SHA-256 and the digests, on aws-lc-rs.
#[derive(Debug)]
pub struct AwsLcCrypto;

impl CryptoProvider for AwsLcCrypto {
    fn sig_algo() -> &'static dyn SignatureVerificationAlgorithm {
        &ECDSA_P256_SHA256
    }

    fn sha256(data: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, data).as_ref());
        out
    }

    fn sha384(data: &[u8]) -> [u8; 48] {
        let mut out = [0u8; 48];
        out.copy_from_slice(digest(&SHA384, data).as_ref());
        out
    }
}

/// ECDSA P-256 / SHA-256 (DER signatures) for webpki, on aws-lc-rs, as
/// rustls-webpki's own `aws_lc_rs::ECDSA_P256_SHA256`.
#[derive(Debug)]
struct EcdsaP256Sha256;

static ECDSA_P256_SHA256: EcdsaP256Sha256 = EcdsaP256Sha256;

impl SignatureVerificationAlgorithm for EcdsaP256Sha256 {
    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }

    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> core::result::Result<(), InvalidSignature> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
            .verify(message, signature)
            .map_err(|_| InvalidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(status: &str, adv: &[&str]) -> ReferenceResult {
        Ok(ReferenceVerdict {
            status: status.into(),
            advisory_ids: adv.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn agreement() {
        let adv = ["INTEL-SA-1".to_string(), "INTEL-SA-2".to_string()];
        let cfg = TcbStatus::ConfigurationNeeded;
        assert_eq!(
            compare(
                Some((cfg, &adv)),
                &v("ConfigurationNeeded", &["INTEL-SA-2", "INTEL-SA-1"])
            ),
            Agreement::AcceptedAlike
        );
        assert_eq!(compare(None, &Err("no".into())), Agreement::RejectedByBoth);
        assert!(matches!(
            compare(Some((cfg, &adv)), &v("ConfigurationNeeded", &["INTEL-SA-1"])),
            Agreement::Disagree(d) if d.contains("advisories")
        ));
        assert!(matches!(
            compare(Some((TcbStatus::OutOfDate, &[])), &v("TDRelaunchAdvised", &[])),
            Agreement::Disagree(d) if d == "TCB status OutOfDate here, TDRelaunchAdvised by dcap-qvl"
        ));
        assert!(matches!(
            compare(None, &v("UpToDate", &[])),
            Agreement::Disagree(d) if d == "dcap-qvl accepts it as UpToDate"
        ));
        assert!(matches!(
            compare(Some((TcbStatus::UpToDate, &[])), &Err("Fmspc mismatch".into())),
            Agreement::Disagree(d) if d == "dcap-qvl rejects it: Fmspc mismatch"
        ));
    }
}
