//! Verification of an SEV-SNP report against its VCEK/VLEK chain.
//!
//! Order of checks (each failure has its own reason code):
//!
//! 1. the report parses (`SNP_REPORT_MALFORMED`), and is signed
//!    (`SNP_REPORT_UNSIGNED`);
//! 2. the leaf is a VCEK or VLEK whose product-name extension names a
//!    known generation; its chain ends at that generation's shipped ARK
//!    through the ASK (VCEK) or ASVK (VLEK), or at the simulated root when
//!    the caller configured it; every certificate is valid at `now`
//!    (`SNP_VCEK_CHAIN`, `SNP_WRONG_PRODUCT_CHAIN`, `SNP_VLEK_VCEK_MISMATCH`,
//!    `CERT_EXPIRED`, ...); a CRL, when given, is checked (`SNP_CERT_REVOKED`);
//! 3. the report's SIGNING_KEY matches the leaf kind
//!    (`SNP_VLEK_VCEK_MISMATCH`), and a v3+ report's CPUID names the chain's
//!    generation (`SNP_WRONG_PRODUCT_CHAIN`);
//! 4. the ECDSA P-384 signature over bytes `0..0x2A0` verifies with the
//!    leaf key (`SNP_REPORT_SIGNATURE`);
//! 5. the leaf's SPL extensions equal REPORTED_TCB (`SNP_TCB_MISMATCH`) and,
//!    for a VCEK, its hwID equals CHIP_ID (`SNP_CHIP_ID_MISMATCH`).

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P384_SHA384_FIXED};
use der::{Decode, Encode};

use crate::claims::{PlatformClaims, SnpClaims, TcbStatus, TeeKind};
use crate::error::EvidenceError;
use crate::snp::certs::{
    sig_alg_of, verify_sig, AmdCert, AmdRoots, LeafExtensions, LeafKind, Product, PubKey,
};
use crate::snp::report::{
    parse_cert_table, split_extended, CertKind, SigningKey, SnpReport, TcbParts, TcbVersion,
};
use crate::verify::{AnchorKind, TrustAnchors};

type Result<T> = core::result::Result<T, EvidenceError>;

/// The most certificates an SNP chain may hold (leaf, ASK/ASVK, ARK).
pub const MAX_SNP_CHAIN: usize = 3;

/// A leaf whose chain has been verified, reusable for many reports of the
/// same chip and TCB.
#[derive(Clone, Debug)]
pub struct VerifiedLeaf {
    pub(crate) cert: AmdCert,
    pub extensions: LeafExtensions,
    pub kind: LeafKind,
    pub product: Product,
    pub anchor: AnchorKind,
}

/// A verified report with what it was verified against.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedSnp {
    pub report: SnpReport,
    pub product: Product,
    pub leaf_kind: LeafKind,
    pub anchor: AnchorKind,
    pub leaf_extensions: LeafExtensions,
}

/// Verify CPU evidence of kind `snp-report`: `quote` is the 1184-byte report,
/// optionally followed by an extended-report certificate table; `certs` is
/// the chain, leaf first (used when non-empty; otherwise the table's VCEK or
/// VLEK, ASK and ARK entries are). `crls` are DER CRLs of the ARK (or the
/// simulated root); none may be given.
pub fn verify_snp_evidence(
    quote: &[u8],
    certs: &[Vec<u8>],
    crls: &[Vec<u8>],
    anchors: &TrustAnchors,
    now_unix: u64,
) -> Result<VerifiedSnp> {
    let (report_bytes, table) = split_extended(quote)?;
    let report = SnpReport::parse(report_bytes)?;
    // A table, when present, must parse even if the chain is supplied apart.
    let table_chain = table.map(chain_from_table).transpose()?;
    let chain: &[Vec<u8>] = match (certs.is_empty(), &table_chain) {
        (false, _) => certs,
        (true, Some(t)) => t,
        (true, None) => return Err(EvidenceError::SnpVcekChain("no VCEK or VLEK supplied")),
    };
    let leaf = verify_leaf_chain(chain, crls, anchors, now_unix)?;
    verify_report_with_leaf(&report, &leaf)?;
    Ok(VerifiedSnp {
        report,
        product: leaf.product,
        leaf_kind: leaf.kind,
        anchor: leaf.anchor,
        leaf_extensions: leaf.extensions,
    })
}

