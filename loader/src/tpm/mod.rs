//! The loader's TPM 2.0 client.
//!
//! A small command marshaller ([`wire`], pure) over a [`Transport`]
//! (`/dev/tpmrm0` in the guest, swtpm's TCP socket in tests). It implements
//! exactly what the loader needs:
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

use crate::halt::{Halt, HaltCode};
pub use transport::{TcpTransport, TpmTransportConfig, Transport};
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
            TpmError::Argument(_) => "TPM_ARGUMENT",
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

/// The template of the attestation key: ECC P-256, restricted signing,
/// ECDSA with SHA-256, fixed to this TPM, never exported.
fn ak_template() -> Vec<u8> {
    let mut w = W::default();
    w.u16(TPM_ALG_ECC)
        .u16(TPM_ALG_SHA256)
        .u32(FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | RESTRICTED | SIGN)
        .u16(0) // authPolicy
        .u16(TPM_ALG_NULL) // symmetric
        .u16(TPM_ALG_ECDSA)
        .u16(TPM_ALG_SHA256)
        .u16(TPM_ECC_NIST_P256)
        .u16(TPM_ALG_NULL) // kdf
        .u16(0) // unique.x
        .u16(0); // unique.y
    w.0
}

/// The template of the storage primary key the sealed seed lives under.
fn srk_template() -> Vec<u8> {
    let mut w = W::default();
    w.u16(TPM_ALG_ECC)
        .u16(TPM_ALG_SHA256)
        .u32(
            FIXED_TPM
                | FIXED_PARENT
                | SENSITIVE_DATA_ORIGIN
                | USER_WITH_AUTH
                | NO_DA
                | RESTRICTED
                | DECRYPT,
        )
        .u16(0)
        .u16(TPM_ALG_AES)
        .u16(128)
        .u16(TPM_ALG_CFB)
        .u16(TPM_ALG_NULL) // scheme
        .u16(TPM_ECC_NIST_P256)
        .u16(TPM_ALG_NULL)
        .u16(0)
        .u16(0);
    w.0
}

