//! The Confidential Computing event log (CCEL) of Intel TDX guests.
//!
//! The log has the crypto-agile layout (SHA-384 digests); the "PCR index"
//! field holds the CC measurement-register index: 0 is MRTD (which no event
//! extends), 1..=4 are RTMR0..=3. The log sits in a region the ACPI CCEL
//! table describes, padded to the region's length.

use super::{EventLog, EventLogError, HashAlg, Registers, Replay};

/// The decoded ACPI CCEL table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcelTable {
    /// CC type: 1 = SEV, 2 = TDX.
    pub cc_type: u8,
    pub cc_subtype: u8,
    /// Log area minimum length (LAML).
    pub log_area_length: u64,
    /// Log area start address (LASA).
    pub log_area_start: u64,
}

impl CcelTable {
    /// Parse the 56-byte ACPI table (signature "CCEL").
    pub fn parse(b: &[u8]) -> Result<CcelTable, EventLogError> {
        if b.len() < 56 {
            return Err(EventLogError::CcelTable("shorter than 56 bytes"));
        }
        if b.get(0..4) != Some(b"CCEL".as_slice()) {
            return Err(EventLogError::CcelTable("signature is not CCEL"));
        }
        let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
        if len != b.len() {
            return Err(EventLogError::CcelTable("length field does not match"));
        }
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        Ok(CcelTable {
            cc_type: b[36],
            cc_subtype: b[37],
            log_area_length: u64_at(40),
            log_area_start: u64_at(48),
        })
    }
}

/// Map a CC measurement-register index to an RTMR number.
pub fn rtmr_of_mr_index(index: u32) -> Option<u32> {
    (1..=4).contains(&index).then(|| index - 1)
}

impl EventLog {
    /// Parse a CCEL region (trailing 0x00/0xFF padding allowed).
    pub fn parse_ccel(bytes: &[u8]) -> Result<EventLog, EventLogError> {
        Self::parse_padded(bytes)
    }

    /// Replay a CCEL log into RTMR0..=3 (register index = RTMR number),
    /// SHA-384 bank. Every RTMR starts at zero; an extended event whose
    /// index is not 1..=4 fails with `CCEL_MR_INDEX`.
    pub fn replay_ccel(&self) -> Result<Replay, EventLogError> {
        self.replay_mapped(false, |e| {
            rtmr_of_mr_index(e.pcr).ok_or(EventLogError::CcelMrIndex {
                event: e.index,
                index: e.pcr,
            })
        })
    }
}

/// Expected RTMR values (index 0..=3) as a SHA-384 [`Registers`] map.
pub fn rtmr_registers(rtmrs: &[[u8; 48]]) -> Registers {
    let bank = rtmrs
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u32, v.to_vec()))
        .collect();
    [(HashAlg::SHA384, bank)].into_iter().collect()
}
