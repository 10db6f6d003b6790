//! The loader's TPM 2.0 client.
//!
//! Commands and responses are `tpm2-protocol`'s typed structures (the TPM
//! 2.0 wire format is that crate's; [`wire`] adapts it to the evidence
//! crate's types and classifies response codes), sent over a [`Transport`]
//! (`/dev/tpmrm0` in the guest, swtpm's TCP socket in tests). The client
//! implements exactly what the loader needs:
//!
//! * [`Tpm::allocated_banks`], [`Tpm::pcr_read`], [`Tpm::pcr_extend`];
//! * an attestation key ([`Tpm::create_ak`]: ECC P-256, restricted, signing,
//!   ECDSA/SHA-256, created as a primary key so the same TPM and hierarchy
//!   always give the same key, which an operator can pin) and quotes
//!   ([`Tpm::quote`], [`Tpm::quote_evidence`]) verified by
//!   `tl_evidence::tpm::verify_quote`;
//! * a 32-byte seed sealed to a PolicyPCR policy ([`Tpm::seal_seed`],
//!   [`Tpm::unseal_seed`], [`SealedSeed`]) under the owner hierarchy's
//!   storage primary key, from which [`derive_encryption_key`] derives the
//!   loader's X25519 key with framed HKDF.
//!
//! **Qualifying data.** The loader quotes with its full 64-byte report data
//! as `extraData` (the bundle verifier requires exactly 64 bytes). TPM2B_DATA
//! holds `sizeof(TPMT_HA)`: 66 bytes on a TPM with SHA-512, 50 on one whose
//! largest hash is SHA-384. A TPM that refuses 64 bytes fails the quote
//! (`TPM_RC`, surfaced as `EVIDENCE_COLLECT_FAILED`); there is no silent
//! fallback to a hash of the report data.
//!
//! Authorization uses empty-password sessions for hierarchies and keys (the
//! loader owns a fresh vTPM) and an unsalted, unbound policy session for
//! unsealing; nothing secret crosses the transport except the unsealed seed,
//! which a resource-managed in-guest device keeps inside the CVM.

pub mod transport;
pub mod wire;

use aws_lc_rs::digest;
use tl_evidence::tpm::{PcrSelection, PcrValues, TpmQuoteEvidence};
use tl_seal::grant::RecipientSecretKey;
use zeroize::Zeroizing;

use tpm2_protocol::{
    basic::{TpmBuffer, TpmHandle, TpmUint16, TpmUint32},
    data::{
        Tpm2bAuth, Tpm2bData, Tpm2bDigest, Tpm2bEncryptedSecret, Tpm2bNonce, Tpm2bPrivate,
        Tpm2bPublic, Tpm2bSensitiveCreate, Tpm2bSensitiveData, TpmAlgId, TpmCap, TpmCc,
        TpmEccCurve, TpmSe, TpmaObject, TpmlDigestValues, TpmlPcrSelection, TpmsAuthCommand,
        TpmsEccParms, TpmsEccPoint, TpmsKeyedhashParms, TpmsSchemeHash, TpmsSensitiveCreate,
        TpmtEccScheme, TpmtHa, TpmtKdfScheme, TpmtKeyedhashScheme, TpmtPublic, TpmtSigScheme,
        TpmtSymDef, TpmuAsymScheme, TpmuCapabilities, TpmuHa, TpmuPublicId, TpmuPublicParms,
        TpmuSymKeyBits, TpmuSymMode,
    },
    frame::{
        TpmCreateCommand, TpmCreatePrimaryCommand, TpmCreatePrimaryResponse, TpmCreateResponse,
        TpmFlushContextCommand, TpmFlushContextResponse, TpmFrame, TpmGetCapabilityCommand,
        TpmGetCapabilityResponse, TpmLoadCommand, TpmLoadResponse, TpmPcrExtendCommand,
        TpmPcrExtendResponse, TpmPcrReadCommand, TpmPcrReadResponse, TpmPolicyPcrCommand,
        TpmPolicyPcrResponse, TpmQuoteCommand, TpmQuoteResponse, TpmResponse,
        TpmStartAuthSessionCommand, TpmStartAuthSessionResponse, TpmUnmarshalBody,
        TpmUnsealCommand,
    },
    TpmUnmarshal,
};

use crate::halt::{Halt, HaltCode};
pub use transport::{TcpTransport, TpmTransportConfig, Transport, UnixTransport};
use wire::*;