/// The template of the sealed data object: usable only through `policy`.
fn sealed_template(policy: &[u8; 32]) -> Result<Vec<u8>> {
    let mut w = W::default();
    w.u16(TPM_ALG_KEYEDHASH)
        .u16(TPM_ALG_SHA256)
        .u32(FIXED_TPM | FIXED_PARENT | NO_DA | ADMIN_WITH_POLICY)
        .tpm2b(policy)?
        .u16(TPM_ALG_NULL) // keyedhash scheme
        .u16(0); // unique
    Ok(w.0)
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
    let mut w = W::default();
    pcr_selection(&mut w, sel)?;
    Ok(sha256(&[
        &[0u8; 32],
        &TPM_CC_POLICY_PCR.to_be_bytes(),
        &w.0,
        &pcr_digest,
    ]))
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
            let rc = match resp.get(6..10) {
                Some([a, b, c, d]) => u32::from_be_bytes([*a, *b, *c, *d]),
                _ => return Ok(resp),
            };
            tries += 1;
            if tries > RETRIES || ![TPM_RC_YIELDED, TPM_RC_TESTING, TPM_RC_RETRY].contains(&rc) {
                return Ok(resp);
            }
            std::thread::sleep(std::time::Duration::from_millis(10 * tries as u64));
        }
    }

    /// The PCR banks the TPM has allocated, with their allocated PCRs.
    pub fn allocated_banks(&mut self) -> Result<Vec<PcrSelection>> {
        let mut p = W::default();
        p.u32(TPM_CAP_PCRS).u32(0).u32(1);
        let resp = self.run(&command(TPM_CC_GET_CAPABILITY, &[], &[], &p.0))?;
        let r = response("GetCapability", &resp, 0)?;
        let mut rd = R(r.params);
        let _more = rd.u8("moreData")?;
        if rd.u32("capability")? != TPM_CAP_PCRS {
            return Err(TpmError::Malformed("capability is not TPM_CAP_PCRS"));
        }
        let sel = parse_pcr_selection(&mut rd)?;
        Ok(sel.into_iter().filter(|s| !s.pcrs.is_empty()).collect())
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
            let mut p = W::default();
            pcr_selection(&mut p, &remaining)?;
            let resp = self.run(&command(TPM_CC_PCR_READ, &[], &[], &p.0))?;
            let r = response("PCR_Read", &resp, 0)?;
            let mut rd = R(r.params);
            let _counter = rd.u32("pcrUpdateCounter")?;
            let got = parse_pcr_selection(&mut rd)?;
            let count = rd.u32("TPML_DIGEST count")?;
            if count > 8 {
                return Err(TpmError::Malformed("more than 8 digests"));
            }
            let mut digests = Vec::new();
            for _ in 0..count {
                digests.push(rd.tpm2b("PCR digest")?);
            }
            rd.end("trailing bytes after PCR_Read")?;
            let mut it = digests.into_iter();
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
        let mut p = W::default();
        p.u32(digests.len() as u32);
        for (alg, d) in digests {
            if Some(d.len()) != digest_len(*alg) {
                return Err(TpmError::Argument("extend digest length"));
            }
            p.u16(*alg).bytes(d);
        }
        let resp = self.run(&command(
            TPM_CC_PCR_EXTEND,
            &[pcr],
            &[password_auth()],
            &p.0,
        ))?;
        response("PCR_Extend", &resp, 0)?;
        Ok(())
    }

    /// Create a primary key from `template` in `hierarchy`; returns its
    /// handle and `TPM2B_PUBLIC`.
    fn create_primary(&mut self, hierarchy: Hierarchy, template: &[u8]) -> Result<(u32, Vec<u8>)> {
        let mut p = W::default();
        p.u16(4).u16(0).u16(0); // TPM2B_SENSITIVE_CREATE: empty auth, no data
        p.tpm2b(template)?;
        p.u16(0); // outsideInfo
        p.u32(0); // creationPCR
        let resp = self.run(&command(
            TPM_CC_CREATE_PRIMARY,
            &[hierarchy.handle()],
            &[password_auth()],
            &p.0,
        ))?;
        let r = response("CreatePrimary", &resp, 1)?;
        let public = R(r.params).tpm2b_raw("outPublic")?.to_vec();
        let handle = *r.handles.first().ok_or(TpmError::Malformed("no handle"))?;
        Ok((handle, public))
    }

    /// Create (or re-create: primary keys are derived from the hierarchy's
    /// seed, so the same TPM gives the same key) the attestation key.
    pub fn create_ak(&mut self, hierarchy: Hierarchy) -> Result<AttestationKey> {
        let (handle, public) = self.create_primary(hierarchy, &ak_template())?;
        Ok(AttestationKey { handle, public })
    }

    /// Flush a transient object or session.
    pub fn flush(&mut self, handle: u32) -> Result<()> {
        let resp = self.run(&command(
            TPM_CC_FLUSH_CONTEXT,
            &[],
            &[],
            &handle.to_be_bytes(),
        ))?;
        response("FlushContext", &resp, 0)?;
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
        let mut p = W::default();
        p.tpm2b(qualifying_data)?;
        p.u16(TPM_ALG_NULL); // inScheme: the key's scheme
        pcr_selection(&mut p, sel)?;
        let resp = self.run(&command(
            TPM_CC_QUOTE,
            &[ak.handle],
            &[password_auth()],
            &p.0,
        ))?;
        let r = response("Quote", &resp, 0)?;
        let mut rd = R(r.params);
        let attest = rd.tpm2b("quoted")?.to_vec();
        let signature = rd.rest().to_vec();
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
        let (srk, _) = self.create_primary(Hierarchy::Owner, &srk_template())?;
        let result = (|| {
            let mut p = W::default();
            let mut sens = W::default();
            sens.u16(0).tpm2b(seed)?; // userAuth empty, data = seed
            p.tpm2b(&sens.0)?;
            p.tpm2b(&sealed_template(&policy)?)?;
            p.u16(0).u32(0);
            let resp = self.run(&command(TPM_CC_CREATE, &[srk], &[password_auth()], &p.0))?;
            let r = response("Create", &resp, 0)?;
            let mut rd = R(r.params);
            let private = rd.tpm2b_raw("outPrivate")?.to_vec();
            let public = rd.tpm2b_raw("outPublic")?.to_vec();
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
        let (srk, _) = self.create_primary(Hierarchy::Owner, &srk_template())?;
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
        let mut p = W::default();
        p.bytes(&sealed.private).bytes(&sealed.public);
        let resp = self.run(&command(TPM_CC_LOAD, &[srk], &[password_auth()], &p.0))?;
        let r = response("Load", &resp, 1)?;
        let item = *r.handles.first().ok_or(TpmError::Malformed("no handle"))?;
        handles.push(item);

        let mut nonce = [0u8; 32];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| TpmError::Argument("no randomness"))?;
        let mut p = W::default();
        p.tpm2b(&nonce)?
            .u16(0) // encryptedSalt
            .u8(TPM_SE_POLICY)
            .u16(TPM_ALG_NULL) // symmetric
            .u16(TPM_ALG_SHA256);
        let resp = self.run(&command(
            TPM_CC_START_AUTH_SESSION,
            &[TPM_RH_NULL, TPM_RH_NULL],
            &[],
            &p.0,
        ))?;
        let r = response("StartAuthSession", &resp, 1)?;
        let session = *r.handles.first().ok_or(TpmError::Malformed("no handle"))?;
        handles.push(session);

        let mut p = W::default();
        p.u16(0); // pcrDigest: the TPM's current values
        pcr_selection(&mut p, &sealed.selection)?;
        let resp = self.run(&command(TPM_CC_POLICY_PCR, &[session], &[], &p.0))?;
        response("PolicyPCR", &resp, 0)?;

        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| TpmError::Argument("no randomness"))?;
        let resp = Zeroizing::new(self.run(&command(
            TPM_CC_UNSEAL,
            &[item],
            &[policy_auth(session, &nonce)?],
            &[],
        ))?);
        let r = response("Unseal", &resp, 0)?;
        let data = R(r.params).tpm2b("outData")?;
        let mut seed = Zeroizing::new([0u8; 32]);
        if data.len() != 32 {
            return Err(TpmError::SealedBlob("unsealed data is not 32 bytes"));
        }
        seed.copy_from_slice(data);
        Ok(seed)
    }
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
        let mut w = W::default();
        w.bytes(SEALED_MAGIC);
        // The selection was marshalled once already when sealing (or
        // checked when parsing), so it encodes; the TPM2B parts keep the
        // size prefixes the TPM returned them with.
        let _ = pcr_selection(&mut w, &self.selection);
        w.bytes(&self.private).bytes(&self.public);
        w.0
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let blob = |e: TpmError| match e {
            TpmError::Malformed(w) => TpmError::SealedBlob(w),
            other => other,
        };
        let mut r = R(b);
        if r.take(8, "magic").map_err(blob)? != SEALED_MAGIC {
            return Err(TpmError::SealedBlob("magic"));
        }
        let selection = parse_pcr_selection(&mut r).map_err(blob)?;
        if selection
            .iter()
            .any(|s| s.pcrs.iter().any(|p| *p >= PCR_COUNT))
        {
            return Err(TpmError::SealedBlob("PCR index above 23"));
        }
        if selection.iter().all(|s| s.pcrs.is_empty()) {
            return Err(TpmError::SealedBlob("empty PCR selection"));
        }
        let private = r.tpm2b_raw("TPM2B_PRIVATE").map_err(blob)?.to_vec();
        let public = r.tpm2b_raw("TPM2B_PUBLIC").map_err(blob)?.to_vec();
        r.end("trailing bytes").map_err(blob)?;
        Ok(SealedSeed {
            selection,
            private,
            public,
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
            public: vec![0, 2, 9, 9],
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