/// The chain, leaf first, from an extended-report certificate table.
pub fn chain_from_table(table: &[u8]) -> Result<Vec<Vec<u8>>> {
    let entries = parse_cert_table(table)?;
    let find = |k: CertKind| entries.iter().find(|e| e.kind == k).map(|e| e.der.clone());
    let leaf = match (find(CertKind::Vcek), find(CertKind::Vlek)) {
        (Some(v), None) | (None, Some(v)) => v,
        (Some(_), Some(_)) => {
            return Err(EvidenceError::SnpReportMalformed(
                "certificate table holds both a VCEK and a VLEK",
            ))
        }
        (None, None) => return Err(EvidenceError::SnpVcekChain("no VCEK or VLEK supplied")),
    };
    let mut out = vec![leaf];
    out.extend(find(CertKind::Ask));
    out.extend(find(CertKind::Ark));
    Ok(out)
}

fn leaf_kind(c: &AmdCert) -> Result<LeafKind> {
    match c.subject_cn().as_deref() {
        Some("SEV-VCEK") => Ok(LeafKind::Vcek),
        Some("SEV-VLEK") => Ok(LeafKind::Vlek),
        _ => Err(EvidenceError::SnpVcekChain(
            "leaf is neither a VCEK nor a VLEK",
        )),
    }
}

/// Verify a VCEK/VLEK chain (leaf first) at `now`, with optional CRLs.
pub fn verify_leaf_chain(
    chain: &[Vec<u8>],
    crls: &[Vec<u8>],
    anchors: &TrustAnchors,
    now_unix: u64,
) -> Result<VerifiedLeaf> {
    if chain.len() > MAX_SNP_CHAIN {
        return Err(EvidenceError::SnpVcekChain("too many certificates"));
    }
    let (leaf_der, above) = chain
        .split_first()
        .ok_or(EvidenceError::SnpVcekChain("no VCEK or VLEK supplied"))?;
    let leaf = AmdCert::parse(leaf_der)?;
    let kind = leaf_kind(&leaf)?;
    let extensions = LeafExtensions::parse(&leaf)?;
    let name = extensions
        .product_name
        .as_deref()
        .ok_or(EvidenceError::SnpCertExtension("product name missing"))?;
    let product = Product::from_product_name(name)
        .ok_or(EvidenceError::SnpUnknownProduct("certificate product name"))?;
    // Every SPL the generation defines, and a VCEK's hwID, must be present.
    leaf_tcb(product, &extensions)?;
    if kind == LeafKind::Vcek && extensions.hw_id.is_none() {
        return Err(EvidenceError::SnpCertExtension("hwID missing"));
    }

    let sim_root = anchors.simulated_root_der.as_deref();
    let anchor = match (sim_root, above.last()) {
        (Some(root), Some(top)) if top.as_slice() == root => {
            verify_simulated(&leaf, above, crls, now_unix)?;
            AnchorKind::Simulated
        }
        _ => {
            if sim_root.is_none() && above.iter().any(|c| is_simulated(c)) {
                return Err(EvidenceError::SimulatedRootNotAllowed);
            }
            verify_amd(&leaf, kind, product, above, crls, now_unix)?;
            AnchorKind::Amd
        }
    };
    Ok(VerifiedLeaf {
        cert: leaf,
        extensions,
        kind,
        product,
        anchor,
    })
}

fn is_simulated(der: &[u8]) -> bool {
    AmdCert::parse(der)
        .ok()
        .and_then(|c| c.subject_cn())
        .is_some_and(|cn| cn == crate::sim::SIM_ROOT_CN)
}

/// Which shipped CA `der` is, if any: (product, is the ARK, signer kind).
fn which_amd_ca(der: &[u8]) -> Option<(Product, Option<LeafKind>)> {
    for p in Product::ALL {
        let Ok(r) = AmdRoots::get(p) else { continue };
        if der == r.ark.der() {
            return Some((p, None));
        }
        if der == r.ask.der() {
            return Some((p, Some(LeafKind::Vcek)));
        }
        if der == r.asvk.der() {
            return Some((p, Some(LeafKind::Vlek)));
        }
    }
    None
}