/// A TPM client error. Each variant has a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The device or socket failed.
    #[error("TPM transport: {0}")]
    Transport(String),
    /// The TPM's response does not parse.
    #[error("TPM response malformed: {0}")]
    Malformed(&'static str),
    /// The TPM refused a command.
    #[error("TPM2_{command} failed with response code 0x{rc:03x}")]
    Rc { command: &'static str, rc: u32 },
    /// The PCR policy of a sealed object is not satisfied (PCRs differ from
    /// the sealed values).
    #[error("TPM2_{command}: PCR policy not satisfied (response code 0x{rc:03x})")]
    PolicyFailed { command: &'static str, rc: u32 },
    /// A requested PCR bank or register is not allocated.
    #[error("PCR unavailable: {0}")]
    PcrUnavailable(String),
    /// A sealed-seed blob does not parse.
    #[error("sealed seed blob malformed: {0}")]
    SealedBlob(&'static str),
    /// The caller asked for something this client cannot encode.
    #[error("invalid TPM request: {0}")]
    Argument(&'static str),
    /// A command did not marshal (a value outside what the TPM 2.0 wire
    /// format can carry).
    #[error("TPM2_{command} does not encode: {detail}")]
    Encode {
        command: &'static str,
        detail: String,
    },
    /// A response (or a stored TPM structure) does not unmarshal.
    #[error("TPM2_{command} response malformed: {detail}")]
    Decode {
        command: &'static str,
        detail: String,
    },
}

impl TpmError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            TpmError::Transport(_) => "TPM_TRANSPORT",
            TpmError::Malformed(_) => "TPM_RESPONSE_MALFORMED",
            TpmError::Rc { .. } => "TPM_RC",
            TpmError::PolicyFailed { .. } => "TPM_POLICY_FAILED",
            TpmError::PcrUnavailable(_) => "TPM_PCR_UNAVAILABLE",
            TpmError::SealedBlob(_) => "TPM_SEALED_BLOB_MALFORMED",
            TpmError::Argument(_) | TpmError::Encode { .. } => "TPM_ARGUMENT",
            TpmError::Decode { .. } => "TPM_RESPONSE_MALFORMED",
        }
    }

    /// Classify a non-zero response code.
    pub(crate) fn from_rc(command: &'static str, rc: u32) -> TpmError {
        const RC_FMT1: u32 = 0x080;
        const TPM_RC_POLICY_FAIL: u32 = 0x01D;
        const TPM_RC_PCR_CHANGED: u32 = 0x167;
        let fmt1_policy_fail = rc & RC_FMT1 != 0 && rc & 0x3F == TPM_RC_POLICY_FAIL;
        if fmt1_policy_fail || rc == TPM_RC_PCR_CHANGED {
            TpmError::PolicyFailed { command, rc }
        } else {
            TpmError::Rc { command, rc }
        }
    }

    /// This error as a halt with `code`, keeping the reason code in the detail.
    pub fn halt(&self, code: HaltCode, context: &str) -> Halt {
        Halt::new(code, format!("{context}: {} ({})", self, self.code()))
    }
}

type Result<T> = core::result::Result<T, TpmError>;

/// How many times a command is sent again when the TPM asks for a retry.
pub const RETRIES: u32 = 10;

/// Which hierarchy a primary key is created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    Owner,
    Endorsement,
}

impl Hierarchy {
    fn handle(self) -> u32 {
        match self {
            Hierarchy::Owner => TPM_RH_OWNER,
            Hierarchy::Endorsement => TPM_RH_ENDORSEMENT,
        }
    }
}

/// A loaded attestation key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationKey {
    /// Transient handle (flush with [`Tpm::flush`]).
    pub handle: u32,
    /// `TPM2B_PUBLIC` as the TPM returned it (what `tl_evidence::tpm::parse_ak`
    /// reads, and what `TpmQuoteEvidence::ak_public` carries).
    pub public: Vec<u8>,
}

/// A quote as the TPM returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// `TPMS_ATTEST` (the contents of `TPM2B_ATTEST`).
    pub attest: Vec<u8>,
    /// `TPMT_SIGNATURE`.
    pub signature: Vec<u8>,
}

