//! Canonical event log (TCG CEL, JSON encoding) for the loader's own events.
//!
//! Pure: no I/O. Each event has a canonical JSON `content`; its SHA-384 is the digest
//! extended into the runtime register (TDX RTMR3, or a TPM PCR). The log keeps the
//! software value of that register, `R' = SHA-384(R || digest)` starting from 48 zero
//! bytes, so that a verifier can replay the log and compare with the hardware register.
//!
//! Record shape (one JSON object per record, the log is a JSON array):
//! `{"recnum":N,"pcr":3,"digests":[{"hashAlg":"sha384","digest":"<hex>"}],
//!   "content_type":"trusted_loader","content":{"event":"...",...}}`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha384};

/// Register index the loader's events go to (RTMR3 on TDX).
pub const RTMR3_INDEX: u32 = 3;
/// `content_type` of the loader's CEL records.
pub const CONTENT_TYPE: &str = "trusted_loader";
/// The only hash algorithm this log carries.
pub const HASH_ALG: &str = "sha384";

/// A 48-byte SHA-384 value (register or digest).
pub type Sha384Value = [u8; 48];

/// One event of the loader. Serialized (in this field order) as the record's `content`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Event {
    /// The loader started with this version and configuration digest.
    LoaderStarted {
        /// Loader version string.
        version: String,
        /// SHA-256 of the loader configuration, hex.
        config_sha256: String,
    },
    /// The order (policy) was accepted.
    OrderAccepted {
        /// SHA-256 of the order's canonical bytes, hex.
        order_sha256: String,
    },
    /// A component was decrypted and measured.
    ComponentMeasured {
        /// Component name in the order.
        name: String,
        /// Component role (engine, dataset, config, model).
        role: String,
        /// SHA-256 of the plaintext, hex.
        sha256: String,
        /// SHA-384 of the plaintext, hex, when the order pins it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sha384: Option<String>,
    },
    /// The firmware's TCG event log (measured boot) as the loader read it.
    FirmwareEventLog {
        /// Where it was read.
        path: String,
        /// Its length in bytes.
        size: u64,
        /// SHA-256 of its bytes, hex.
        sha256: String,
    },
    /// The engine was launched with this argv.
    Launch {
        /// The engine's argv.
        argv: Vec<String>,
    },
    /// The loader halted.
    Failure {
        /// Stable halt code.
        code: String,
        /// One-line detail.
        detail: String,
    },
}

impl Event {
    /// Component event from raw digests.
    pub fn component(name: &str, role: &str, sha256: &[u8; 32], sha384: Option<&[u8; 48]>) -> Self {
        Event::ComponentMeasured {
            name: name.to_owned(),
            role: role.to_owned(),
            sha256: hex::encode(sha256),
            sha384: sha384.map(hex::encode),
        }
    }

    /// Order-accepted event from the order digest.
    pub fn order_accepted(order_sha256: &[u8; 32]) -> Self {
        Event::OrderAccepted {
            order_sha256: hex::encode(order_sha256),
        }
    }

    /// Canonical content bytes: compact JSON, fields in declaration order.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing a plain enum of strings into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// SHA-384 of the canonical content: the digest extended into the register.
    pub fn digest(&self) -> Sha384Value {
        Sha384::digest(self.canonical_bytes()).into()
    }
}

/// `{"hashAlg":"sha384","digest":"<hex>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CelDigest {
    /// Always `sha384`.
    #[serde(rename = "hashAlg")]
    pub hash_alg: String,
    /// Hex digest.
    pub digest: String,
}

/// One CEL record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CelRecord {
    /// Record number, from 0, consecutive.
    pub recnum: u64,
    /// Register index.
    pub pcr: u32,
    /// Digests of the content (one, SHA-384).
    pub digests: Vec<CelDigest>,
    /// Always `trusted_loader`.
    pub content_type: String,
    /// The event.
    pub content: Event,
}