fn verify_amd(
    leaf: &AmdCert,
    kind: LeafKind,
    product: Product,
    above: &[Vec<u8>],
    crls: &[Vec<u8>],
    now_unix: u64,
) -> Result<()> {
    let roots = AmdRoots::get(product)?;
    let signer = roots.signer(kind);
    // Supplied CA certificates must be AMD's own for this product: the
    // signer then the ARK.
    for (i, der) in above.iter().enumerate() {
        let expect = if i == 0 {
            signer.der()
        } else {
            roots.ark.der()
        };
        if der.as_slice() == expect {
            continue;
        }
        return Err(match which_amd_ca(der) {
            Some((p, _)) if p != product => EvidenceError::SnpWrongProductChain,
            Some((_, Some(k))) if k != kind => EvidenceError::SnpVlekVcekMismatch,
            _ => EvidenceError::SnpVcekChain("supplied CA certificate is not AMD's"),
        });
    }
    if leaf.issuer_der != signer.subject_der {
        let other_kind = match kind {
            LeafKind::Vcek => LeafKind::Vlek,
            LeafKind::Vlek => LeafKind::Vcek,
        };
        if leaf.issuer_der == roots.signer(other_kind).subject_der {
            return Err(EvidenceError::SnpVlekVcekMismatch);
        }
        for p in Product::ALL {
            if let Ok(r) = AmdRoots::get(p) {
                if p != product
                    && (leaf.issuer_der == r.ask.subject_der
                        || leaf.issuer_der == r.asvk.subject_der)
                {
                    return Err(EvidenceError::SnpWrongProductChain);
                }
            }
        }
        return Err(EvidenceError::SnpVcekChain(
            "leaf issuer is not the ASK/ASVK",
        ));
    }
    if !leaf.signed_by(signer) {
        return Err(EvidenceError::SnpVcekChain("leaf signature"));
    }
    leaf.check_validity(now_unix)?;
    signer.check_validity(now_unix)?;
    roots.ark.check_validity(now_unix)?;
    check_crls(crls, &roots.ark, &[signer], now_unix)
}

fn verify_simulated(
    leaf: &AmdCert,
    above: &[Vec<u8>],
    crls: &[Vec<u8>],
    now_unix: u64,
) -> Result<()> {
    let mut certs = vec![leaf.clone()];
    for der in above {
        certs.push(AmdCert::parse(der)?);
    }
    for pair in certs.windows(2) {
        let [child, issuer] = pair else {
            return Err(EvidenceError::SnpVcekChain("chain"));
        };
        if child.issuer_der != issuer.subject_der {
            return Err(EvidenceError::SnpVcekChain("issuer name does not match"));
        }
        if !issuer.is_ca() {
            return Err(EvidenceError::SnpVcekChain("issuer is not a CA"));
        }
        if !child.signed_by(issuer) {
            return Err(EvidenceError::SnpVcekChain("certificate signature"));
        }
    }
    for c in &certs {
        c.check_validity(now_unix)?;
    }
    // `above` is non-empty (its last element is the configured root), so
    // `certs` holds at least the leaf and the root.
    let (root, below) = certs
        .split_last()
        .ok_or(EvidenceError::SnpVcekChain("chain"))?;
    let cas: Vec<&AmdCert> = below.iter().skip(1).collect();
    check_crls(crls, root, &cas, now_unix)
}

