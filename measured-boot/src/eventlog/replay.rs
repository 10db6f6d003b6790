//! Replay of a log into register values, and comparison with expected values.
//!
//! Rules: every bank starts at all zeros, except that a TPM log's
//! `EV_NO_ACTION` "StartupLocality" event sets PCR0's initial value to the
//! locality in its last byte. Each event extends its register in every bank
//! with its logged digest for that bank: `new = H(old || digest)`.
//! `EV_NO_ACTION` events are never extended.

use std::collections::BTreeMap;

use super::{Event, EventDetail, EventLog, EventLogError, EventType, HashAlg};

/// Register values by bank and index.
pub type Registers = BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>;

/// The `EV_EFI_ACTION` text firmware logs when ExitBootServices is called.
pub const EBS_INVOCATION: &str = "Exit Boot Services Invocation";
/// The `EV_EFI_ACTION` text firmware logs when ExitBootServices succeeded.
pub const EBS_RETURNED_SUCCESS: &str = "Exit Boot Services Returned with Success";

/// The result of replaying a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replay {
    /// Values of every register that an event (or the startup locality)
    /// touched, in every bank this crate can hash.
    pub registers: Registers,
    /// For each register index, the indexes of the events extended into it.
    pub sources: BTreeMap<u32, Vec<usize>>,
    /// The locality PCR0 started from, when the log records it.
    pub startup_locality: Option<u8>,
    /// Declared banks that could not be replayed (an algorithm this crate
    /// cannot hash, such as SM3).
    pub skipped_banks: Vec<HashAlg>,
    /// True when [`EventLog::replay_assuming_exit_boot_services`] added the
    /// two missing ExitBootServices events to PCR5.
    pub exit_boot_services_assumed: bool,
    /// True for TPM replays: PCRs 17..=22 (the DRTM PCRs) reset to all
    /// 0xFF, so one that no event touched reads as 0xFF..FF.
    pub drtm_reset_ones: bool,
}

/// One register whose replayed value differs from the expected one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub alg: HashAlg,
    pub register: u32,
    pub expected: Vec<u8>,
    /// The replayed value; `None` when the log has no such bank.
    pub replayed: Option<Vec<u8>>,
    /// Indexes of the log events that produced the replayed value.
    pub events: Vec<usize>,
}

/// Every mismatching register of a comparison. Empty only for
/// [`CompareScope::LoggedRegisters`] when the log extends none of the
/// expected registers: a comparison that checked nothing is not a match.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.summary())]
pub struct ReplayMismatch(pub Vec<Mismatch>);

impl ReplayMismatch {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        if self.0.is_empty() {
            "EVENTLOG_COVERS_NOTHING"
        } else {
            "EVENTLOG_REPLAY_MISMATCH"
        }
    }

    fn summary(&self) -> String {
        if self.0.is_empty() {
            "the event log extends none of the expected registers".to_owned()
        } else {
            format!(
                "event log replay does not match {} expected register(s)",
                self.0.len()
            )
        }
    }

    /// Every mismatch as `"<alg> <name><register> (events i,j,...)"`, joined
    /// by `"; "` (`name` is how the caller calls its registers: `PCR`,
    /// `RTMR`); the summary when nothing was covered.
    pub fn describe(&self, name: &str) -> String {
        if self.0.is_empty() {
            return self.summary();
        }
        let each: Vec<String> = self
            .0
            .iter()
            .map(|m| {
                let ev: Vec<String> = m.events.iter().map(|e| e.to_string()).collect();
                format!("{} {name}{} (events {})", m.alg, m.register, ev.join(","))
            })
            .collect();
        each.join("; ")
    }
}

/// Which expected registers a comparison checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareScope {
    /// Every expected register: one no event touched must hold its initial
    /// value, a bank the log lacks is a mismatch.
    AllExpected,
    /// Only registers the log covers (a bank it replays and at least one
    /// event). A quote covers PCRs that other logs extend (IMA's PCR10,
    /// for example); those are for their own logs to explain.
    LoggedRegisters,
}

pub(super) fn extend(alg: HashAlg, old: &[u8], digest: &[u8]) -> Vec<u8> {
    // `alg` comes from `EventLog::banks`, which lists only hashable algorithms.
    alg.hash(&[old, digest]).unwrap_or_default()
}

impl EventLog {
    /// Replay a TPM log: register index = PCR index.
    pub fn replay(&self) -> Replay {
        let mut r = self
            .replay_mapped(true, |e| Ok(e.pcr))
            .unwrap_or_else(|_| unreachable_replay());
        r.drtm_reset_ones = true;
        r
    }