/// Errors of replay and parsing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CelError {
    /// Not a JSON array of records.
    #[error("event log is not valid CEL JSON: {0}")]
    Malformed(String),
    /// recnum out of sequence.
    #[error("record {index} has recnum {recnum}")]
    Sequence {
        /// Position in the log.
        index: usize,
        /// recnum found.
        recnum: u64,
    },
    /// Unsupported hash algorithm, register or content type, or not exactly one digest.
    #[error("record {index} is not a loader record: {why}")]
    Unsupported {
        /// Position in the log.
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The digest does not match the content.
    #[error("record {index} digest does not match its content")]
    DigestMismatch {
        /// Position in the log.
        index: usize,
    },
}

impl CelError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            CelError::Malformed(_) => "CEL_MALFORMED",
            CelError::Sequence { .. } => "CEL_SEQUENCE",
            CelError::Unsupported { .. } => "CEL_UNSUPPORTED",
            CelError::DigestMismatch { .. } => "CEL_DIGEST_MISMATCH",
        }
    }
}

/// `SHA-384(register || digest)`.
pub fn extend(register: &Sha384Value, digest: &Sha384Value) -> Sha384Value {
    let mut h = Sha384::new();
    h.update(register);
    h.update(digest);
    h.finalize().into()
}

/// The loader's event log and the software value of its register.
#[derive(Debug, Clone)]
pub struct EventLog {
    pcr: u32,
    records: Vec<CelRecord>,
    register: Sha384Value,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new(RTMR3_INDEX)
    }
}

impl EventLog {
    /// Empty log for register `pcr`; the register starts at zero.
    pub fn new(pcr: u32) -> Self {
        EventLog {
            pcr,
            records: Vec::new(),
            register: [0; 48],
        }
    }

    /// Append an event; returns the digest that must be extended into the hardware register.
    pub fn record(&mut self, event: Event) -> Sha384Value {
        let digest = event.digest();
        self.register = extend(&self.register, &digest);
        self.records.push(CelRecord {
            recnum: self.records.len() as u64,
            pcr: self.pcr,
            digests: vec![CelDigest {
                hash_alg: HASH_ALG.to_owned(),
                digest: hex::encode(digest),
            }],
            content_type: CONTENT_TYPE.to_owned(),
            content: event,
        });
        digest
    }

    /// Records so far.
    pub fn records(&self) -> &[CelRecord] {
        &self.records
    }

    /// Software register value after all records.
    pub fn register(&self) -> Sha384Value {
        self.register
    }

    /// Replay the records (checking every digest) and return the register value.
    pub fn replay(&self) -> Result<Sha384Value, CelError> {
        replay(&self.records, self.pcr)
    }

    /// Canonical JSON array (compact, deterministic).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing strings and integers into a Vec cannot fail.
        serde_json::to_vec(&self.records).unwrap_or_default()
    }

    /// Parse a CEL JSON array for register `pcr` and verify it by replay.
    pub fn from_json(bytes: &[u8], pcr: u32) -> Result<Self, CelError> {
        let records: Vec<CelRecord> =
            serde_json::from_slice(bytes).map_err(|e| CelError::Malformed(e.to_string()))?;
        let register = replay(&records, pcr)?;
        Ok(EventLog {
            pcr,
            records,
            register,
        })
    }
}