/// Check every CRL: it must decode, be issued and signed by `issuer`, and be
/// current at `now`; none may list the serial of a certificate in `subjects`
/// (each issued by `issuer`).
pub(crate) fn check_crls(
    crls: &[Vec<u8>],
    issuer: &AmdCert,
    subjects: &[&AmdCert],
    now_unix: u64,
) -> Result<()> {
    use x509_cert::crl::CertificateList;
    for der in crls {
        let crl = CertificateList::from_der(der)
            .map_err(|_| EvidenceError::SnpCrl("CRL does not decode"))?;
        let tbs = &crl.tbs_cert_list;
        let issuer_der = tbs
            .issuer
            .to_der()
            .map_err(|_| EvidenceError::SnpCrl("CRL issuer"))?;
        if issuer_der != issuer.subject_der {
            return Err(EvidenceError::SnpCrl("CRL not issued by the root"));
        }
        let alg = sig_alg_of(&crl.signature_algorithm)
            .map_err(|_| EvidenceError::SnpCrl("CRL signature algorithm"))?;
        let tbs_der = tbs
            .to_der()
            .map_err(|_| EvidenceError::SnpCrl("CRL does not encode"))?;
        let sig = crl
            .signature
            .as_bytes()
            .ok_or(EvidenceError::SnpCrl("CRL signature"))?;
        if !verify_sig(alg, &issuer.key, &tbs_der, sig) {
            return Err(EvidenceError::SnpCrl("CRL signature"));
        }
        if now_unix < tbs.this_update.to_unix_duration().as_secs() {
            return Err(EvidenceError::SnpCrl("CRL not yet valid"));
        }
        if let Some(next) = tbs.next_update {
            if now_unix > next.to_unix_duration().as_secs() {
                return Err(EvidenceError::SnpCrl("CRL expired"));
            }
        }
        for rc in tbs.revoked_certificates.iter().flatten() {
            if subjects.iter().any(|s| {
                s.issuer_der == issuer.subject_der && s.serial() == rc.serial_number.as_bytes()
            }) {
                return Err(EvidenceError::SnpCertRevoked);
            }
        }
    }
    Ok(())
}

/// Check `report` against a verified leaf: signing key kind, product,
/// signature, TCB and chip ID.
pub fn verify_report_with_leaf(report: &SnpReport, leaf: &VerifiedLeaf) -> Result<()> {
    let signed_by = report.signing_key()?;
    if signed_by == SigningKey::None || report.mask_chip_key() {
        return Err(EvidenceError::SnpReportUnsigned);
    }
    match (signed_by, leaf.kind) {
        (SigningKey::Vcek, LeafKind::Vcek) | (SigningKey::Vlek, LeafKind::Vlek) => {}
        _ => return Err(EvidenceError::SnpVlekVcekMismatch),
    }
    if let Some(c) = report.cpuid {
        match Product::from_cpuid(c.family, c.model) {
            Some(p) if p == leaf.product => {}
            Some(_) => return Err(EvidenceError::SnpWrongProductChain),
            None => return Err(EvidenceError::SnpUnknownProduct("report CPUID")),
        }
    }
    check_report_signature(report, &leaf.cert.key)?;
    check_tcb(report.reported_tcb, leaf.product, &leaf.extensions)?;
    if leaf.kind == LeafKind::Vcek {
        check_chip_id(&report.chip_id, leaf.product, &leaf.extensions)?;
    }
    Ok(())
}

fn check_report_signature(report: &SnpReport, key: &PubKey) -> Result<()> {
    if report.signature_algo != crate::snp::report::SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(EvidenceError::SnpReportMalformed("unknown SIGNATURE_ALGO"));
    }
    let PubKey::P384(point) = key else {
        return Err(EvidenceError::SnpVcekChain("leaf key is not P-384"));
    };
    UnparsedPublicKey::new(&ECDSA_P384_SHA384_FIXED, point)
        .verify(&report.signed, &report.signature_fixed())
        .map_err(|_| EvidenceError::SnpReportSignature)
}

/// The leaf's TCB as components; every SPL the generation defines must be
/// present (`SNP_CERT_EXTENSION` otherwise).
pub fn leaf_tcb(product: Product, ext: &LeafExtensions) -> Result<TcbParts> {
    let need = |v: Option<u8>, what| v.ok_or(EvidenceError::SnpCertExtension(what));
    Ok(TcbParts {
        fmc: match product {
            Product::Turin => Some(need(ext.fmc_spl, "fmcSPL missing")?),
            _ => None,
        },
        bootloader: need(ext.bl_spl, "blSPL missing")?,
        tee: need(ext.tee_spl, "teeSPL missing")?,
        snp: need(ext.snp_spl, "snpSPL missing")?,
        microcode: need(ext.ucode_spl, "ucodeSPL missing")?,
    })
}

