//! The simulated TEE: TDX quotes in the real binary layout, signed by keys
//! derived from a 32-byte seed, with a PCK chain that ends at a simulated
//! root. The real verifier checks them; only the trust anchor differs, and
//! a verifier trusts that anchor only when its operator configured it
//! ([`crate::verify::TrustAnchors::simulated_root_der`]).
//!
//! Derivation (all HKDF-SHA256, salt `"trusted-loader/sim-tee/v1"`, IKM the
//! seed, info a label followed by a one-byte counter, starting at 0 and
//! incremented only if the 32 output bytes are not a valid P-256 scalar):
//!
//! | label            | what                                     |
//! |------------------|------------------------------------------|
//! | `root-key`       | the root CA's P-256 private scalar         |
//! | `pck-key`        | the PCK leaf's P-256 private scalar        |
//! | `attestation-key`| the QE attestation key's P-256 scalar      |
//! | `root-serial`    | root certificate serial (16 bytes used)    |
//! | `pck-serial`     | PCK certificate serial (16 bytes used)     |
//!
//! Every signature is deterministic ECDSA (RFC 6979), so the same seed gives
//! the same certificates byte for byte, and the same seed, report data and
//! measurements give the same quote. Both certificates are valid from
//! 2024-01-01T00:00:00Z to 2099-01-01T00:00:00Z ([`SIM_NOT_BEFORE_UNIX`],
//! [`SIM_NOT_AFTER_UNIX`]).
//!
//! The simulated platform has no TCB of its own: its claims carry
//! [`SIMULATED_TCB_STATUS`] (`UpToDate` by construction) and
//! `simulated = true`.

use aws_lc_rs::hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
    RemoteKeyPair, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256, Sha384};

use crate::claims::TcbStatus;
use crate::tdx::{ATT_KEY_TYPE_ECDSA_P256, CERT_DATA_PCK_CHAIN, CERT_DATA_QE_REPORT, TEE_TYPE_TDX};

/// Common name of the simulated root; verifiers recognise it to report
/// `SIMULATED_ROOT_NOT_ALLOWED` when no simulated root is configured.
pub const SIM_ROOT_CN: &str = "trusted-loader simulated TEE root (NOT FOR PRODUCTION)";
/// Common name of the simulated PCK leaf.
pub const SIM_PCK_CN: &str = "trusted-loader simulated TEE PCK certificate (NOT FOR PRODUCTION)";
/// Start of the simulated certificates' validity (2024-01-01T00:00:00Z).
pub const SIM_NOT_BEFORE_UNIX: u64 = 1_704_067_200;
/// End of the simulated certificates' validity (2099-01-01T00:00:00Z).
pub const SIM_NOT_AFTER_UNIX: u64 = 4_070_908_800;
/// TCB status of simulated evidence: simulated platform, `UpToDate` by
/// construction. Claims from simulated evidence also carry `simulated = true`.
pub const SIMULATED_TCB_STATUS: TcbStatus = TcbStatus::UpToDate;
/// Common name of the simulated PCK Platform CA (issuer of the PCK leaf).
pub const SIM_PCK_CA_CN: &str = "trusted-loader simulated TEE PCK Platform CA (NOT FOR PRODUCTION)";
/// Common name of the simulated TCB signing certificate (signs collateral).
pub const SIM_TCB_SIGNING_CN: &str =
    "trusted-loader simulated TEE TCB signing (NOT FOR PRODUCTION)";
/// FMSPC of the simulated platform (PCK certificate and TCB info).
pub const SIM_FMSPC: [u8; 6] = [0x00, 0x5e, 0x51, 0x4d, 0x00, 0x00];
/// PCE-ID of the simulated platform.
pub const SIM_PCE_ID: [u8; 2] = [0x00, 0x00];
/// SGX TCB component SVNs 1..16 in the simulated PCK certificate.
pub const SIM_CPU_SVN_COMPONENTS: [u8; 16] = [3, 3, 2, 2, 4, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0];
/// PCESVN in the simulated PCK certificate.
pub const SIM_PCE_SVN: u16 = 13;
/// QE vendor ID written into simulated quotes (Intel's, as in real quotes).
pub const SIM_QE_VENDOR_ID: [u8; 16] = crate::tdx::INTEL_QE_VENDOR_ID;

const HKDF_SALT: &[u8] = b"trusted-loader/sim-tee/v1";

/// What the simulated TD reports. [`Default`] gives fixed demo values:
/// MRTD = SHA-384("trusted-loader simulated MRTD"), MRSEAM =
/// SHA-384("trusted-loader simulated MRSEAM"), RTMRs, MRCONFIGID, MROWNER and
/// MROWNERCONFIG all zero, TDATTRIBUTES = 0x1000_0000 (SEPT_VE_DISABLE, not
/// debug), XFAM = 0x0006_02e7, TEE_TCB_SVN = 06 01 03 00 ...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimMeasurements {
    pub mrtd: [u8; 48],
    pub rtmr: [[u8; 48]; 4],
    pub mrconfigid: [u8; 48],
    pub mrowner: [u8; 48],
    pub mrownerconfig: [u8; 48],
    /// TDATTRIBUTES (bit 0 = debug).
    pub td_attributes: u64,
    pub xfam: u64,
    pub tee_tcb_svn: [u8; 16],
    pub mrseam: [u8; 48],
}

impl Default for SimMeasurements {
    fn default() -> Self {
        let mut tee_tcb_svn = [0u8; 16];
        tee_tcb_svn[..3].copy_from_slice(&[6, 1, 3]);
        SimMeasurements {
            mrtd: Sha384::digest(b"trusted-loader simulated MRTD").into(),
            rtmr: [[0u8; 48]; 4],
            mrconfigid: [0u8; 48],
            mrowner: [0u8; 48],
            mrownerconfig: [0u8; 48],
            td_attributes: 0x1000_0000,
            xfam: 0x0006_02e7,
            tee_tcb_svn,
            mrseam: Sha384::digest(b"trusted-loader simulated MRSEAM").into(),
        }
    }
}

/// A simulated TDX platform: root CA, PCK leaf and QE attestation key, all
/// derived from a seed.
#[derive(Clone)]
pub struct SimTee {
    seed: [u8; 32],
    pck_key: SigningKey,
    ak_key: SigningKey,
    root_der: Vec<u8>,
    root_pem: String,
    chain_pem: String,
}

impl core::fmt::Debug for SimTee {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimTee")
            .field("root_sha256", &hex::encode(Sha256::digest(&self.root_der)))
            .finish_non_exhaustive()
    }
}

impl SimTee {
    /// Derive the simulated platform from `seed` (see the module docs).
    pub fn from_seed(seed: [u8; 32]) -> SimTee {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&seed);
        let root_key = derive_key(&prk, b"root-key");
        let pck_key = derive_key(&prk, b"pck-key");
        let ak_key = derive_key(&prk, b"attestation-key");