/// A TPM 2.0 client over a transport.
#[derive(Debug)]
pub struct Tpm {
    transport: Box<dyn Transport>,
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut c = digest::Context::new(&digest::SHA256);
    for p in parts {
        c.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(c.finish().as_ref());
    out
}

fn digest_len(alg: u16) -> Option<usize> {
    tl_evidence::tpm::attest::hash_alg_name(alg).map(|n| match n {
        "sha1" => 20,
        "sha256" => 32,
        "sha384" => 48,
        _ => 64,
    })
}

/// ECC parameters with the given symmetric definition and signing scheme,
/// on NIST P-256, without a KDF.
fn ecc_parms(symmetric: TpmtSymDef, scheme: TpmtEccScheme) -> TpmuPublicParms {
    TpmuPublicParms::Ecc(TpmsEccParms {
        symmetric,
        scheme,
        curve_id: TpmEccCurve::NistP256,
        kdf: TpmtKdfScheme::default(),
    })
}

fn no_symmetric() -> TpmtSymDef {
    TpmtSymDef {
        algorithm: TpmAlgId::Null,
        key_bits: TpmuSymKeyBits::Null,
        mode: TpmuSymMode::Null,
    }
}

/// The template of the attestation key: ECC P-256, restricted signing,
/// ECDSA with SHA-256, fixed to this TPM, never exported.
fn ak_template() -> TpmtPublic {
    TpmtPublic {
        object_type: TpmAlgId::Ecc,
        name_alg: TpmAlgId::Sha256,
        object_attributes: TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::SENSITIVE_DATA_ORIGIN
            | TpmaObject::USER_WITH_AUTH
            | TpmaObject::RESTRICTED
            | TpmaObject::SIGN_ENCRYPT,
        auth_policy: Tpm2bDigest::default(),
        parameters: ecc_parms(
            no_symmetric(),
            TpmtEccScheme {
                scheme: TpmAlgId::Ecdsa,
                details: TpmuAsymScheme::Hash(TpmsSchemeHash {
                    hash_alg: TpmAlgId::Sha256,
                }),
            },
        ),
        unique: TpmuPublicId::Ecc(TpmsEccPoint::default()),
    }
}

/// The template of the storage primary key the sealed seed lives under:
/// ECC P-256, restricted decryption, AES-128-CFB for its children.
fn srk_template() -> TpmtPublic {
    TpmtPublic {
        object_type: TpmAlgId::Ecc,
        name_alg: TpmAlgId::Sha256,
        object_attributes: TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::SENSITIVE_DATA_ORIGIN
            | TpmaObject::USER_WITH_AUTH
            | TpmaObject::NO_DA
            | TpmaObject::RESTRICTED
            | TpmaObject::DECRYPT,
        auth_policy: Tpm2bDigest::default(),
        parameters: ecc_parms(
            TpmtSymDef {
                algorithm: TpmAlgId::Aes,
                key_bits: TpmuSymKeyBits::Aes(TpmUint16::new(128)),
                mode: TpmuSymMode::Aes(TpmAlgId::Cfb),
            },
            TpmtEccScheme::default(),
        ),
        unique: TpmuPublicId::Ecc(TpmsEccPoint::default()),
    }
}

/// The template of the sealed data object: usable only through `policy`.
fn sealed_template(policy: &[u8; 32]) -> Result<TpmtPublic> {
    Ok(TpmtPublic {
        object_type: TpmAlgId::KeyedHash,
        name_alg: TpmAlgId::Sha256,
        object_attributes: TpmaObject::FIXED_TPM
            | TpmaObject::FIXED_PARENT
            | TpmaObject::NO_DA
            | TpmaObject::ADMIN_WITH_POLICY,
        auth_policy: Tpm2bDigest::try_from(&policy[..])
            .map_err(|_| TpmError::Argument("policy digest"))?,
        parameters: TpmuPublicParms::KeyedHash(TpmsKeyedhashParms {
            scheme: TpmtKeyedhashScheme::default(),
        }),
        unique: TpmuPublicId::KeyedHash(Tpm2bDigest::default()),
    })
}

/// The PolicyPCR policy digest (SHA-256 session) for `sel` with `values`:
/// `H(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(values in selection order))`.
pub fn policy_pcr_digest(sel: &[PcrSelection], values: &PcrValues) -> Result<[u8; 32]> {
    let mut concat = Vec::new();
    for s in sel {
        for p in &s.pcrs {
            let v = values
                .get(&s.hash_alg)
                .and_then(|b| b.get(p))
                .ok_or_else(|| TpmError::PcrUnavailable(format!("no value for PCR {p}")))?;
            concat.extend_from_slice(v);
        }
    }
    let pcr_digest = sha256(&[&concat]);
    Ok(sha256(&[
        &[0u8; 32],
        &TpmCc::PolicyPcr.value().to_be_bytes(),
        &tpml_bytes(sel)?,
        &pcr_digest,
    ]))
}

fn handle(h: u32) -> TpmHandle {
    TpmHandle::new(h)
}

impl Tpm {
    pub fn new(transport: Box<dyn Transport>) -> Self {
        Tpm { transport }
    }

    /// Open the configured transport.
    pub fn open(cfg: &TpmTransportConfig) -> Result<Self> {
        Ok(Tpm::new(cfg.open()?))
    }

    /// Send a command; a TPM that answers "retry" (`TPM_RC_RETRY`,
    /// `TPM_RC_YIELDED`, `TPM_RC_TESTING`) gets the same command again, up
    /// to [`RETRIES`] times, as TPM 2.0 Part 3 asks of callers.
    fn run(&mut self, cmd: &[u8]) -> Result<Vec<u8>> {
        const TPM_RC_YIELDED: u32 = 0x908;
        const TPM_RC_TESTING: u32 = 0x90A;
        const TPM_RC_RETRY: u32 = 0x922;
        let mut tries = 0;
        loop {
            let resp = self.transport.transact(cmd)?;
            let Some(rc) = response_code(&resp) else {
                return Ok(resp);
            };
            tries += 1;
            if tries > RETRIES || ![TPM_RC_YIELDED, TPM_RC_TESTING, TPM_RC_RETRY].contains(&rc) {
                return Ok(resp);
            }
            std::thread::sleep(std::time::Duration::from_millis(10 * tries as u64));
        }
    }

    /// Marshal `cmd`, send it, and parse the response as `R`.
    fn exec<C: TpmFrame, R: TpmUnmarshalBody>(
        &mut self,
        name: &'static str,
        cmd: &C,
        sessions: &[TpmsAuthCommand],
    ) -> Result<R> {
        let resp = self.run(&command(name, cmd, sessions)?)?;
        response(name, &resp)
    }

    /// As [`Tpm::exec`], also returning the response frame (for the exact
    /// bytes of a parameter).
    fn exec_raw<C: TpmFrame, R: TpmUnmarshalBody>(
        &mut self,
        name: &'static str,
        cmd: &C,
        sessions: &[TpmsAuthCommand],
    ) -> Result<(R, Zeroizing<Vec<u8>>)> {
        let resp = Zeroizing::new(self.run(&command(name, cmd, sessions)?)?);
        Ok((response(name, &resp)?, resp))
    }

    /// The PCR banks the TPM has allocated, with their allocated PCRs.
    pub fn allocated_banks(&mut self) -> Result<Vec<PcrSelection>> {
        let cmd = TpmGetCapabilityCommand {
            handles: [],
            cap: TpmCap::Pcrs,
            property: TpmUint32::new(0),
            property_count: TpmUint32::new(1),
        };
        let r: TpmGetCapabilityResponse = self.exec("GetCapability", &cmd, &[])?;
        let TpmuCapabilities::Pcrs(sel) = &r.capability_data.data else {
            return Err(TpmError::Malformed("capability is not TPM_CAP_PCRS"));
        };
        Ok(from_tpml(sel)
            .into_iter()
            .filter(|s| !s.pcrs.is_empty())
            .collect())
    }

