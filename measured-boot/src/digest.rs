//! Fixed-size digest newtypes that serialize as lowercase hex.

use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha384};

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest32(pub [u8; 32]);

/// A SHA-384 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest48(pub [u8; 48]);

impl Digest32 {
    /// SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl Digest48 {
    /// 48 zero bytes (the initial value of an SNP launch digest and of an RTMR).
    pub const ZERO: Self = Self([0u8; 48]);

    /// SHA-384 of `data`.
    pub fn sha384(data: &[u8]) -> Self {
        Self(Sha384::digest(data).into())
    }
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parse 96 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 48];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

macro_rules! hex_traits {
    ($t:ty) => {
        impl core::fmt::Debug for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl core::fmt::Display for $t {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }
    };
}
hex_traits!(Digest32);
hex_traits!(Digest48);

/// Serialize an integer as a `0x`-prefixed hex string (GPAs, sizes, signatures).
pub(crate) fn ser_hex_u64<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

/// Serialize a u32 as a `0x`-prefixed hex string.
pub(crate) fn ser_hex_u32<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

/// Little-endian readers that never panic.
pub(crate) fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(s.try_into().ok()?))
}

pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

pub(crate) fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}