/// REPORTED_TCB must equal the TCB_VERSION that the leaf's SPL extensions
/// give under the generation's layout, reserved bytes zero
/// (`SNP_TCB_MISMATCH`).
pub fn check_tcb(reported: TcbVersion, product: Product, ext: &LeafExtensions) -> Result<()> {
    let want = leaf_tcb(product, ext)?;
    if reported != TcbVersion::from_parts(want, product.tcb_layout()) {
        return Err(EvidenceError::SnpTcbMismatch);
    }
    Ok(())
}

/// The VCEK's hwID must equal CHIP_ID's first 64 bytes (Turin: 8 bytes)
/// (`SNP_CHIP_ID_MISMATCH`; a missing hwID is `SNP_CERT_EXTENSION`).
pub fn check_chip_id(chip_id: &[u8; 64], product: Product, ext: &LeafExtensions) -> Result<()> {
    let hw = ext
        .hw_id
        .as_deref()
        .ok_or(EvidenceError::SnpCertExtension("hwID missing"))?;
    if hw.len() != product.hwid_len() {
        return Err(EvidenceError::SnpCertExtension("hwID length"));
    }
    if chip_id.get(..hw.len()) != Some(hw) {
        return Err(EvidenceError::SnpChipIdMismatch);
    }
    Ok(())
}

/// The key under which a VCEK is cached offline (and fetched from AMD's
/// KDS): product, chip ID and reported TCB. Computing it reads nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VcekCacheKey {
    pub product: Product,
    /// Lowercase hex of the chip ID bytes the VCEK names (64 bytes; 8 on Turin).
    pub hwid_hex: String,
    pub tcb: TcbParts,
}

impl VcekCacheKey {
    /// The key for a report of `product`.
    pub fn new(product: Product, chip_id: &[u8; 64], reported_tcb: TcbVersion) -> VcekCacheKey {
        let n = product.hwid_len().min(chip_id.len());
        VcekCacheKey {
            product,
            hwid_hex: hex::encode(chip_id.get(..n).unwrap_or_default()),
            tcb: reported_tcb.parts(product.tcb_layout()),
        }
    }

    /// AMD KDS path: `vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..`
    /// (Turin adds `fmcSPL` first).
    pub fn kds_path(&self) -> String {
        let t = &self.tcb;
        let fmc = t.fmc.map(|f| format!("fmcSPL={f}&")).unwrap_or_default();
        format!(
            "vcek/v1/{}/{}?{fmc}blSPL={}&teeSPL={}&snpSPL={}&ucodeSPL={}",
            self.product.name(),
            self.hwid_hex,
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode
        )
    }

    /// A file name for an offline cache directory (no path separators).
    pub fn file_name(&self) -> String {
        let t = &self.tcb;
        format!(
            "vcek-{}-{}-fmc{}-bl{}-tee{}-snp{}-ucode{}.der",
            self.product.name().to_ascii_lowercase(),
            self.hwid_hex,
            t.fmc.unwrap_or(0),
            t.bootloader,
            t.tee,
            t.snp,
            t.microcode
        )
    }
}

/// The TCB status of SEV-SNP claims: SNP has no Intel-style status, so it
/// is [`TcbStatus::NotApplicable`]; the minimum TCB is appraised by policy
/// (`min_reported_tcb`, or [`crate::snp::appraise`]).
pub const SNP_TCB_STATUS: TcbStatus = TcbStatus::NotApplicable;

/// Platform claims of a verified report.
pub fn snp_claims(v: &VerifiedSnp) -> PlatformClaims {
    let r = &v.report;
    PlatformClaims {
        tee: TeeKind::SevSnp,
        simulated: v.anchor == AnchorKind::Simulated,
        debug: crate::snp::appraise::GuestPolicy(r.policy).debug(),
        tcb_status: SNP_TCB_STATUS,
        advisory_ids: Vec::new(),
        report_data: r.report_data,
        tdx: None,
        snp: Some(SnpClaims {
            measurement: r.measurement,
            host_data: r.host_data,
            policy: r.policy,
            vmpl: r.vmpl,
            reported_tcb: r.reported_tcb.0,
            committed_tcb: r.committed_tcb.0,
        }),
        tpm: None,
        gpus: Vec::new(),
        nvswitches: Vec::new(),
    }
}