    /// Read the selected PCRs. Every requested register must come back
    /// (`TPM_PCR_UNAVAILABLE` otherwise); the TPM returns at most eight
    /// digests per call, so this loops.
    pub fn pcr_read(&mut self, sel: &[PcrSelection]) -> Result<PcrValues> {
        let mut out = PcrValues::new();
        let mut remaining: Vec<PcrSelection> = sel.to_vec();
        loop {
            remaining.retain(|s| !s.pcrs.is_empty());
            if remaining.is_empty() {
                return Ok(out);
            }
            let cmd = TpmPcrReadCommand {
                handles: [],
                pcr_selection_in: to_tpml(&remaining)?,
            };
            let r: TpmPcrReadResponse = self.exec("PCR_Read", &cmd, &[])?;
            let got = from_tpml(&r.pcr_selection_out);
            let mut it = r.pcr_values.iter();
            let mut progress = false;
            for s in &got {
                let want = remaining.iter_mut().find(|w| w.hash_alg == s.hash_alg);
                let want = want.ok_or(TpmError::Malformed("PCR_Read returned another bank"))?;
                for p in &s.pcrs {
                    let pos = want
                        .pcrs
                        .iter()
                        .position(|x| x == p)
                        .ok_or(TpmError::Malformed("PCR_Read returned another PCR"))?;
                    want.pcrs.remove(pos);
                    let v = it
                        .next()
                        .ok_or(TpmError::Malformed("fewer digests than PCRs"))?;
                    if Some(v.len()) != digest_len(s.hash_alg) {
                        return Err(TpmError::Malformed("PCR digest length"));
                    }
                    out.entry(s.hash_alg).or_default().insert(*p, v.to_vec());
                    progress = true;
                }
            }
            if it.next().is_some() {
                return Err(TpmError::Malformed("more digests than PCRs"));
            }
            if !progress {
                let what = remaining
                    .iter()
                    .map(|s| format!("bank 0x{:04x} PCRs {:?}", s.hash_alg, s.pcrs))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(TpmError::PcrUnavailable(what));
            }
        }
    }

    /// Extend `pcr` with one digest per bank (`(hash alg, digest)`).
    pub fn pcr_extend(&mut self, pcr: u32, digests: &[(u16, Vec<u8>)]) -> Result<()> {
        if pcr >= PCR_COUNT {
            return Err(TpmError::Argument("PCR index above 23"));
        }
        let mut values = TpmlDigestValues::new();
        for (alg, d) in digests {
            if Some(d.len()) != digest_len(*alg) {
                return Err(TpmError::Argument("extend digest length"));
            }
            let digest = TpmBuffer::try_from(d.as_slice())
                .map_err(|_| TpmError::Argument("extend digest length"))?;
            values
                .try_push(TpmtHa {
                    hash_alg: TpmAlgId::try_from(*alg)
                        .map_err(|_| TpmError::Argument("unknown hash algorithm"))?,
                    digest: TpmuHa::Digest(digest),
                })
                .map_err(|_| TpmError::Argument("more than 8 banks"))?;
        }
        let cmd = TpmPcrExtendCommand {
            handles: [handle(pcr)],
            digests: values,
        };
        let _: TpmPcrExtendResponse = self.exec("PCR_Extend", &cmd, &[password_auth()])?;
        Ok(())
    }

    /// Create a primary key from `template` in `hierarchy`; returns its
    /// handle and `TPM2B_PUBLIC` as the TPM returned it.
    fn create_primary(
        &mut self,
        hierarchy: Hierarchy,
        template: TpmtPublic,
    ) -> Result<(u32, Vec<u8>)> {
        let cmd = TpmCreatePrimaryCommand {
            handles: [handle(hierarchy.handle())],
            in_sensitive: Tpm2bSensitiveCreate::default(),
            in_public: Tpm2bPublic { inner: template },
            outside_info: Tpm2bData::default(),
            creation_pcr: TpmlPcrSelection::new(),
        };
        let (r, raw): (TpmCreatePrimaryResponse, _) =
            self.exec_raw("CreatePrimary", &cmd, &[password_auth()])?;
        let public = leading_tpm2b(parameters(&raw, 1)?)?.to_vec();
        Ok((r.handles[0].value(), public))
    }

    /// Create (or re-create: primary keys are derived from the hierarchy's
    /// seed, so the same TPM gives the same key) the attestation key.
    pub fn create_ak(&mut self, hierarchy: Hierarchy) -> Result<AttestationKey> {
        let (handle, public) = self.create_primary(hierarchy, ak_template())?;
        Ok(AttestationKey { handle, public })
    }

    /// Flush a transient object or session.
    pub fn flush(&mut self, h: u32) -> Result<()> {
        let cmd = TpmFlushContextCommand {
            handles: [],
            flush_handle: handle(h),
        };
        let _: TpmFlushContextResponse = self.exec("FlushContext", &cmd, &[])?;
        Ok(())
    }