        let pck_kp = rcgen_key(&pck_key);
        let (root_cert, root_kp) = sim_root(&prk, &root_key);

        let (ca_cert, ca_kp) = sim_pck_ca(&prk, &root_cert, &root_kp);

        let mut pck = base_params(SIM_PCK_CN, serial(&prk, b"pck-serial"));
        pck.is_ca = IsCa::ExplicitNoCa;
        pck.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        pck.use_authority_key_identifier_extension = true;
        pck.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            SGX_EXTENSION_ARCS,
            sgx_extension(&okm32(&prk, b"pck-ppid", 0)),
        )];
        // As above: fixed parameters, P-256 keys.
        let pck_cert = pck
            .signed_by(&pck_kp, &ca_cert, &ca_kp)
            .expect("fixed PCK parameters");

        let root_pem = root_cert.pem();
        SimTee {
            seed,
            pck_key,
            ak_key,
            root_der: root_cert.der().to_vec(),
            chain_pem: format!("{}{}{}", pck_cert.pem(), ca_cert.pem(), root_pem),
            root_pem,
        }
    }

    /// The simulated PCK certificate's serial number (DER INTEGER content
    /// bytes, as CRLs list it).
    pub fn pck_serial(&self) -> Vec<u8> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.seed);
        serial_bytes(&prk, b"pck-serial").to_vec()
    }

    /// DCAP collateral for the simulated platform, as a `QuoteCollateralV3`
    /// JSON document (the shape [`crate::dcap::TdxCollateral::from_json`]
    /// reads and PCCS clients write). See [`SimCollateralOptions`] for what
    /// it contains. Signed by keys derived from the seed and chained to the
    /// simulated root, so the real DCAP appraisal checks it with the
    /// simulated root as the collateral's anchor.
    pub fn tdx_collateral_json(&self, o: &SimCollateralOptions) -> Vec<u8> {
        self.tdx_collateral_json_edited(o, |_, _| {})
    }

    /// [`Self::tdx_collateral_json`] with the TCB info and QE identity
    /// JSON values changed by `edit` before they are signed: collateral
    /// variants (statuses, levels, order) that still verify, for tests that
    /// hold the appraisal against another implementation.
    pub fn tdx_collateral_json_edited(
        &self,
        o: &SimCollateralOptions,
        edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
    ) -> Vec<u8> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.seed);
        let root_key = derive_key(&prk, b"root-key");
        let (root_cert, root_kp) = sim_root(&prk, &root_key);
        let (ca_cert, ca_kp) = sim_pck_ca(&prk, &root_cert, &root_kp);
        let signer_key = derive_key(&prk, b"tcb-signing-key");
        let signer_kp = rcgen_key(&signer_key);
        let mut sp = base_params(SIM_TCB_SIGNING_CN, serial(&prk, b"tcb-signing-serial"));
        sp.is_ca = IsCa::ExplicitNoCa;
        sp.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ];
        sp.use_authority_key_identifier_extension = true;
        // Fixed parameters, P-256 keys: generation cannot fail.
        let signer_cert = sp
            .signed_by(&signer_kp, &root_cert, &root_kp)
            .expect("fixed TCB signing parameters");

        let issued = crate::dcap::time::format_rfc3339_utc(o.issued_at_unix);
        let next =
            crate::dcap::time::format_rfc3339_utc(o.issued_at_unix.saturating_add(o.validity_secs));
        let mut tcb_info = sim_tcb_info(&issued, &next, o.platform_status);
        let mut qe_identity = sim_qe_identity(&issued, &next);
        edit(&mut tcb_info, &mut qe_identity);
        let (tcb_info, qe_identity) = (tcb_info.to_string(), qe_identity.to_string());
        let sign = |b: &[u8]| {
            let s: Signature = signer_key.sign(b);
            hex::encode(s.to_bytes())
        };
        let crl = |revoked: &[Vec<u8>], cert: &rcgen::Certificate, kp: &KeyPair| {
            let params = rcgen::CertificateRevocationListParams {
                this_update: offset_time(o.issued_at_unix),
                next_update: offset_time(o.issued_at_unix.saturating_add(o.validity_secs)),
                crl_number: SerialNumber::from_slice(&[1]),
                issuing_distribution_point: None,
                revoked_certs: revoked
                    .iter()
                    .map(|s| rcgen::RevokedCertParams {
                        serial_number: SerialNumber::from_slice(s),
                        revocation_time: offset_time(o.issued_at_unix),
                        reason_code: None,
                        invalidity_date: None,
                    })
                    .collect(),
                key_identifier_method: rcgen::KeyIdMethod::Sha256,
            };
            // CA issuers with cRLSign and valid, fixed parameters.
            params
                .signed_by(cert, kp)
                .expect("simulated CRL parameters")
                .der()
                .to_vec()
        };
        let root_pem = root_cert.pem();
        let signer_chain = format!("{}{}", signer_cert.pem(), root_pem);
        serde_json::json!({
            "pck_crl_issuer_chain": format!("{}{}", ca_cert.pem(), root_pem),
            "root_ca_crl": hex::encode(crl(&o.revoked_ca_serials, &root_cert, &root_kp)),
            "pck_crl": hex::encode(crl(&o.revoked_pck_serials, &ca_cert, &ca_kp)),
            "tcb_info_issuer_chain": signer_chain,
            "tcb_info_signature": sign(tcb_info.as_bytes()),
            "tcb_info": tcb_info,
            "qe_identity_issuer_chain": signer_chain,
            "qe_identity_signature": sign(qe_identity.as_bytes()),
            "qe_identity": qe_identity,
        })
        .to_string()
        .into_bytes()
    }

    /// [`Self::tdx_collateral_json`], parsed.
    pub fn tdx_collateral(&self, o: &SimCollateralOptions) -> crate::dcap::TdxCollateral {
        // The document was written just above in the shape the parser
        // reads, with well-formed values: parsing cannot fail.
        crate::dcap::TdxCollateral::from_json(&self.tdx_collateral_json(o))
            .expect("simulated collateral parses")
    }

    /// The simulated root certificate (DER), to configure as
    /// [`crate::verify::TrustAnchors::simulated_root_der`].
    pub fn root_certificate_der(&self) -> Vec<u8> {
        self.root_der.clone()
    }

    /// The simulated root certificate (PEM).
    pub fn root_certificate_pem(&self) -> String {
        self.root_pem.clone()
    }

    /// The PCK chain carried in quotes: PCK leaf then root, PEM.
    pub fn pck_chain_pem(&self) -> String {
        self.chain_pem.clone()
    }

    /// The simulated TCB status ([`SIMULATED_TCB_STATUS`]).
    pub fn tcb(&self) -> TcbStatus {
        SIMULATED_TCB_STATUS
    }

    /// The QE attestation public key (x || y).
    pub fn attestation_public_key(&self) -> [u8; 64] {
        point_xy(&self.ak_key)
    }

    /// A TDX quote v4 carrying `report_data` and the measurements `m`.
    pub fn tdx_quote(&self, report_data: &[u8; 64], m: &SimMeasurements) -> Vec<u8> {
        self.tdx_quote_with(report_data, m, &SimQuoteOptions::default())
    }

    /// A TDX quote with the layout choices of `o`: v4 with a TD 1.0 body,
    /// or v5 with a TD 1.5 body, and the QE vendor ID it names.
    pub fn tdx_quote_with(
        &self,
        report_data: &[u8; 64],
        m: &SimMeasurements,
        o: &SimQuoteOptions,
    ) -> Vec<u8> {
        let mut q = Vec::with_capacity(5000);
        // Header.
        let version: u16 = if o.td15.is_some() { 5 } else { 4 };
        q.extend_from_slice(&version.to_le_bytes());
        q.extend_from_slice(&ATT_KEY_TYPE_ECDSA_P256.to_le_bytes());
        q.extend_from_slice(&TEE_TYPE_TDX.to_le_bytes());
        q.extend_from_slice(&0u16.to_le_bytes()); // QE SVN
        q.extend_from_slice(&0u16.to_le_bytes()); // PCE SVN
        q.extend_from_slice(&o.qe_vendor_id);
        q.extend_from_slice(&[0u8; 20]); // user data
        if o.td15.is_some() {
            // Body descriptor: type 3 (TD 1.5 report), 648 bytes.
            q.extend_from_slice(&3u16.to_le_bytes());
            q.extend_from_slice(&648u32.to_le_bytes());
        }
        // TD 1.0 report body.
        q.extend_from_slice(&m.tee_tcb_svn);
        q.extend_from_slice(&m.mrseam);
        q.extend_from_slice(&[0u8; 48]); // MRSIGNERSEAM (Intel module: zero)
        q.extend_from_slice(&[0u8; 8]); // SEAMATTRIBUTES
        q.extend_from_slice(&m.td_attributes.to_le_bytes());
        q.extend_from_slice(&m.xfam.to_le_bytes());
        q.extend_from_slice(&m.mrtd);
        q.extend_from_slice(&m.mrconfigid);
        q.extend_from_slice(&m.mrowner);
        q.extend_from_slice(&m.mrownerconfig);
        for r in &m.rtmr {
            q.extend_from_slice(r);
        }
        q.extend_from_slice(report_data);
        if let Some(td15) = &o.td15 {
            q.extend_from_slice(&td15.tee_tcb_svn2);
            q.extend_from_slice(&td15.mrservicetd);
        }

        let quote_sig: Signature = self.ak_key.sign(&q);
        let ak = self.attestation_public_key();
        let qe_auth: Vec<u8> = (0u8..32).collect();
        let qe_report = self.qe_report(&ak, &qe_auth, o.qe_misc_select);
        let qe_sig: Signature = self.pck_key.sign(&qe_report);

        let chain = self.chain_pem.as_bytes();
        let mut cert = Vec::with_capacity(1024 + chain.len());
        cert.extend_from_slice(&qe_report);
        cert.extend_from_slice(&qe_sig.to_bytes());
        cert.extend_from_slice(&len16(qe_auth.len()).to_le_bytes());
        cert.extend_from_slice(&qe_auth);
        cert.extend_from_slice(&CERT_DATA_PCK_CHAIN.to_le_bytes());
        cert.extend_from_slice(&len32(chain.len()).to_le_bytes());
        cert.extend_from_slice(chain);

        let mut sig = Vec::with_capacity(134 + cert.len());
        sig.extend_from_slice(&quote_sig.to_bytes());
        sig.extend_from_slice(&ak);
        sig.extend_from_slice(&CERT_DATA_QE_REPORT.to_le_bytes());
        sig.extend_from_slice(&len32(cert.len()).to_le_bytes());
        sig.extend_from_slice(&cert);

        q.extend_from_slice(&len32(sig.len()).to_le_bytes());
        q.extend_from_slice(&sig);
        q
    }

    /// The simulated QE's SGX report body, binding the attestation key.
    fn qe_report(&self, ak: &[u8; 64], qe_auth: &[u8], misc_select: u32) -> [u8; 384] {
        let mut r = [0u8; 384];
        r[16..20].copy_from_slice(&misc_select.to_le_bytes());
        // ATTRIBUTES at 48: INIT | MODE64BIT | PROVISIONKEY, XFRM 0xe7.
        r[48] = 0x15;
        r[56] = 0xe7;
        r[64..96].copy_from_slice(&Sha256::digest(b"trusted-loader simulated QE"));
        r[128..160].copy_from_slice(&Sha256::digest(b"trusted-loader simulated QE signer"));
        r[256..258].copy_from_slice(&2u16.to_le_bytes()); // ISVPRODID (TD QE)
        let mut h = Sha256::new();
        h.update(ak);
        h.update(qe_auth);
        r[320..352].copy_from_slice(&h.finalize());
        r
    }
}

