//! Single-use enrollment nonces. Pure: the caller supplies the random bytes
//! and the time.
//!
//! A nonce is 32 random bytes, valid for a short time (default 120 s) and
//! consumed by its first use. Consumed nonces are remembered until they
//! would have expired, so a replay is told apart from an unknown nonce. The
//! store is bounded: when full it first drops expired entries and, if still
//! full, refuses to issue (it never evicts a live nonce).

use std::collections::HashMap;

/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 32;
/// Default lifetime of a nonce in seconds.
pub const DEFAULT_TTL_SECS: u64 = 120;
/// Default number of nonces held at once.
pub const DEFAULT_CAPACITY: usize = 65_536;

/// A nonce value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nonce(pub [u8; NONCE_LEN]);

impl Nonce {
    /// Parses a nonce from bytes of exactly [`NONCE_LEN`].
    pub fn from_slice(b: &[u8]) -> Result<Self, NonceError> {
        <[u8; NONCE_LEN]>::try_from(b)
            .map(Nonce)
            .map_err(|_| NonceError::Malformed)
    }
}

/// Why a nonce cannot be issued or consumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NonceError {
    #[error("nonce is not {NONCE_LEN} bytes")]
    Malformed,
    #[error("nonce was never issued here (or is long gone)")]
    Unknown,
    #[error("nonce has expired")]
    Expired,
    #[error("nonce was already used")]
    Replayed,
    #[error("too many outstanding nonces")]
    StoreFull,
    #[error("random bytes collide with an outstanding nonce")]
    Collision,
}

impl NonceError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "ENROLL_NONCE_MALFORMED",
            Self::Unknown => "ENROLL_NONCE_UNKNOWN",
            Self::Expired => "ENROLL_NONCE_EXPIRED",
            Self::Replayed => "ENROLL_NONCE_REPLAYED",
            Self::StoreFull => "ENROLL_NONCE_STORE_FULL",
            Self::Collision => "ENROLL_NONCE_COLLISION",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    expires_at: u64,
    used: bool,
}

/// The bounded store of outstanding and recently used nonces.
#[derive(Debug)]
pub struct NonceStore {
    ttl: u64,
    capacity: usize,
    entries: HashMap<Nonce, Entry>,
}

impl NonceStore {
    /// A store whose nonces live `ttl_secs` and which holds at most `capacity`.
    pub fn new(ttl_secs: u64, capacity: usize) -> Self {
        Self {
            ttl: ttl_secs,
            capacity,
            entries: HashMap::new(),
        }
    }

    /// Number of entries held (outstanding or remembered as used).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every entry whose expiry has passed at `now`.
    pub fn prune(&mut self, now: u64) {
        self.entries.retain(|_, e| e.expires_at > now);
    }

    /// Issues `random` as a nonce at `now`; returns its expiry (unix seconds).
    pub fn issue(&mut self, random: [u8; NONCE_LEN], now: u64) -> Result<(Nonce, u64), NonceError> {
        if self.entries.len() >= self.capacity {
            self.prune(now);
            if self.entries.len() >= self.capacity {
                return Err(NonceError::StoreFull);
            }
        }
        let nonce = Nonce(random);
        if self.entries.contains_key(&nonce) {
            return Err(NonceError::Collision);
        }
        let expires_at = now.saturating_add(self.ttl);
        self.entries.insert(
            nonce,
            Entry {
                expires_at,
                used: false,
            },
        );
        Ok((nonce, expires_at))
    }

    /// Consumes `nonce` at `now`. Succeeds once per issued nonce, before expiry.
    pub fn consume(&mut self, nonce: &Nonce, now: u64) -> Result<(), NonceError> {
        let entry = self.entries.get_mut(nonce).ok_or(NonceError::Unknown)?;
        if entry.used {
            return Err(NonceError::Replayed);
        }
        if now >= entry.expires_at {
            return Err(NonceError::Expired);
        }
        entry.used = true;
        Ok(())
    }
}

impl Default for NonceStore {
    fn default() -> Self {
        Self::new(DEFAULT_TTL_SECS, DEFAULT_CAPACITY)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn single_use_and_expiry() {
        let mut s = NonceStore::new(120, 10);
        let (n, exp) = s.issue([1; 32], 1000).unwrap();
        assert_eq!(exp, 1120);
        assert_eq!(s.consume(&n, 1119), Ok(()));
        assert_eq!(s.consume(&n, 1119), Err(NonceError::Replayed));
        let (m, _) = s.issue([2; 32], 1000).unwrap();
        assert_eq!(s.consume(&m, 1120), Err(NonceError::Expired));
        assert_eq!(s.consume(&Nonce([3; 32]), 1000), Err(NonceError::Unknown));
        assert_eq!(s.issue([2; 32], 1000).unwrap_err(), NonceError::Collision);
        assert_eq!(
            Nonce::from_slice(&[0; 31]).unwrap_err().code(),
            "ENROLL_NONCE_MALFORMED"
        );
    }

    #[test]
    fn bounded_and_pruned() {
        let mut s = NonceStore::new(10, 2);
        s.issue([1; 32], 0).unwrap();
        s.issue([2; 32], 5).unwrap();
        assert_eq!(s.issue([3; 32], 9).unwrap_err(), NonceError::StoreFull);
        // At t=10 the first has expired and is pruned to make room.
        s.issue([3; 32], 10).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.consume(&Nonce([1; 32]), 10), Err(NonceError::Unknown));
    }
}