    /// Quote `sel` with `qualifying_data` as extraData (at most 64 bytes),
    /// signed by `ak` with its own scheme.
    pub fn quote(
        &mut self,
        ak: &AttestationKey,
        qualifying_data: &[u8],
        sel: &[PcrSelection],
    ) -> Result<Quote> {
        if qualifying_data.len() > 64 {
            return Err(TpmError::Argument("qualifying data longer than 64 bytes"));
        }
        let cmd = TpmQuoteCommand {
            handles: [handle(ak.handle)],
            qualifying_data: Tpm2bData::try_from(qualifying_data)
                .map_err(|_| TpmError::Argument("qualifying data"))?,
            in_scheme: TpmtSigScheme::default(), // the key's scheme
            pcr_select: to_tpml(sel)?,
        };
        let (r, raw): (TpmQuoteResponse, _) = self.exec_raw("Quote", &cmd, &[password_auth()])?;
        // The signed TPMS_ATTEST exactly as the TPM produced it.
        let attest = leading_tpm2b(parameters(&raw, 0)?)?
            .get(2..)
            .ok_or(TpmError::Malformed("TPM2B_ATTEST"))?
            .to_vec();
        let signature = to_bytes("TPMT_SIGNATURE", &r.signature)?;
        Ok(Quote { attest, signature })
    }

    /// A quote of `sel` over `report_data` with the PCR values it covers, as
    /// the bundle carries it. The PCRs are read before the quote and the
    /// quote's digest is checked against them; if a PCR changed in between,
    /// both are taken again (up to three times).
    pub fn quote_evidence(
        &mut self,
        ak: &AttestationKey,
        report_data: &[u8; 64],
        sel: &[PcrSelection],
    ) -> Result<TpmQuoteEvidence> {
        for _ in 0..3 {
            let values = self.pcr_read(sel)?;
            let q = self.quote(ak, report_data, sel)?;
            let attest = tl_evidence::tpm::TpmsAttest::parse(&q.attest)
                .map_err(|_| TpmError::Malformed("quoted TPMS_ATTEST"))?;
            let mut concat = Vec::new();
            for s in &attest.pcr_select {
                for p in &s.pcrs {
                    let v = values
                        .get(&s.hash_alg)
                        .and_then(|b| b.get(p))
                        .ok_or(TpmError::Malformed("quote selects an unread PCR"))?;
                    concat.extend_from_slice(v);
                }
            }
            // The AK signs with SHA-256 (its template), so the digest is SHA-256.
            if sha256(&[&concat]).as_slice() != attest.pcr_digest.as_slice() {
                continue;
            }
            let pcrs = values
                .iter()
                .map(|(alg, bank)| {
                    let name = tl_evidence::tpm::attest::hash_alg_name(*alg)
                        .ok_or(TpmError::Argument("unnamed PCR bank"))?;
                    Ok((
                        name.to_string(),
                        bank.iter().map(|(i, v)| (*i, hex::encode(v))).collect(),
                    ))
                })
                .collect::<Result<_>>()?;
            return Ok(TpmQuoteEvidence {
                attest: q.attest,
                signature: q.signature,
                ak_public: ak.public.clone(),
                pcrs,
            });
        }
        Err(TpmError::PcrUnavailable(
            "PCRs kept changing while quoting".into(),
        ))
    }

    /// Seal `seed` to the current values of `sel` (PolicyPCR).
    pub fn seal_seed(&mut self, seed: &[u8; 32], sel: &[PcrSelection]) -> Result<SealedSeed> {
        let values = self.pcr_read(sel)?;
        self.seal_seed_to(seed, sel, &values)
    }

    /// Seal `seed` to given (for example predicted) values of `sel`.
    pub fn seal_seed_to(
        &mut self,
        seed: &[u8; 32],
        sel: &[PcrSelection],
        values: &PcrValues,
    ) -> Result<SealedSeed> {
        if sel.iter().all(|s| s.pcrs.is_empty()) {
            return Err(TpmError::Argument("a seal must select at least one PCR"));
        }
        let policy = policy_pcr_digest(sel, values)?;
        let (srk, _) = self.create_primary(Hierarchy::Owner, srk_template())?;
        let result = (|| {
            let mut cmd = TpmCreateCommand {
                handles: [handle(srk)],
                in_sensitive: Tpm2bSensitiveCreate {
                    inner: TpmsSensitiveCreate {
                        user_auth: Tpm2bAuth::default(),
                        data: Tpm2bSensitiveData::try_from(&seed[..])
                            .map_err(|_| TpmError::Argument("seed"))?,
                    },
                },
                in_public: Tpm2bPublic {
                    inner: sealed_template(&policy)?,
                },
                outside_info: Tpm2bData::default(),
                creation_pcr: TpmlPcrSelection::new(),
            };
            let bytes = command("Create", &cmd, &[password_auth()]);
            // The command structure's copy of the seed is overwritten once
            // marshalled (the marshalled copy is zeroized on drop).
            cmd.in_sensitive = Tpm2bSensitiveCreate::default();
            std::hint::black_box(&cmd);
            let resp = self.run(&bytes?)?;
            let _: TpmCreateResponse = response("Create", &resp)?;
            let mut params = parameters(&resp, 0)?;
            let private = leading_tpm2b(params)?.to_vec();
            params = params.get(private.len()..).unwrap_or_default();
            let public = leading_tpm2b(params)?.to_vec();
            Ok(SealedSeed {
                selection: sel.to_vec(),
                private,
                public,
            })
        })();
        let _ = self.flush(srk);
        result
    }