/// Layout choices for [`SimTee::tdx_quote_with`]. [`Default`]: quote v4,
/// TD 1.0 body, QE vendor ID [`SIM_QE_VENDOR_ID`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimQuoteOptions {
    /// The QE vendor ID in the header (default [`SIM_QE_VENDOR_ID`], which
    /// is Intel's, as real quotes carry).
    pub qe_vendor_id: [u8; 16],
    /// `Some`: a quote v5 with a TD 1.5 body carrying these fields.
    pub td15: Option<SimTd15>,
    /// MISCSELECT of the QE's report (0 by default, as the simulated QE
    /// identity expects under its all-ones mask).
    pub qe_misc_select: u32,
}

impl Default for SimQuoteOptions {
    fn default() -> Self {
        SimQuoteOptions {
            qe_vendor_id: SIM_QE_VENDOR_ID,
            td15: None,
            qe_misc_select: 0,
        }
    }
}

/// The fields a TD 1.5 body adds to a TD 1.0 one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimTd15 {
    /// The TCB the TD runs on now (after a TD-preserving module update).
    pub tee_tcb_svn2: [u8; 16],
    /// The bound service TD's measurement (zero: none).
    pub mrservicetd: [u8; 48],
}

pub use crate::tdx::INTEL_QE_VENDOR_ID;

