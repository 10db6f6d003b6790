//! X.509 CRLs of the Intel SGX PKI (root CA CRL, PCK Platform/Processor CA
//! CRL): decoding, signature by the issuer, validity window and lookup of
//! revoked serial numbers.

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use der::asn1::ObjectIdentifier;
use der::{Decode, Encode};
use x509_cert::crl::CertificateList;

use crate::error::EvidenceError;
use crate::x509::P256Cert;

type Result<T> = core::result::Result<T, EvidenceError>;

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// The largest CRL accepted (Intel's PCK CRLs are a few KiB).
pub const MAX_CRL_LEN: usize = 1 << 20;

/// A decoded CRL. Nothing in it is trusted before [`Crl::check_signed_by`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crl {
    pub(crate) der: Vec<u8>,
    tbs_der: Vec<u8>,
    signature: Vec<u8>,
    pub(crate) issuer_der: Vec<u8>,
    /// thisUpdate, seconds since the epoch.
    pub this_update: u64,
    /// nextUpdate, seconds since the epoch (required here).
    pub next_update: u64,
    /// Revoked serial numbers (DER integer contents), sorted.
    revoked: Vec<Vec<u8>>,
}

impl Crl {
    /// Decode a DER CRL; `what` names it in errors.
    pub fn parse(der: &[u8], what: &'static str) -> Result<Crl> {
        let bad = EvidenceError::TdxCrlInvalid(what);
        if der.len() > MAX_CRL_LEN {
            return Err(bad);
        }
        let crl = CertificateList::from_der(der).map_err(|_| bad.clone())?;
        let enc = |r: der::Result<Vec<u8>>| r.map_err(|_| bad.clone());
        if enc(crl.to_der())? != der {
            return Err(bad);
        }
        let tbs = &crl.tbs_cert_list;
        if crl.signature_algorithm.oid != ECDSA_WITH_SHA256
            || tbs.signature != crl.signature_algorithm
        {
            return Err(bad);
        }
        let next_update = tbs.next_update.ok_or_else(|| bad.clone())?;
        let mut revoked: Vec<Vec<u8>> = tbs
            .revoked_certificates
            .iter()
            .flatten()
            .map(|r| r.serial_number.as_bytes().to_vec())
            .collect();
        revoked.sort();
        Ok(Crl {
            der: der.to_vec(),
            tbs_der: enc(tbs.to_der())?,
            signature: crl
                .signature
                .as_bytes()
                .ok_or_else(|| bad.clone())?
                .to_vec(),
            issuer_der: enc(tbs.issuer.to_der())?,
            this_update: tbs.this_update.to_unix_duration().as_secs(),
            next_update: next_update.to_unix_duration().as_secs(),
            revoked,
        })
    }

    /// Whether `issuer` issued this CRL: its name is the CRL's issuer and
    /// its key verifies the CRL's signature.
    pub(crate) fn check_signed_by(&self, issuer: &P256Cert, what: &'static str) -> Result<()> {
        if issuer.subject_der != self.issuer_der {
            return Err(EvidenceError::TdxCrlInvalid(what));
        }
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &issuer.public_key)
            .verify(&self.tbs_der, &self.signature)
            .map_err(|_| EvidenceError::TdxCrlInvalid(what))
    }

    /// thisUpdate <= now <= nextUpdate, else `TDX_COLLATERAL_EXPIRED`.
    pub(crate) fn check_time(&self, now_unix: u64, what: &'static str) -> Result<()> {
        if now_unix < self.this_update || now_unix > self.next_update {
            return Err(EvidenceError::TdxCollateralExpired(what));
        }
        Ok(())
    }

    /// Whether the certificate with this serial number (DER integer
    /// contents) is listed.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked
            .binary_search_by(|s| s.as_slice().cmp(serial))
            .is_ok()
    }

    /// Whether `cert` is listed (and this CRL is from its issuer by name).
    pub(crate) fn lists(&self, cert: &P256Cert) -> bool {
        cert.issuer_der == self.issuer_der
            && self.is_revoked(cert.cert.tbs_certificate.serial_number.as_bytes())
    }

    /// How many certificates are listed.
    pub fn revoked_count(&self) -> usize {
        self.revoked.len()
    }
}

#[cfg(test)]
impl Crl {
    /// List one more serial (tests of the revocation check only; the CRL's
    /// signature no longer covers its content afterwards).
    pub(crate) fn insert_revoked_for_test(&mut self, serial: Vec<u8>) {
        self.revoked.push(serial);
        self.revoked.sort();
    }
}