    /// Unseal a seed: load it under the storage primary key, satisfy its
    /// PolicyPCR in a policy session with the TPM's current PCR values,
    /// unseal. PCRs that differ from the sealed values give
    /// `TPM_POLICY_FAILED`.
    pub fn unseal_seed(&mut self, sealed: &SealedSeed) -> Result<Zeroizing<[u8; 32]>> {
        let (srk, _) = self.create_primary(Hierarchy::Owner, srk_template())?;
        let mut handles = vec![srk];
        let result = self.unseal_under(srk, sealed, &mut handles);
        for h in handles.into_iter().rev() {
            let _ = self.flush(h);
        }
        result
    }

    fn unseal_under(
        &mut self,
        srk: u32,
        sealed: &SealedSeed,
        handles: &mut Vec<u32>,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let cmd = TpmLoadCommand {
            handles: [handle(srk)],
            in_private: unmarshal_all("TPM2B_PRIVATE", &sealed.private)?,
            in_public: unmarshal_all("TPM2B_PUBLIC", &sealed.public)?,
        };
        let r: TpmLoadResponse = self.exec("Load", &cmd, &[password_auth()])?;
        let item = r.handles[0].value();
        handles.push(item);

        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| TpmError::Argument("no randomness"))?;
        let cmd = TpmStartAuthSessionCommand {
            handles: [handle(TPM_RH_NULL), handle(TPM_RH_NULL)], // unbound, unsalted
            nonce_caller: Tpm2bNonce::try_from(&nonce[..])
                .map_err(|_| TpmError::Argument("nonce"))?,
            encrypted_salt: Tpm2bEncryptedSecret::default(),
            session_type: TpmSe::Policy,
            symmetric: no_symmetric(),
            auth_hash: TpmAlgId::Sha256,
        };
        let r: TpmStartAuthSessionResponse = self.exec("StartAuthSession", &cmd, &[])?;
        let session = r.handles[0].value();
        handles.push(session);

        let cmd = TpmPolicyPcrCommand {
            handles: [handle(session)],
            pcr_digest: Tpm2bDigest::default(), // the TPM's current values
            pcrs: to_tpml(&sealed.selection)?,
        };
        let _: TpmPolicyPcrResponse = self.exec("PolicyPCR", &cmd, &[])?;

        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| TpmError::Argument("no randomness"))?;
        let cmd = TpmUnsealCommand {
            handles: [handle(item)],
        };
        // The response holds the seed: it stays in zeroized memory and is
        // read from the checked frame, not copied into an owned structure.
        let resp = Zeroizing::new(self.run(&command(
            "Unseal",
            &cmd,
            &[policy_auth(session, &nonce)?],
        )?)?);
        let data = unseal_data(&resp)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if data.len() != 32 {
            return Err(TpmError::SealedBlob("unsealed data is not 32 bytes"));
        }
        seed.copy_from_slice(data);
        Ok(seed)
    }
}

/// Parse `bytes` as exactly one `T`.
fn unmarshal_all<T: TpmUnmarshal>(what: &'static str, bytes: &[u8]) -> Result<T> {
    match T::unmarshal(bytes) {
        Ok((v, [])) => Ok(v),
        Ok(_) => Err(TpmError::SealedBlob("trailing bytes in a TPM2B")),
        Err(e) => Err(TpmError::Decode {
            command: what,
            detail: e.to_string(),
        }),
    }
}

/// The `outData` of an Unseal response: the frame is checked by the
/// protocol crate (envelope, tag, sessions), and its parameter area must be
/// exactly one `TPM2B_SENSITIVE_DATA`.
fn unseal_data(resp: &[u8]) -> Result<&[u8]> {
    check_code("Unseal", resp)?;
    TpmResponse::cast(resp)
        .and_then(|f| f.validate(TpmCc::Unseal))
        .map_err(|e| decode_error("Unseal", e))?;
    let params = parameters(resp, 0)?;
    let data = leading_tpm2b(params)?;
    if data.len() != params.len() {
        return Err(TpmError::Malformed("trailing bytes after outData"));
    }
    data.get(2..).ok_or(TpmError::Malformed("outData"))
}

/// A seed sealed by [`Tpm::seal_seed`]: the PCR selection its policy covers
/// and the TPM's `TPM2B_PRIVATE` / `TPM2B_PUBLIC`. Only the TPM that sealed
/// it, with the same owner seed, can load it.
///
/// Encoding ([`SealedSeed::to_bytes`]): `"TLTPMSS1"` || `TPML_PCR_SELECTION`
/// || `TPM2B_PRIVATE` || `TPM2B_PUBLIC`, nothing after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSeed {
    selection: Vec<PcrSelection>,
    private: Vec<u8>,
    public: Vec<u8>,
}

const SEALED_MAGIC: &[u8; 8] = b"TLTPMSS1";