/// What [`SimTee::tdx_collateral_json`] produces.
///
/// TCB info (`id` `TDX`, version 3, FMSPC [`SIM_FMSPC`], PCE-ID
/// [`SIM_PCE_ID`], tcbEvaluationDataNumber 17): `tdxModule` and one module
/// identity `TDX_01` (MRSIGNER zero, attributes zero under an all-ones mask)
/// with levels isvsvn 4 `UpToDate` and isvsvn 2 `OutOfDate`; platform
/// levels, best first: the simulated platform's own TCB
/// ([`SIM_CPU_SVN_COMPONENTS`], PCESVN [`SIM_PCE_SVN`], TDX components
/// `00 00 03 00..`) with `platform_status`, then a lower one (all SGX
/// components 1, PCESVN 5, TDX components zero) `OutOfDate` with advisory
/// `SIM-SA-00001`. QE identity (`TD_QE`, version 2): the simulated QE's
/// MRSIGNER and ISVPRODID 2, MISCSELECT 0 under mask FFFFFFFF, ATTRIBUTES
/// 11.. under mask FBFFFFFFFFFFFFFF0..., one level isvsvn 0 `UpToDate`.
/// Both are signed by the simulated TCB signing key (chain: TCB signing
/// certificate, root). The root CA CRL is signed by the root, the PCK CRL by
/// the simulated PCK CA. Every dated item runs from `issued_at_unix` for
/// `validity_secs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimCollateralOptions {
    /// issueDate of TCB info and QE identity, thisUpdate of both CRLs.
    pub issued_at_unix: u64,
    /// nextUpdate = issued_at_unix + validity_secs.
    pub validity_secs: u64,
    /// Serials (DER INTEGER content bytes) the PCK CRL lists, e.g.
    /// [`SimTee::pck_serial`].
    pub revoked_pck_serials: Vec<Vec<u8>>,
    /// Serials the root CA CRL lists.
    pub revoked_ca_serials: Vec<Vec<u8>>,
    /// Status of the platform TCB level the simulated platform matches.
    pub platform_status: TcbStatus,
}

impl SimCollateralOptions {
    /// Collateral current at `now_unix` for 30 days (issued one hour
    /// before), nothing revoked, the simulated TCB `UpToDate`.
    pub fn at(now_unix: u64) -> Self {
        SimCollateralOptions {
            issued_at_unix: now_unix.saturating_sub(3600),
            validity_secs: 30 * 86_400,
            revoked_pck_serials: Vec::new(),
            revoked_ca_serials: Vec::new(),
            platform_status: TcbStatus::UpToDate,
        }
    }
}

fn status_text(s: TcbStatus) -> &'static str {
    match s {
        TcbStatus::UpToDate => "UpToDate",
        TcbStatus::SWHardeningNeeded => "SWHardeningNeeded",
        TcbStatus::ConfigurationNeeded => "ConfigurationNeeded",
        TcbStatus::ConfigurationAndSWHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
        TcbStatus::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
        TcbStatus::Revoked => "Revoked",
        // TCB info has no NotApplicable level; OutOfDate is the closest.
        _ => "OutOfDate",
    }
}

fn svn_list(svns: &[u8; 16]) -> serde_json::Value {
    serde_json::Value::Array(
        svns.iter()
            .map(|s| serde_json::json!({ "svn": s }))
            .collect(),
    )
}

fn sim_tcb_info(issued: &str, next: &str, status: TcbStatus) -> serde_json::Value {
    let mut tdx_own = [0u8; 16];
    tdx_own[2] = 3;
    let module = |id: Option<&str>| {
        let mut m = serde_json::json!({
            "mrsigner": hex::encode_upper([0u8; 48]),
            "attributes": "0000000000000000",
            "attributesMask": "FFFFFFFFFFFFFFFF",
        });
        if let Some(id) = id {
            m["id"] = id.into();
            m["tcbLevels"] = serde_json::json!([
                { "tcb": { "isvsvn": 4 }, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate" },
                { "tcb": { "isvsvn": 2 }, "tcbDate": "2023-08-09T00:00:00Z", "tcbStatus": "OutOfDate" },
            ]);
        }
        m
    };
    serde_json::json!({
        "id": "TDX",
        "version": 3,
        "issueDate": issued,
        "nextUpdate": next,
        "fmspc": hex::encode_upper(SIM_FMSPC),
        "pceId": hex::encode_upper(SIM_PCE_ID),
        "tcbType": 0,
        "tcbEvaluationDataNumber": 17,
        "tdxModule": module(None),
        "tdxModuleIdentities": [module(Some("TDX_01"))],
        "tcbLevels": [
            {
                "tcb": {
                    "sgxtcbcomponents": svn_list(&SIM_CPU_SVN_COMPONENTS),
                    "pcesvn": SIM_PCE_SVN,
                    "tdxtcbcomponents": svn_list(&tdx_own),
                },
                "tcbDate": "2024-03-13T00:00:00Z",
                "tcbStatus": status_text(status),
            },
            {
                "tcb": {
                    "sgxtcbcomponents": svn_list(&[1; 16]),
                    "pcesvn": 5,
                    "tdxtcbcomponents": svn_list(&[0; 16]),
                },
                "tcbDate": "2018-01-04T00:00:00Z",
                "tcbStatus": "OutOfDate",
                "advisoryIDs": ["SIM-SA-00001"],
            },
        ],
    })
}

fn sim_qe_identity(issued: &str, next: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "TD_QE",
        "version": 2,
        "issueDate": issued,
        "nextUpdate": next,
        "tcbEvaluationDataNumber": 17,
        "miscselect": "00000000",
        "miscselectMask": "FFFFFFFF",
        "attributes": "11000000000000000000000000000000",
        "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
        "mrsigner": hex::encode_upper(Sha256::digest(b"trusted-loader simulated QE signer")),
        "isvprodid": 2,
        "tcbLevels": [
            { "tcb": { "isvsvn": 0 }, "tcbDate": "2024-03-13T00:00:00Z", "tcbStatus": "UpToDate" }
        ],
    })
}

fn offset_time(unix: u64) -> time::OffsetDateTime {
    let t = i64::try_from(unix.min(253_402_300_799)).unwrap_or(0);
    // Clamped to 9999-12-31T23:59:59Z, within OffsetDateTime's range.
    time::OffsetDateTime::from_unix_timestamp(t).expect("clamped timestamp")
}

/// OID arcs of the Intel SGX extension (1.2.840.113741.1.13.1).
const SGX_EXTENSION_ARCS: &[u64] = &[1, 2, 840, 113741, 1, 13, 1];

