//! An offline VCEK cache for SEV-SNP evidence that carries no certificates.
//!
//! Hosts often give the guest no certificate table, so a report arrives
//! alone. `tl-ca serve --vcek-cache-dir DIR` then looks up the VCEK the
//! report names in `DIR`, keyed like AMD's Key Distribution Service
//! ([`VcekCacheKey`]: product, hwID = CHIP_ID, REPORTED_TCB), and hands it to
//! the verifier with the report. The file is only a candidate: the verifier
//! checks it against AMD's roots, the report's signature, TCB and chip ID as
//! it would a VCEK from the guest, so a wrong or planted file cannot make a
//! report verify.
//!
//! A VCEK is looked up as, in order:
//!
//! 1. `DIR/<VcekCacheKey::file_name()>`, e.g.
//!    `vcek-milan-<hwid hex>-fmc0-bl3-tee0-snp8-ucode115.der`;
//! 2. `DIR/<VcekCacheKey::kds_path()>`, i.e. a mirror of KDS URLs:
//!    `vcek/v1/Milan/<hwid hex>?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`.
//!
//! Each file is a DER certificate (as KDS serves it) or PEM. Fetching VCEKs
//! from AMD is a separate, explicit step ([`crate::kds`], `tl-ca
//! fetch-vcek`) and not done here: the CA never reaches the network while
//! verifying.
//!
//! AMD CRLs (`tl-ca serve --amd-crl-dir`) are read from a directory at
//! start ([`load_amd_crl_dir`]) and checked at each verification by
//! [`AmdCrlVerifier`].

use std::io::Read;
use std::path::{Path, PathBuf};

use tl_evidence::bundle::{CpuEvidenceKind, EvidenceBundle};
use tl_evidence::snp::report::{SnpReport, REPORT_LEN};
use tl_evidence::snp::{Product, VcekCacheKey};
use tl_evidence::PlatformClaims;

use crate::verifier::{EvidenceVerifier, Rejection};

/// The largest cache file read (AMD's VCEKs are about 1.3 KiB).
pub const MAX_VCEK_FILE: u64 = 64 * 1024;

/// Why no VCEK came from the cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VcekCacheError {
    /// The report does not parse, so it names no VCEK.
    #[error("report: {0}")]
    Report(tl_evidence::EvidenceError),
    /// No file for the report's chip and TCB.
    #[error("no VCEK for {file} (KDS {kds}) in {dir}")]
    NotCached {
        /// Cache file name looked for.
        file: String,
        /// KDS path looked for.
        kds: String,
        /// The cache directory.
        dir: PathBuf,
    },
    /// A CRL in the CRL directory does not verify or is not current.
    #[error("{path}: {detail}")]
    Crl {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A cache file could not be read or is not a certificate.
    #[error("{path}: {detail}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

impl VcekCacheError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            VcekCacheError::Report(e) => e.code(),
            VcekCacheError::NotCached { .. } => "SNP_VCEK_NOT_CACHED",
            VcekCacheError::Unreadable { .. } => "SNP_VCEK_CACHE_UNREADABLE",
            VcekCacheError::Crl { .. } => "SNP_CRL_INVALID",
        }
    }
}

/// The cache keys a report can name, most specific first. Pure. A report of
/// version 3 or later names its generation by CPUID; a version 2 report
/// (no CPUID) may come from Milan or Genoa (Turin reports are version 3+).
pub fn cache_keys(report: &[u8]) -> Result<Vec<VcekCacheKey>, tl_evidence::EvidenceError> {
    let r = SnpReport::parse(report)?;
    let products = match r.cpuid {
        Some(c) => vec![Product::from_cpuid(c.family, c.model).ok_or(
            tl_evidence::EvidenceError::SnpUnknownProduct("report CPUID"),
        )?],
        None => vec![Product::Milan, Product::Genoa],
    };
    Ok(products
        .into_iter()
        .map(|p| VcekCacheKey::new(p, &r.chip_id, r.reported_tcb))
        .collect())
}

/// A directory of VCEKs.
#[derive(Clone, Debug)]
pub struct VcekCache {
    dir: PathBuf,
}

impl VcekCache {
    /// The cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        VcekCache { dir: dir.into() }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The VCEK (DER) for `report` (the bare 1184-byte report).
    pub fn lookup(&self, report: &[u8]) -> Result<Vec<u8>, VcekCacheError> {
        let keys = cache_keys(report).map_err(VcekCacheError::Report)?;
        for key in &keys {
            for rel in [key.file_name(), key.kds_path()] {
                let path = self.dir.join(&rel);
                match read_bounded(&path) {
                    Ok(bytes) => return to_der(&path, bytes),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(VcekCacheError::Unreadable {
                            path,
                            detail: e.to_string(),
                        })
                    }
                }
            }
        }
        // `cache_keys` returns at least one key when it succeeds.
        let first = keys.first();
        Err(VcekCacheError::NotCached {
            file: first.map(|k| k.file_name()).unwrap_or_default(),
            kds: first.map(|k| k.kds_path()).unwrap_or_default(),
            dir: self.dir.clone(),
        })
    }
}

fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = std::fs::File::open(path)?;
    let mut v = Vec::new();
    f.take(MAX_VCEK_FILE + 1).read_to_end(&mut v)?;
    if v.len() as u64 > MAX_VCEK_FILE {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_VCEK_FILE} bytes"
        )));
    }
    Ok(v)
}

fn to_der(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, VcekCacheError> {
    match std::str::from_utf8(&bytes) {
        Ok(text) if text.contains("-----BEGIN CERTIFICATE-----") => {
            crate::certs::pem_to_certs(text)
                .ok()
                .and_then(|v| v.into_iter().next())
                .ok_or_else(|| VcekCacheError::Unreadable {
                    path: path.to_owned(),
                    detail: "PEM holds no certificate".into(),
                })
        }
        _ => Ok(bytes),
    }
}

/// A verifier that gives SEV-SNP evidence without certificates (no
/// `certificates`, no table after the report) the VCEK from a [`VcekCache`],
/// then verifies with `inner`. Other evidence goes to `inner` unchanged. The
/// bundle the CA certifies (and its digest) is the one the guest sent.
#[derive(Debug)]
pub struct VcekCachingVerifier<V> {
    inner: V,
    cache: VcekCache,
}

impl<V: EvidenceVerifier> VcekCachingVerifier<V> {
    /// Wrap `inner` with `cache`.
    pub fn new(inner: V, cache: VcekCache) -> Self {
        VcekCachingVerifier { inner, cache }
    }
}

impl<V: EvidenceVerifier> EvidenceVerifier for VcekCachingVerifier<V> {
    fn verify(
        &self,
        bundle: &EvidenceBundle,
        nonce: &[u8],
        now_unix: u64,
    ) -> Result<PlatformClaims, Rejection> {
        let bare = bundle.cpu.kind == CpuEvidenceKind::SnpReport
            && bundle.cpu.certificates.is_empty()
            && bundle.cpu.quote.len() == REPORT_LEN;
        if !bare {
            return self.inner.verify(bundle, nonce, now_unix);
        }
        let vcek = self
            .cache
            .lookup(&bundle.cpu.quote)
            .map_err(|e| Rejection {
                code: e.code(),
                detail: e.to_string(),
            })?;
        let mut with_vcek = bundle.clone();
        with_vcek.cpu.certificates = vec![vcek];
        self.inner.verify(&with_vcek, nonce, now_unix)
    }
}

/// The CRL file of the simulated root in an `--amd-crl-dir` (applies to
/// evidence chained to the simulated root, when that root is trusted).
pub const SIMULATED_CRL_FILE: &str = "simulated.crl";

/// AMD CRLs (DER, one per product; see [`crate::kds::crl_file_name`]) and
/// optionally one of the simulated root, read from a directory at start.
#[derive(Clone, Debug, Default)]
pub struct AmdCrls {
    by_product: Vec<(Product, Vec<u8>)>,
    simulated: Option<Vec<u8>>,
}

impl AmdCrls {
    /// Set the CRL for `product`.
    pub fn insert(&mut self, product: Product, der: Vec<u8>) {
        self.by_product.retain(|(p, _)| *p != product);
        self.by_product.push((product, der));
    }

    /// Set the simulated root's CRL.
    pub fn set_simulated(&mut self, der: Vec<u8>) {
        self.simulated = Some(der);
    }

    /// The CRL for `product`.
    pub fn get(&self, product: Product) -> Option<&[u8]> {
        self.by_product
            .iter()
            .find(|(p, _)| *p == product)
            .map(|(_, d)| d.as_slice())
    }

    /// The products that have a CRL.
    pub fn products(&self) -> Vec<Product> {
        self.by_product.iter().map(|(p, _)| *p).collect()
    }

    /// The simulated root's CRL.
    pub fn simulated(&self) -> Option<&[u8]> {
        self.simulated.as_deref()
    }
}

/// Read `dir/<product>.crl` (`milan.crl`, `genoa.crl`, `turin.crl`) and
/// `dir/simulated.crl`, each optional. Each AMD CRL must be signed by the
/// product's shipped ARK and current at `now_unix`
/// ([`crate::kds::verify_amd_crl`]): an invalid or expired CRL fails here,
/// with `SNP_CRL_INVALID`, rather than being skipped. The simulated CRL is
/// checked at each verification only.
pub fn load_amd_crl_dir(dir: &Path, now_unix: u64) -> Result<AmdCrls, VcekCacheError> {
    if !dir.is_dir() {
        return Err(VcekCacheError::Unreadable {
            path: dir.to_owned(),
            detail: "not a directory".into(),
        });
    }
    let mut out = AmdCrls::default();
    let read = |path: &Path| match read_bounded(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VcekCacheError::Unreadable {
            path: path.to_owned(),
            detail: e.to_string(),
        }),
    };
    for p in Product::ALL {
        let path = dir.join(crate::kds::crl_file_name(p));
        if let Some(der) = read(&path)? {
            crate::kds::verify_amd_crl(p, &der, now_unix).map_err(|e| VcekCacheError::Crl {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            out.insert(p, der);
        }
    }
    if let Some(der) = read(&dir.join(SIMULATED_CRL_FILE))? {
        out.set_simulated(der);
    }
    Ok(out)
}

/// A verifier that checks SEV-SNP evidence against AMD's CRLs
/// ([`AmdCrls`]) before `inner` verifies it: the evidence's chain is
/// verified with the CRL of its product (or the simulated root's CRL), so a
/// revoked ASK/ASVK is refused (`SNP_CERT_REVOKED`) and a CRL that has
/// expired since start, or does not verify, refuses everything of that
/// product (`SNP_CRL_INVALID`). An AMD-rooted chain whose product has no
/// CRL is refused (`SNP_CRL_MISSING`): with a CRL directory configured,
/// revocation is checked or nothing is accepted. Simulated evidence is
/// checked only when `simulated.crl` was given. Other evidence goes to
/// `inner` unchanged. Wrap it in [`VcekCachingVerifier`] so that bare
/// reports are checked with their cached VCEK.
#[derive(Debug)]
pub struct AmdCrlVerifier<V> {
    inner: V,
    crls: AmdCrls,
    anchors: tl_evidence::verify::TrustAnchors,
}

impl<V: EvidenceVerifier> AmdCrlVerifier<V> {
    /// Wrap `inner`; `anchors` must be the anchors `inner` trusts.
    pub fn new(inner: V, crls: AmdCrls, anchors: tl_evidence::verify::TrustAnchors) -> Self {
        AmdCrlVerifier {
            inner,
            crls,
            anchors,
        }
    }
}

impl<V: EvidenceVerifier> EvidenceVerifier for AmdCrlVerifier<V> {
    fn verify(
        &self,
        bundle: &EvidenceBundle,
        nonce: &[u8],
        now_unix: u64,
    ) -> Result<PlatformClaims, Rejection> {
        if bundle.cpu.kind != CpuEvidenceKind::SnpReport {
            return self.inner.verify(bundle, nonce, now_unix);
        }
        let reject = |e: tl_evidence::EvidenceError| Rejection {
            code: e.code(),
            detail: e.to_string(),
        };
        let snp = |crls: &[Vec<u8>]| {
            tl_evidence::snp::verify_snp_evidence(
                &bundle.cpu.quote,
                &bundle.cpu.certificates,
                crls,
                &self.anchors,
                now_unix,
            )
        };
        // Which root and product the chain has decides the CRL.
        let v = snp(&[]).map_err(reject)?;
        let crl = match v.anchor {
            tl_evidence::verify::AnchorKind::Amd => match self.crls.get(v.product) {
                Some(c) => Some(c),
                None => {
                    return Err(Rejection {
                        code: "SNP_CRL_MISSING",
                        detail: format!("no AMD CRL for {}", v.product.name()),
                    })
                }
            },
            tl_evidence::verify::AnchorKind::Simulated => self.crls.simulated(),
            _ => None,
        };
        if let Some(c) = crl {
            snp(&[c.to_vec()]).map_err(reject)?;
        }
        self.inner.verify(bundle, nonce, now_unix)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::SimAwareVerifier;
    use tl_evidence::bundle::CpuEvidence;
    use tl_evidence::claims::TeeKind;
    use tl_evidence::verify::TrustAnchors;

    const DATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/sev-snp/"
    );

    fn read(rel: &str) -> Vec<u8> {
        let p = format!("{DATA}{rel}");
        std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
    }

    /// go-sev-guest verify_test.go `currentTime`, as in MANIFEST.md.
    const T_GO: u64 = 1_663_981_200;
    /// 2025-06-01T00:00:00Z, inside the Genoa VCEK's validity.
    const T_2025: u64 = 1_748_736_000;

    fn bundle(report: Vec<u8>, certs: Vec<Vec<u8>>) -> EvidenceBundle {
        EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::SnpReport,
            quote: report,
            certificates: certs,
        })
    }

    fn verifier(dir: &Path) -> VcekCachingVerifier<SimAwareVerifier> {
        VcekCachingVerifier::new(
            SimAwareVerifier::new(TrustAnchors::default()),
            VcekCache::new(dir),
        )
    }

    #[test]
    fn real_report_verifies_with_the_cached_vcek() {
        let report = read("go-sev-guest/attestation.bin");
        let vcek = read("go-sev-guest/vcek.testcer");
        let keys = cache_keys(&report).unwrap();
        assert_eq!(keys[0].product, Product::Milan);
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path());

        // Empty cache: a clear code naming the file wanted.
        let e = v
            .verify(&bundle(report.clone(), vec![]), &[0u8; 32], T_GO)
            .unwrap_err();
        assert_eq!(e.code, "SNP_VCEK_NOT_CACHED");
        assert!(e.detail.contains(&keys[0].file_name()), "{}", e.detail);

        std::fs::write(dir.path().join(keys[0].file_name()), &vcek).unwrap();
        let claims = v
            .verify(&bundle(report.clone(), vec![]), &[0u8; 32], T_GO)
            .unwrap();
        assert_eq!(claims.tee, TeeKind::SevSnp);
        assert!(!claims.simulated);
        assert_eq!(
            hex::encode(claims.snp.unwrap().measurement),
            "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
        );

        // The cache cannot vouch for a tampered report.
        let mut t = report.clone();
        t[0x90] ^= 1;
        assert_eq!(
            v.verify(&bundle(t, vec![]), &[0u8; 32], T_GO)
                .unwrap_err()
                .code,
            "SNP_REPORT_SIGNATURE"
        );
        // A tampered CHIP_ID names another file: not cached.
        let mut t = report;
        t[0x1A0] ^= 1;
        assert_eq!(
            v.verify(&bundle(t, vec![]), &[0u8; 32], T_GO)
                .unwrap_err()
                .code,
            "SNP_VCEK_NOT_CACHED"
        );
    }

    #[test]
    fn kds_layout_pem_and_a_planted_vcek() {
        // Genoa, report version 3: the product comes from CPUID.
        let report = read("trustee/e2e_evidence_report.bin");
        let vcek = read("trustee/e2e_evidence_vcek.der");
        let keys = cache_keys(&report).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].product, Product::Genoa);
        let dir = tempfile::tempdir().unwrap();
        let kds = dir.path().join(keys[0].kds_path());
        std::fs::create_dir_all(kds.parent().unwrap()).unwrap();
        use base64::Engine;
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(&vcek)
        );
        std::fs::write(&kds, pem).unwrap();
        let now = T_2025 + 86_400 * 30;
        let v = verifier(dir.path());
        v.verify(&bundle(report.clone(), vec![]), &[0u8; 32], now)
            .unwrap();

        // Another chip's VCEK planted under this chip's name does not verify.
        std::fs::write(
            dir.path().join(keys[0].file_name()),
            read("trustee/test-vcek.der"),
        )
        .unwrap();
        let e = v
            .verify(&bundle(report.clone(), vec![]), &[0u8; 32], now)
            .unwrap_err();
        assert_ne!(e.code, "SNP_VCEK_NOT_CACHED");

        // Too large a file is refused with its own code.
        std::fs::write(
            dir.path().join(keys[0].file_name()),
            vec![0u8; MAX_VCEK_FILE as usize + 1],
        )
        .unwrap();
        let e = v
            .verify(&bundle(report, vec![]), &[0u8; 32], now)
            .unwrap_err();
        assert_eq!(e.code, "SNP_VCEK_CACHE_UNREADABLE");
    }

    #[test]
    fn evidence_with_certificates_does_not_use_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let v = verifier(dir.path());
        let b = bundle(
            read("go-sev-guest/attestation.bin"),
            vec![read("go-sev-guest/vcek.testcer")],
        );
        v.verify(&b, &[0u8; 32], T_GO).unwrap();
        // Garbage is not looked up; the verifier's own code comes back.
        let e = v
            .verify(&bundle(vec![1; 10], vec![]), &[0u8; 32], T_GO)
            .unwrap_err();
        assert_eq!(e.code, "SNP_REPORT_MALFORMED");
        assert_eq!(
            VcekCache::new(dir.path())
                .lookup(&[0; 10])
                .unwrap_err()
                .code(),
            "SNP_REPORT_MALFORMED"
        );
    }
}