impl SealedSeed {
    /// The PCRs the seed is sealed to (PCR indices are below 24: checked
    /// when sealing and when parsing).
    pub fn selection(&self) -> &[PcrSelection] {
        &self.selection
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = SEALED_MAGIC.to_vec();
        // The selection was marshalled once already when sealing (or
        // checked when parsing), so it encodes; the TPM2B parts keep the
        // size prefixes the TPM returned them with.
        out.extend_from_slice(&tpml_bytes(&self.selection).unwrap_or_default());
        out.extend_from_slice(&self.private);
        out.extend_from_slice(&self.public);
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let rest = b
            .strip_prefix(SEALED_MAGIC)
            .ok_or(TpmError::SealedBlob("magic"))?;
        let (sel, rest) = TpmlPcrSelection::unmarshal(rest)
            .map_err(|_| TpmError::SealedBlob("TPML_PCR_SELECTION"))?;
        let selection = from_tpml(&sel);
        if selection
            .iter()
            .any(|s| s.pcrs.iter().any(|p| *p >= PCR_COUNT))
        {
            return Err(TpmError::SealedBlob("PCR index above 23"));
        }
        if selection.iter().all(|s| s.pcrs.is_empty()) {
            return Err(TpmError::SealedBlob("empty PCR selection"));
        }
        let private = leading_tpm2b(rest).map_err(|_| TpmError::SealedBlob("TPM2B_PRIVATE"))?;
        let rest = rest.get(private.len()..).unwrap_or_default();
        let public = leading_tpm2b(rest).map_err(|_| TpmError::SealedBlob("TPM2B_PUBLIC"))?;
        if rest.len() != public.len() {
            return Err(TpmError::SealedBlob("trailing bytes"));
        }
        // Both parts must be what Load accepts.
        unmarshal_all::<Tpm2bPrivate>("TPM2B_PRIVATE", private)
            .map_err(|_| TpmError::SealedBlob("TPM2B_PRIVATE"))?;
        unmarshal_all::<Tpm2bPublic>("TPM2B_PUBLIC", public)
            .map_err(|_| TpmError::SealedBlob("TPM2B_PUBLIC"))?;
        Ok(SealedSeed {
            selection,
            private: private.to_vec(),
            public: public.to_vec(),
        })
    }
}

/// Domain of the framed HKDF that turns a sealed seed into the loader's key.
pub const KEY_DOMAIN: &[u8] = b"trusted-loader/encryption-key/tpm-sealed/v1";

/// The loader's X25519 encryption key from an unsealed seed:
/// `seed' = HKDF-SHA256(salt = KEY_DOMAIN, ikm = seed,
///                      info = frame(KEY_DOMAIN) || frame(key_version as u32 BE))`,
/// then `RecipientSecretKey::from_seed(seed')` (frame(x) = u32 BE length || x).
/// Another key version gives an unrelated key.
pub fn derive_encryption_key(seed: &[u8; 32], key_version: u32) -> RecipientSecretKey {
    use aws_lc_rs::hkdf;
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let mut info = Vec::new();
    for f in [KEY_DOMAIN, &key_version.to_be_bytes()[..]] {
        info.extend_from_slice(&(f.len() as u32).to_be_bytes());
        info.extend_from_slice(f);
    }
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, KEY_DOMAIN).extract(seed);
    let mut okm = Zeroizing::new([0u8; 32]);
    // expand/fill only fail for an output longer than 255 hash lengths; 32
    // bytes is one block.
    prk.expand(&[&info], Len32)
        .and_then(|o| o.fill(okm.as_mut()))
        .expect("HKDF-SHA256 with a 32-byte output cannot fail");
    RecipientSecretKey::from_seed(&okm)
}

/// A bundle's CPU evidence for a TPM quote: kind `tpm-quote`, `quote` =
/// [`TpmQuoteEvidence`] JSON, the AK certificate chain (leaf first), if any.
pub fn cpu_evidence(
    ev: &TpmQuoteEvidence,
    ak_certificates: Vec<Vec<u8>>,
) -> tl_evidence::bundle::CpuEvidence {
    tl_evidence::bundle::CpuEvidence {
        kind: tl_evidence::bundle::CpuEvidenceKind::TpmQuote,
        quote: ev.to_json(),
        certificates: ak_certificates,
    }
}

/// Provisioning for `key_mode = "tpm-sealed"`: a fresh random seed sealed to
/// the current values of `sel`, and the encryption key it derives to (whose
/// public half owners can grant to before the loader ever runs).
pub fn provision_sealed_seed(
    tpm: &mut Tpm,
    sel: &[PcrSelection],
    key_version: u32,
) -> Result<(SealedSeed, RecipientSecretKey)> {
    let mut seed = Zeroizing::new([0u8; 32]);
    aws_lc_rs::rand::fill(seed.as_mut())
        .map_err(|_| TpmError::Argument("no randomness for the seed"))?;
    let sealed = tpm.seal_seed(&seed, sel)?;
    Ok((sealed, derive_encryption_key(&seed, key_version)))
}