/// DER of the Intel SGX extension as Intel's PCK certificates carry it:
/// `SEQUENCE { PPID, TCB { comp01..16, pcesvn, cpusvn }, PCE-ID, FMSPC,
/// SGX type }`, each entry `SEQUENCE { OID, value }`.
fn sgx_extension(ppid_seed: &[u8; 32]) -> Vec<u8> {
    use der::asn1::{ObjectIdentifier, OctetStringRef};
    use der::Encode;
    const BASE: &str = "1.2.840.113741.1.13.1";
    // Fixed OIDs, small integers and short octet strings: encoding cannot
    // fail.
    let oid = |tail: &str| {
        ObjectIdentifier::new(&format!("{BASE}{tail}"))
            .expect("fixed OID")
            .to_der()
            .expect("OID encodes")
    };
    let octets = |b: &[u8]| {
        OctetStringRef::new(b)
            .expect("short octet string")
            .to_der()
            .expect("octet string encodes")
    };
    let int = |v: u16| v.to_der().expect("integer encodes");
    let entry = |tail: &str, value: Vec<u8>| der_seq(&[oid(tail), value].concat());
    let mut tcb = Vec::new();
    for (i, c) in SIM_CPU_SVN_COMPONENTS.iter().enumerate() {
        tcb.extend(entry(&format!(".2.{}", i + 1), int(u16::from(*c))));
    }
    tcb.extend(entry(".2.17", int(SIM_PCE_SVN)));
    tcb.extend(entry(".2.18", octets(&SIM_CPU_SVN_COMPONENTS)));
    let body = [
        entry(".1", octets(&ppid_seed[..16])),
        entry(".2", der_seq(&tcb)),
        entry(".3", octets(&SIM_PCE_ID)),
        entry(".4", octets(&SIM_FMSPC)),
        // SGX type: Standard (ENUMERATED 0).
        entry(".5", vec![0x0a, 0x01, 0x00]),
    ]
    .concat();
    der_seq(&body)
}

/// A DER SEQUENCE around `content` (at most 64 KiB, as used here).
fn der_seq(content: &[u8]) -> Vec<u8> {
    let n = content.len();
    let mut out = vec![0x30];
    let len = n.to_be_bytes();
    if n < 0x80 {
        out.extend_from_slice(&len[len.len() - 1..]);
    } else if n < 0x100 {
        out.push(0x81);
        out.extend_from_slice(&len[len.len() - 1..]);
    } else {
        out.push(0x82);
        out.extend_from_slice(&len[len.len() - 2..]);
    }
    out.extend_from_slice(content);
    out
}

fn sim_pck_ca(
    prk: &hkdf::Prk,
    root_cert: &rcgen::Certificate,
    root_kp: &KeyPair,
) -> (rcgen::Certificate, KeyPair) {
    let ca_kp = rcgen_key(&derive_key(prk, b"pck-ca-key"));
    let mut ca = base_params(SIM_PCK_CA_CN, serial(prk, b"pck-ca-serial"));
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.use_authority_key_identifier_extension = true;
    // Fixed parameters, P-256 keys: generation cannot fail.
    let ca_cert = ca
        .signed_by(&ca_kp, root_cert, root_kp)
        .expect("fixed PCK CA parameters");
    (ca_cert, ca_kp)
}

fn sim_root(prk: &hkdf::Prk, root_key: &SigningKey) -> (rcgen::Certificate, KeyPair) {
    let root_kp = rcgen_key(root_key);
    let mut root = base_params(SIM_ROOT_CN, serial(prk, b"root-serial"));
    root.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // The parameters are fixed and valid and the key is a P-256 key, so
    // certificate generation cannot fail.
    let root_cert = root.self_signed(&root_kp).expect("fixed root parameters");
    (root_cert, root_kp)
}

fn len16(n: usize) -> u16 {
    // Only called on fixed sizes below 1 KiB: the 32-byte QE auth data and
    // the simulated NVIDIA opaque fields.
    u16::try_from(n).expect("fixed sizes below 1 KiB")
}

fn len32(n: usize) -> u32 {
    // Only called on sizes of a few KiB built above.
    u32::try_from(n).expect("simulated quote parts are a few KiB")
}

fn derive_key(prk: &hkdf::Prk, label: &[u8]) -> SigningKey {
    for counter in 0u8..=255 {
        let bytes = okm32(prk, label, counter);
        if let Ok(k) = SigningKey::from_bytes(&bytes.into()) {
            return k;
        }
    }
    // 256 consecutive HKDF outputs outside [1, n-1] has probability below
    // 2^-8000; treat it as impossible.
    unreachable!("no valid P-256 scalar in 256 HKDF outputs")
}

fn okm32(prk: &hkdf::Prk, label: &[u8], counter: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    let info = [label, &[counter][..]];
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit.
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output of 32 bytes");
    out
}

fn serial(prk: &hkdf::Prk, label: &[u8]) -> SerialNumber {
    SerialNumber::from_slice(&serial_bytes(prk, label))
}

fn serial_bytes(prk: &hkdf::Prk, label: &[u8]) -> [u8; 16] {
    let s = okm32(prk, label, 0);
    let mut out = [0u8; 16];
    out.copy_from_slice(&s[..16]);
    // Positive and non-zero, 16 bytes.
    out[0] = (out[0] & 0x7f) | 0x40;
    out
}

fn base_params(cn: &str, serial: SerialNumber) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    p.serial_number = Some(serial);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "trusted-loader");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p
}

fn point_xy(k: &SigningKey) -> [u8; 64] {
    let p = k.verifying_key().to_encoded_point(false);
    let mut out = [0u8; 64];
    // An uncompressed P-256 point is 0x04 || x (32) || y (32).
    out.copy_from_slice(&p.as_bytes()[1..65]);
    out
}

/// An rcgen signer backed by a deterministic (RFC 6979) P-256 key.
struct DetP256 {
    key: SigningKey,
    public: Vec<u8>,
}

impl RemoteKeyPair for DetP256 {
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let sig: Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn rcgen_key(k: &SigningKey) -> KeyPair {
    let public = k
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    // from_remote only records the signer; it cannot fail for an ECDSA
    // P-256 algorithm.
    KeyPair::from_remote(Box::new(DetP256 {
        key: k.clone(),
        public,
    }))
    .expect("remote P-256 key pair")
}

// ---------------------------------------------------------------------------
// Simulated SEV-SNP.
//
// The simulated SNP chain is VCEK (P-384) <- ASK (P-384, ECDSA-SHA384)
// <- the simulated root (the same P-256 root as the TDX chain, ECDSA-SHA256).
// AMD's real ARK and ASK are RSA-4096 with RSASSA-PSS; only this simulated
// chain uses ECDSA for its CA certificates. Derivation labels (same HKDF as
// above): `snp-ask-key`, `snp-ask-serial`, `snp-vcek-key` (info followed by
// the 8 bytes of REPORTED_TCB, so each TCB has its own VCEK as on real
// chips), `snp-chip-id` (64 bytes: two 32-byte outputs, counters 0 and 1).
// Reports are version 3 with Milan's CPUID (family 0x19, model 0x01,
// stepping 1) and the VCEK names product "Milan-B0".

/// Common name of the simulated SNP ASK.
pub const SIM_SNP_ASK_CN: &str = "SEV-Milan (trusted-loader simulated ASK, NOT FOR PRODUCTION)";

/// What the simulated SNP guest reports. [`Default`]: MEASUREMENT =
/// SHA-384("trusted-loader simulated SNP measurement"), HOST_DATA zero,
/// POLICY 0x30000 (SMT allowed, reserved bit 17, not debug), VMPL 0,
/// REPORTED_TCB boot loader 3, TEE 0, SNP 8, microcode 115 (Milan layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSnpMeasurements {
    pub measurement: [u8; 48],
    pub host_data: [u8; 32],
    pub policy: u64,
    pub vmpl: u32,
    pub guest_svn: u32,
    pub family_id: [u8; 16],
    pub image_id: [u8; 16],
    pub id_key_digest: [u8; 48],
    pub author_key_digest: [u8; 48],
    /// Raw TCB_VERSION (Milan layout); also the VCEK's SPLs.
    pub reported_tcb: u64,
}