    /// Replay, then extend PCR5 in every bank with the two `EV_EFI_ACTION`
    /// events that some firmware measures but does not log
    /// ([`EBS_INVOCATION`], [`EBS_RETURNED_SUCCESS`]). Fails with
    /// `EVENTLOG_EBS_PRESENT` when the log already records either, so that
    /// the workaround can never double-count. The result is marked
    /// [`Replay::exit_boot_services_assumed`].
    pub fn replay_assuming_exit_boot_services(&self) -> Result<Replay, EventLogError> {
        let has_ebs = self.events.iter().any(|e| {
            e.event_type == EventType::EV_EFI_ACTION
                && matches!(&e.parsed, EventDetail::Action(s)
                    if s == EBS_INVOCATION || s == EBS_RETURNED_SUCCESS)
        });
        if has_ebs {
            return Err(EventLogError::ExitBootServicesPresent);
        }
        let mut r = self.replay();
        for (alg, bank) in r.registers.iter_mut() {
            let zero = vec![0u8; alg.digest_len().unwrap_or(0)];
            let mut v = bank.get(&5).cloned().unwrap_or(zero);
            for s in [EBS_INVOCATION, EBS_RETURNED_SUCCESS] {
                let d = alg.hash(&[s.as_bytes()]).unwrap_or_default();
                v = extend(*alg, &v, &d);
            }
            bank.insert(5, v);
        }
        r.exit_boot_services_assumed = true;
        Ok(r)
    }

    /// Replay with `map` giving each extended event's register index.
    /// With `locality`, a StartupLocality event sets PCR0's initial value.
    pub(super) fn replay_mapped(
        &self,
        locality: bool,
        map: impl Fn(&Event) -> Result<u32, EventLogError>,
    ) -> Result<Replay, EventLogError> {
        let banks = self.banks();
        let skipped_banks = self
            .algorithms
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| !banks.contains(a))
            .collect();
        let mut registers: Registers = banks.iter().map(|a| (*a, BTreeMap::new())).collect();
        let mut sources: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        let mut startup_locality = None;
        for e in &self.events {
            if e.is_no_action() {
                if let (true, EventDetail::StartupLocality(l), 0) = (locality, &e.parsed, e.pcr) {
                    if startup_locality.is_none() && !sources.contains_key(&0) {
                        startup_locality = Some(*l);
                        for (alg, bank) in registers.iter_mut() {
                            let mut v = vec![0u8; alg.digest_len().unwrap_or(0)];
                            if let Some(last) = v.last_mut() {
                                *last = *l;
                            }
                            bank.insert(0, v);
                        }
                    }
                }
                continue;
            }
            let reg = map(e)?;
            sources.entry(reg).or_default().push(e.index);
            for (alg, bank) in registers.iter_mut() {
                let Some(d) = e.digest(*alg) else { continue };
                let old = bank
                    .remove(&reg)
                    .unwrap_or_else(|| vec![0u8; alg.digest_len().unwrap_or(0)]);
                bank.insert(reg, extend(*alg, &old, d));
            }
        }
        Ok(Replay {
            registers,
            sources,
            startup_locality,
            skipped_banks,
            exit_boot_services_assumed: false,
            drtm_reset_ones: false,
        })
    }
}

fn unreachable_replay() -> Replay {
    // `replay` maps with a closure that never fails.
    Replay {
        registers: BTreeMap::new(),
        sources: BTreeMap::new(),
        startup_locality: None,
        skipped_banks: Vec::new(),
        exit_boot_services_assumed: false,
        drtm_reset_ones: false,
    }
}

impl Replay {
    /// The replayed value of `register` in bank `alg`; a register no event
    /// touched reads as its reset value when the bank exists (zeros; 0xFF..FF
    /// for TPM PCRs 17..=22).
    pub fn value(&self, alg: HashAlg, register: u32) -> Option<Vec<u8>> {
        let bank = self.registers.get(&alg)?;
        let reset = if self.drtm_reset_ones && (17..=22).contains(&register) {
            0xff
        } else {
            0
        };
        Some(
            bank.get(&register)
                .cloned()
                .unwrap_or_else(|| vec![reset; alg.digest_len().unwrap_or(0)]),
        )
    }

    /// Compare with `expected` (for example the PCRs of a verified quote)
    /// and report every mismatching register with the events behind it.
    /// With [`CompareScope::LoggedRegisters`], a log that extends none of
    /// the expected registers is an error (an empty [`ReplayMismatch`]).
    pub fn compare(&self, expected: &Registers, scope: CompareScope) -> Result<(), ReplayMismatch> {
        let mut out = Vec::new();
        let mut covered_any = false;
        for (alg, regs) in expected {
            for (reg, want) in regs {
                let covered = self.registers.contains_key(alg)
                    && (self.sources.contains_key(reg)
                        || (*reg == 0 && self.startup_locality.is_some()));
                covered_any |= covered;
                if scope == CompareScope::LoggedRegisters && !covered {
                    continue;
                }
                let got = self.value(*alg, *reg);
                if got.as_deref() != Some(want.as_slice()) {
                    out.push(Mismatch {
                        alg: *alg,
                        register: *reg,
                        expected: want.clone(),
                        replayed: got,
                        events: self.sources.get(reg).cloned().unwrap_or_default(),
                    });
                }
            }
        }
        if scope == CompareScope::LoggedRegisters && !covered_any {
            return Err(ReplayMismatch(Vec::new()));
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(ReplayMismatch(out))
        }
    }
}