/// Unseal `sealed` and derive the loader's encryption key; any failure is
/// a `KEY_DERIVATION_FAILED` halt (never a fallback to a fresh key).
pub fn unseal_encryption_key(
    tpm: &mut Tpm,
    sealed: &SealedSeed,
    key_version: u32,
) -> core::result::Result<RecipientSecretKey, Halt> {
    let seed = tpm
        .unseal_seed(sealed)
        .map_err(|e| e.halt(HaltCode::KeyDerivationFailed, "TPM-sealed seed"))?;
    Ok(derive_encryption_key(&seed, key_version))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_derivation_is_versioned_and_stable() {
        let seed = [7u8; 32];
        let a = derive_encryption_key(&seed, 1);
        let b = derive_encryption_key(&seed, 1);
        let c = derive_encryption_key(&seed, 2);
        let d = derive_encryption_key(&[8u8; 32], 1);
        assert_eq!(a.public_key(), b.public_key());
        assert_ne!(a.public_key(), c.public_key());
        assert_ne!(a.public_key(), d.public_key());
        // not the seed used directly
        assert_ne!(
            a.public_key(),
            RecipientSecretKey::from_seed(&seed).public_key()
        );
    }

    #[test]
    fn policy_digest_known_answer() {
        // PolicyPCR over sha256 PCR 0 = 0^32, computed independently:
        // H(0^32 || 0000017f || 00000001 000b 03 010000 || H(0^32)).
        let sel = [PcrSelection {
            hash_alg: 0x000b,
            pcrs: vec![0],
        }];
        let mut vals = PcrValues::new();
        vals.entry(0x000b).or_default().insert(0, vec![0u8; 32]);
        let mut pre = vec![0u8; 32];
        pre.extend_from_slice(&[0, 0, 1, 0x7f, 0, 0, 0, 1, 0, 0x0b, 3, 1, 0, 0]);
        pre.extend_from_slice(&sha256(&[&[0u8; 32]]));
        assert_eq!(policy_pcr_digest(&sel, &vals).unwrap(), sha256(&[&pre]));
        let empty = PcrValues::new();
        assert_eq!(
            policy_pcr_digest(&sel, &empty).unwrap_err().code(),
            "TPM_PCR_UNAVAILABLE"
        );
    }

    #[test]
    fn sealed_blob_roundtrip_and_tamper() {
        let s = SealedSeed {
            selection: vec![PcrSelection {
                hash_alg: 0x000b,
                pcrs: vec![7, 16],
            }],
            private: vec![0, 3, 1, 2, 3],
            public: wire::to_bytes(
                "public",
                &Tpm2bPublic {
                    inner: sealed_template(&[1; 32]).unwrap(),
                },
            )
            .unwrap(),
        };
        let b = s.to_bytes();
        assert_eq!(SealedSeed::from_bytes(&b).unwrap(), s);
        for cut in 0..b.len() {
            assert_eq!(
                SealedSeed::from_bytes(&b[..cut]).unwrap_err().code(),
                "TPM_SEALED_BLOB_MALFORMED",
                "cut {cut}"
            );
        }
        let mut long = b.clone();
        long.push(0);
        assert!(SealedSeed::from_bytes(&long).is_err());
        let mut magic = b.clone();
        magic[0] ^= 1;
        assert!(SealedSeed::from_bytes(&magic).is_err());
        let mut none = SEALED_MAGIC.to_vec();
        none.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(SealedSeed::from_bytes(&none).is_err());
    }

    /// The templates are the TPM 2.0 encodings operators can reproduce
    /// (an AK created from the same template and hierarchy seed is the same
    /// key, so it can be pinned).
    #[test]
    fn templates_known_answer() {
        let ak = wire::to_bytes("ak", &ak_template()).unwrap();
        assert_eq!(
            hex::encode(ak),
            "0023000b00050072000000100018000b0003001000000000"
        );
        let srk = wire::to_bytes("srk", &srk_template()).unwrap();
        assert_eq!(
            hex::encode(srk),
            "0023000b00030472000000060080004300100003001000000000"
        );
        let sealed = wire::to_bytes("sealed", &sealed_template(&[0xab; 32]).unwrap()).unwrap();
        assert_eq!(
            hex::encode(sealed),
            format!("0008000b000004920020{}00100000", "ab".repeat(32))
        );
    }

    proptest::proptest! {
        /// A lying TPM (or a corrupted blob) gets an error, never a panic:
        /// arbitrary bytes, and arbitrary bytes behind a well-formed success
        /// header, through every response parser the client uses.
        #[test]
        fn hostile_responses_are_errors(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600), sessions: bool) {
            let mut framed = vec![0x80, if sessions { 2 } else { 1 }, 0, 0, 0, 0, 0, 0, 0, 0];
            framed.extend_from_slice(&body);
            let n = framed.len() as u32;
            framed[2..6].copy_from_slice(&n.to_be_bytes());
            for r in [&body, &framed] {
                let _ = response::<TpmGetCapabilityResponse>("GetCapability", r);
                let _ = response::<TpmPcrReadResponse>("PCR_Read", r);
                let _ = response::<TpmCreatePrimaryResponse>("CreatePrimary", r);
                let _ = response::<TpmCreateResponse>("Create", r);
                let _ = response::<TpmLoadResponse>("Load", r);
                let _ = response::<TpmQuoteResponse>("Quote", r);
                let _ = response::<TpmStartAuthSessionResponse>("StartAuthSession", r);
                let _ = unseal_data(r);
                let _ = parameters(r, 1).and_then(leading_tpm2b);
                let _ = SealedSeed::from_bytes(r);
            }
        }
    }

    #[test]
    fn rc_classification() {
        assert_eq!(
            TpmError::from_rc("Unseal", 0x99d).code(),
            "TPM_POLICY_FAILED"
        );
        assert_eq!(
            TpmError::from_rc("Unseal", 0x167).code(),
            "TPM_POLICY_FAILED"
        );
        assert_eq!(TpmError::from_rc("Quote", 0x1d5).code(), "TPM_RC");
        let h = TpmError::from_rc("Unseal", 0x99d).halt(HaltCode::KeyDerivationFailed, "x");
        assert_eq!(h.code(), "KEY_DERIVATION_FAILED");
        assert!(h.detail.contains("TPM_POLICY_FAILED"));
    }
}