impl Default for SimSnpMeasurements {
    fn default() -> Self {
        SimSnpMeasurements {
            measurement: Sha384::digest(b"trusted-loader simulated SNP measurement").into(),
            host_data: [0u8; 32],
            policy: 0x30000,
            vmpl: 0,
            guest_svn: 0,
            family_id: [0u8; 16],
            image_id: [0u8; 16],
            id_key_digest: [0u8; 48],
            author_key_digest: [0u8; 48],
            reported_tcb: u64::from_le_bytes([3, 0, 0, 0, 0, 0, 8, 115]),
        }
    }
}

impl SimTee {
    fn snp_parts(
        &self,
    ) -> (
        rcgen::Certificate,
        KeyPair,
        rcgen::Certificate,
        KeyPair,
        hkdf::Prk,
    ) {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.seed);
        let root_key = derive_key(&prk, b"root-key");
        let (root_cert, root_kp) = sim_root(&prk, &root_key);
        let ask_key = derive_key384(&prk, b"snp-ask-key");
        let ask_kp = rcgen_key384(&ask_key);
        let mut ask = base_params(SIM_SNP_ASK_CN, serial(&prk, b"snp-ask-serial"));
        ask.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ask.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Fixed parameters, supported keys: generation cannot fail.
        let ask_cert = ask
            .signed_by(&ask_kp, &root_cert, &root_kp)
            .expect("fixed ASK parameters");
        (root_cert, root_kp, ask_cert, ask_kp, prk)
    }

    /// The simulated chip's CHIP_ID.
    pub fn snp_chip_id(&self) -> [u8; 64] {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.seed);
        let mut id = [0u8; 64];
        id[..32].copy_from_slice(&okm32(&prk, b"snp-chip-id", 0));
        id[32..].copy_from_slice(&okm32(&prk, b"snp-chip-id", 1));
        id
    }

    /// An SEV-SNP attestation report (version 3, 1184 bytes) carrying
    /// `report_data` and `m`, and its chain, leaf first: VCEK, ASK, root.
    pub fn snp_report(
        &self,
        report_data: &[u8; 64],
        m: &SimSnpMeasurements,
    ) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (root_cert, _root_kp, ask_cert, ask_kp, prk) = self.snp_parts();
        let tcb = m.reported_tcb.to_le_bytes();
        let vcek_key = derive_key384(&prk, &[&b"snp-vcek-key"[..], &tcb[..]].concat());
        let vcek_kp = rcgen_key384(&vcek_key);
        let chip_id = self.snp_chip_id();

        let mut vcek = base_params("SEV-VCEK", SerialNumber::from_slice(&[0]));
        vcek.is_ca = IsCa::ExplicitNoCa;
        let int = |v: u8| {
            if v < 0x80 {
                vec![0x02, 0x01, v]
            } else {
                vec![0x02, 0x02, 0x00, v]
            }
        };
        let amd = |tail: &[u64], content: Vec<u8>| {
            let mut oid = vec![1, 3, 6, 1, 4, 1, 3704, 1];
            oid.extend_from_slice(tail);
            rcgen::CustomExtension::from_oid_content(&oid, content)
        };
        let mut name = vec![0x16, 8];
        name.extend_from_slice(b"Milan-B0");
        vcek.custom_extensions = vec![
            amd(&[1], int(1)),
            amd(&[2], name),
            amd(&[3, 1], int(tcb[0])),
            amd(&[3, 2], int(tcb[1])),
            amd(&[3, 3], int(tcb[6])),
            amd(&[3, 8], int(tcb[7])),
            amd(&[4], chip_id.to_vec()),
        ];
        // Fixed parameters, supported keys: generation cannot fail.
        let vcek_cert = vcek
            .signed_by(&vcek_kp, &ask_cert, &ask_kp)
            .expect("fixed VCEK parameters");

        let mut r = vec![0u8; crate::snp::report::REPORT_LEN];
        {
            use crate::snp::report::offset as o;
            let mut put = |at: usize, b: &[u8]| r[at..at + b.len()].copy_from_slice(b);
            put(o::VERSION, &3u32.to_le_bytes());
            put(o::GUEST_SVN, &m.guest_svn.to_le_bytes());
            put(o::POLICY, &m.policy.to_le_bytes());
            put(o::FAMILY_ID, &m.family_id);
            put(o::IMAGE_ID, &m.image_id);
            put(o::VMPL, &m.vmpl.to_le_bytes());
            put(o::SIGNATURE_ALGO, &1u32.to_le_bytes());
            put(o::CURRENT_TCB, &tcb);
            put(o::PLATFORM_INFO, &1u64.to_le_bytes());
            put(o::KEY_INFO, &0u32.to_le_bytes());
            put(o::REPORT_DATA, report_data);
            put(o::MEASUREMENT, &m.measurement);
            put(o::HOST_DATA, &m.host_data);
            put(o::ID_KEY_DIGEST, &m.id_key_digest);
            put(o::AUTHOR_KEY_DIGEST, &m.author_key_digest);
            let id = Sha256::digest([&self.seed[..], report_data].concat());
            put(o::REPORT_ID, &id);
            put(o::REPORT_ID_MA, &[0xff; 32]);
            put(o::REPORTED_TCB, &tcb);
            put(o::CPUID_FAM_ID, &[0x19, 0x01, 0x01]);
            put(o::CHIP_ID, &chip_id);
            put(o::COMMITTED_TCB, &tcb);
            put(o::CURRENT_BUILD, &[29, 55, 1]);
            put(o::COMMITTED_BUILD, &[29, 55, 1]);
            put(o::LAUNCH_TCB, &tcb);
        }
        let sig: p384::ecdsa::Signature = {
            use p384::ecdsa::signature::Signer as _;
            vcek_key.sign(&r[..crate::snp::report::SIGNED_LEN])
        };
        let sb = sig.to_bytes();
        let (rr, ss) = sb.split_at(48);
        for (i, b) in rr.iter().rev().enumerate() {
            r[crate::snp::report::offset::SIGNATURE_R + i] = *b;
        }
        for (i, b) in ss.iter().rev().enumerate() {
            r[crate::snp::report::offset::SIGNATURE_S + i] = *b;
        }
        (
            r,
            vec![
                vcek_cert.der().to_vec(),
                ask_cert.der().to_vec(),
                root_cert.der().to_vec(),
            ],
        )
    }

    /// A CRL of the simulated root, valid 2024-01-01..2099-01-01, that
    /// revokes the simulated SNP ASK when `revoke_ask` is set.
    pub fn snp_crl(&self, revoke_ask: bool) -> Vec<u8> {
        let (root_cert, root_kp, _, _, prk) = self.snp_parts();
        let revoked_certs = if revoke_ask {
            vec![rcgen::RevokedCertParams {
                serial_number: serial(&prk, b"snp-ask-serial"),
                revocation_time: rcgen::date_time_ymd(2024, 6, 1),
                reason_code: None,
                invalidity_date: None,
            }]
        } else {
            vec![]
        };
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from_slice(&[1]),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        // Fixed, valid parameters and a CA root with cRLSign.
        params
            .signed_by(&root_cert, &root_kp)
            .expect("fixed CRL parameters")
            .der()
            .to_vec()
    }
}