/// Replay `records` for register `pcr`: check sequence, digests and content; return the register.
pub fn replay(records: &[CelRecord], pcr: u32) -> Result<Sha384Value, CelError> {
    let mut register = [0u8; 48];
    for (index, r) in records.iter().enumerate() {
        if r.recnum != index as u64 {
            return Err(CelError::Sequence {
                index,
                recnum: r.recnum,
            });
        }
        if r.pcr != pcr {
            return Err(CelError::Unsupported {
                index,
                why: "register index",
            });
        }
        if r.content_type != CONTENT_TYPE {
            return Err(CelError::Unsupported {
                index,
                why: "content type",
            });
        }
        let [d] = r.digests.as_slice() else {
            return Err(CelError::Unsupported {
                index,
                why: "exactly one digest expected",
            });
        };
        if d.hash_alg != HASH_ALG {
            return Err(CelError::Unsupported {
                index,
                why: "hash algorithm",
            });
        }
        let digest = r.content.digest();
        if !d.digest.eq_ignore_ascii_case(&hex::encode(digest)) {
            return Err(CelError::DigestMismatch { index });
        }
        register = extend(&register, &digest);
    }
    Ok(register)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> EventLog {
        let mut log = EventLog::default();
        log.record(Event::order_accepted(&[0x11; 32]));
        log.record(Event::component(
            "engine",
            "engine",
            &[0x22; 32],
            Some(&[0x33; 48]),
        ));
        log.record(Event::Launch {
            argv: vec!["/bin/engine".into(), "--x".into()],
        });
        log
    }

    #[test]
    fn canonical_content_is_fixed() {
        let e = Event::Failure {
            code: "ORDER_EXPIRED".into(),
            detail: "x".into(),
        };
        assert_eq!(
            String::from_utf8(e.canonical_bytes()).unwrap(),
            r#"{"event":"failure","code":"ORDER_EXPIRED","detail":"x"}"#
        );
        // Independent vector: sha384 of the exact string above.
        assert_eq!(
            hex::encode(e.digest()),
            "25fc465c2b03f2c134958866a88eb08a8b8e44979ae6fde351cf6ce65bb4c0ecfac0e09fb9404bc52f399b1532b84343"
        );
    }

    #[test]
    fn register_vector() {
        let log = sample();
        assert_eq!(hex::encode(log.register()), "adaffa3edc312cdce5de950762b8bd3068f15715d0f7cbb0e352eeda05130a294477398940d05ff17b0c23f40f3130ef");
        assert_eq!(log.replay().unwrap(), log.register());
    }

    #[test]
    fn json_roundtrip_and_shape() {
        let log = sample();
        let json = log.to_json();
        let text = String::from_utf8(json.clone()).unwrap();
        assert!(
            text.starts_with(r#"[{"recnum":0,"pcr":3,"digests":[{"hashAlg":"sha384","digest":""#)
        );
        let back = EventLog::from_json(&json, RTMR3_INDEX).unwrap();
        assert_eq!(back.register(), log.register());
        assert_eq!(back.to_json(), json);
    }

    #[test]
    fn tampering_is_detected() {
        let log = sample();
        let json = String::from_utf8(log.to_json()).unwrap();
        // Content changed, digest kept.
        let t = json.replace("--x", "--y");
        assert_eq!(
            EventLog::from_json(t.as_bytes(), 3).unwrap_err().code(),
            "CEL_DIGEST_MISMATCH"
        );
        // Record removed: sequence breaks.
        let mut recs = log.records().to_vec();
        recs.remove(1);
        assert_eq!(replay(&recs, 3).unwrap_err().code(), "CEL_SEQUENCE");
        // Wrong register index.
        assert_eq!(
            replay(log.records(), 4).unwrap_err().code(),
            "CEL_UNSUPPORTED"
        );
        // Truncated JSON.
        assert_eq!(
            EventLog::from_json(&log.to_json()[..20], 3)
                .unwrap_err()
                .code(),
            "CEL_MALFORMED"
        );
        // Reordering changes the register.
        let mut reordered = EventLog::default();
        reordered.record(Event::component(
            "engine",
            "engine",
            &[0x22; 32],
            Some(&[0x33; 48]),
        ));
        reordered.record(Event::order_accepted(&[0x11; 32]));
        assert_ne!(reordered.register(), {
            let mut l = EventLog::default();
            l.record(Event::order_accepted(&[0x11; 32]));
            l.record(Event::component(
                "engine",
                "engine",
                &[0x22; 32],
                Some(&[0x33; 48]),
            ));
            l.register()
        });
    }
}