fn derive_key384(prk: &hkdf::Prk, label: &[u8]) -> p384::ecdsa::SigningKey {
    for counter in 0u8..=255 {
        let mut bytes = [0u8; 48];
        let info = [label, &[counter][..]];
        // 48 bytes is far below HKDF-SHA256's output limit.
        prk.expand(&info, Len48)
            .and_then(|okm| okm.fill(&mut bytes))
            .expect("HKDF output of 48 bytes");
        if let Ok(k) = p384::ecdsa::SigningKey::from_bytes(&bytes.into()) {
            return k;
        }
    }
    // As for P-256: 256 invalid scalars in a row is impossible in practice.
    unreachable!("no valid P-384 scalar in 256 HKDF outputs")
}

/// HKDF output length of 48 bytes (a P-384 scalar).
struct Len48;

impl hkdf::KeyType for Len48 {
    fn len(&self) -> usize {
        48
    }
}

/// An rcgen signer backed by a deterministic (RFC 6979) P-384 key.
struct DetP384 {
    key: p384::ecdsa::SigningKey,
    public: Vec<u8>,
}

impl RemoteKeyPair for DetP384 {
    fn public_key(&self) -> &[u8] {
        &self.public
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use p384::ecdsa::signature::Signer as _;
        let sig: p384::ecdsa::Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P384_SHA384
    }
}

fn rcgen_key384(k: &p384::ecdsa::SigningKey) -> KeyPair {
    let public = k
        .verifying_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    // from_remote only records the signer; it cannot fail for ECDSA P-384.
    KeyPair::from_remote(Box::new(DetP384 {
        key: k.clone(),
        public,
    }))
    .expect("remote P-384 key pair")
}

// ---------------------------------------------------------------------------
// Simulated NVIDIA devices (GPUs and NVSwitches).
//
// The device chain is leaf (P-384, with the TCG DICE FWID extension that
// NVIDIA's device leaves carry) <- the simulated NVIDIA device root (P-384,
// self-signed); reports are SPDM 1.1 GET_MEASUREMENTS request + MEASUREMENTS
// response in NVIDIA's layout, signed (deterministic ECDSA P-384 / SHA-384,
// raw r || s) with the leaf key. Derivation labels (same HKDF as above):
// `nv-root-key`, `nv-root-serial`, and for device `n` of a kind
// `nv-{gpu,nvswitch}-key`, `-serial`, `-fwid`, each followed by `n` as 4
// big-endian bytes. Measurement values depend on the kind and the index only
// (the same firmware on every device of a kind), so one order's reference
// values fit all of them.

/// Common name of the simulated NVIDIA device root.
pub const SIM_NV_ROOT_CN: &str = "trusted-loader simulated NVIDIA device root (NOT FOR PRODUCTION)";
/// Number of measurement blocks in a simulated NVIDIA report (indices 1..=4).
pub const SIM_NV_MEASUREMENTS: u8 = 4;
/// Driver version in simulated GPU reports (switch reports carry none).
pub const SIM_GPU_DRIVER_VERSION: &str = "580.95.05";
/// VBIOS version of simulated GPUs, as [`crate::nvidia::format_vbios_version`] renders it.
pub const SIM_GPU_VBIOS_VERSION: &str = "96.00.74.00.1a";
/// Firmware version of simulated NVSwitches, rendered likewise.
pub const SIM_NVSWITCH_VBIOS_VERSION: &str = "96.10.55.00.01";

/// Which kind of NVIDIA device to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimNvKind {
    /// A Hopper-class GPU (reports through NVML).
    Gpu,
    /// An LS10 NVSwitch (reports through NSCQ).
    NvSwitch,
}

impl SimNvKind {
    fn label(self) -> &'static str {
        match self {
            SimNvKind::Gpu => "gpu",
            SimNvKind::NvSwitch => "nvswitch",
        }
    }
}

/// One simulated NVIDIA device: its chain and its signing key.
#[derive(Clone)]
pub struct SimNvDevice {
    kind: SimNvKind,
    key: p384::ecdsa::SigningKey,
    fwid: [u8; 48],
    chain_der: Vec<Vec<u8>>,
    chain_pem: String,
}

impl core::fmt::Debug for SimNvDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimNvDevice")
            .field("kind", &self.kind)
            .field("fwid", &hex::encode(self.fwid))
            .finish_non_exhaustive()
    }
}

fn indexed(label: &str, part: &str, n: u32) -> Vec<u8> {
    let mut v = format!("nv-{label}-{part}").into_bytes();
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// The content of NVIDIA's FWID extension (OID 2.23.133.5.4.1):
/// `SEQUENCE { INTEGER 1, SEQUENCE { OID sha384, OCTET STRING fwid } }`.
fn fwid_extension(fwid: &[u8; 48]) -> Vec<u8> {
    let mut inner = vec![
        0x30, 0x3d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x04, 0x30,
    ];
    inner.extend_from_slice(fwid);
    // 3 + 63 bytes: short-form lengths throughout.
    let mut ext = vec![0x30, 0x42, 0x02, 0x01, 0x01];
    ext.extend_from_slice(&inner);
    ext
}

impl SimTee {
    fn nv_root(&self) -> (rcgen::Certificate, KeyPair) {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.seed);
        let kp = rcgen_key384(&derive_key384(&prk, b"nv-root-key"));
        let mut p = base_params(SIM_NV_ROOT_CN, serial(&prk, b"nv-root-serial"));
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Fixed, valid parameters and a P-384 key: generation cannot fail.
        let cert = p.self_signed(&kp).expect("fixed NVIDIA root parameters");
        (cert, kp)
    }

    /// The simulated NVIDIA device root (DER), to trust explicitly
    /// ([`crate::nvidia::GpuAnchors::from_der`]).
    pub fn nvidia_root_der(&self) -> Vec<u8> {
        self.nv_root().0.der().to_vec()
    }

    /// Simulated NVIDIA device `n` of `kind` (see the section comment).
    pub fn nvidia_device(&self, kind: SimNvKind, n: u32) -> SimNvDevice {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.seed);
        let (root, root_kp) = self.nv_root();
        let label = kind.label();
        let key = derive_key384(&prk, &indexed(label, "key", n));
        let kp = rcgen_key384(&key);
        let mut fwid = [0u8; 48];
        fwid[..32].copy_from_slice(&okm32(&prk, &indexed(label, "fwid", n), 0));
        fwid[32..].copy_from_slice(&okm32(&prk, &indexed(label, "fwid", n), 1)[..16]);
        let cn = format!("trusted-loader simulated NVIDIA {label} {n} (NOT FOR PRODUCTION)");
        let mut p = base_params(&cn, serial(&prk, &indexed(label, "serial", n)));
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[2, 23, 133, 5, 4, 1],
            fwid_extension(&fwid),
        )];
        // Fixed, valid parameters and P-384 keys: signing cannot fail.
        let leaf = p
            .signed_by(&kp, &root, &root_kp)
            .expect("fixed NVIDIA device parameters");
        SimNvDevice {
            kind,
            key,
            fwid,
            chain_der: vec![leaf.der().to_vec(), root.der().to_vec()],
            chain_pem: format!("{}{}", leaf.pem(), root.pem()),
        }
    }
}

impl SimNvDevice {
    /// The device chain, DER, leaf first (leaf, simulated NVIDIA root).
    pub fn chain_der(&self) -> &[Vec<u8>] {
        &self.chain_der
    }

    /// The device chain as PEM text, leaf first (what NVML and NSCQ return).
    pub fn chain_pem(&self) -> &str {
        &self.chain_pem
    }

    /// The FWID in the leaf certificate and in the report.
    pub fn fwid(&self) -> [u8; 48] {
        self.fwid
    }

    /// Measurement `index` (1-based) of this kind of device.
    pub fn measurement(&self, index: u8) -> [u8; 48] {
        let mut h = Sha384::new();
        h.update(b"trusted-loader simulated NVIDIA measurement ");
        h.update(self.kind.label());
        h.update([index]);
        h.finalize().into()
    }

    /// A signed report answering `nonce`: an SPDM 1.1 GET_MEASUREMENTS
    /// request (all blocks, signature requested) and the MEASUREMENTS
    /// response with [`SIM_NV_MEASUREMENTS`] DMTF blocks, NVIDIA opaque data
    /// (GPUs: driver version, VBIOS version, FWID; switches: firmware version,
    /// FWID) and the signature over both.
    pub fn report(&self, nonce: &[u8; 32]) -> Vec<u8> {
        self.build_report(nonce, true)
    }

    /// As [`Self::report`] but without the FWID opaque field (some NVSwitch
    /// firmware omits it; a GPU report must carry it).
    pub fn report_without_fwid(&self, nonce: &[u8; 32]) -> Vec<u8> {
        self.build_report(nonce, false)
    }

    fn build_report(&self, nonce: &[u8; 32], with_fwid: bool) -> Vec<u8> {
        let mut r = vec![0x11, 0xe0, 0x01, 0xff];
        r.extend_from_slice(nonce);
        r.push(0);
        r.extend_from_slice(&[0x11, 0x60, 0, 0, SIM_NV_MEASUREMENTS]);
        let mut rec = Vec::new();
        for i in 1..=SIM_NV_MEASUREMENTS {
            // Index, DMTF specification, size 51; DMTF type 1 (firmware), 48 bytes.
            rec.extend_from_slice(&[i, 1, 51, 0, 1, 48, 0]);
            rec.extend_from_slice(&self.measurement(i));
        }
        r.extend_from_slice(&len32(rec.len()).to_le_bytes()[..3]);
        r.extend_from_slice(&rec);
        let mut responder_nonce = [0u8; 32];
        responder_nonce.copy_from_slice(&Sha256::digest([&nonce[..], &self.fwid].concat()));
        r.extend_from_slice(&responder_nonce);
        use crate::nvidia::spdm::opaque_type as ot;
        let mut fields: Vec<(u16, Vec<u8>)> = Vec::new();
        match self.kind {
            SimNvKind::Gpu => {
                let mut d = SIM_GPU_DRIVER_VERSION.as_bytes().to_vec();
                d.push(0);
                fields.push((ot::DRIVER_VERSION, d));
                fields.push((
                    ot::VBIOS_VERSION,
                    vec![0x00, 0x74, 0x00, 0x96, 0x1a, 0, 0, 0],
                ));
                // H100 SXM: project 1010, SKU 0200, chip SKU 882 (as in NVIDIA's RIM names).
                fields.push((ot::PROJECT, b"1010\0".to_vec()));
                fields.push((ot::PROJECT_SKU, b"0200\0".to_vec()));
                fields.push((ot::CHIP_SKU, b"882\0".to_vec()));
            }
            SimNvKind::NvSwitch => {
                fields.push((
                    ot::VBIOS_VERSION,
                    vec![0x00, 0x55, 0x10, 0x96, 0x01, 0, 0, 0],
                ));
                // LS10: project 5612, SKU 0002, chip SKU 890 (NVIDIA's switch verifier settings).
                fields.push((ot::PROJECT, b"5612\0".to_vec()));
                fields.push((ot::PROJECT_SKU, b"0002\0".to_vec()));
                fields.push((ot::CHIP_SKU, b"890\0".to_vec()));
            }
        }
        if with_fwid {
            fields.push((ot::FWID, self.fwid.to_vec()));
        }
        let mut op = Vec::new();
        for (k, v) in fields {
            op.extend_from_slice(&k.to_le_bytes());
            op.extend_from_slice(&len16(v.len()).to_le_bytes());
            op.extend_from_slice(&v);
        }
        r.extend_from_slice(&len16(op.len()).to_le_bytes());
        r.extend_from_slice(&op);
        use p384::ecdsa::signature::Signer as _;
        let sig: p384::ecdsa::Signature = self.key.sign(&r);
        r.extend_from_slice(&sig.to_bytes());
        r
    }
}
