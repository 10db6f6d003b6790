//! Event data decoded by event type, for people reviewing a log.
//!
//! Decoding is best effort and never fails a parse: data that does not have
//! the layout its type promises becomes [`EventDetail::Unparsed`]. Replay
//! uses only the logged digests, never these fields.

use super::{EventType, HashAlg, SPEC_ID_03};

/// The "Spec ID Event03" structure (TCG PC Client PFP, `TCG_EfiSpecIDEvent`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecIdEvent {
    pub platform_class: u32,
    pub spec_version_minor: u8,
    pub spec_version_major: u8,
    pub spec_errata: u8,
    pub uintn_size: u8,
    /// Declared algorithms and digest sizes, in log order.
    pub algorithms: Vec<(HashAlg, usize)>,
    pub vendor_info: Vec<u8>,
}

/// `UEFI_VARIABLE_DATA`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EfiVariable {
    /// The vendor GUID in its canonical text form.
    pub guid: String,
    /// The variable name, decoded from UTF-16LE (lossy).
    pub name: String,
    pub data: Vec<u8>,
}

/// `UEFI_IMAGE_LOAD_EVENT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EfiImageLoad {
    pub image_location: u64,
    pub image_length: u64,
    pub link_time_address: u64,
    pub device_path_len: u64,
    pub device_path: Vec<u8>,
}

/// Decoded event data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventDetail {
    /// The crypto-agile header event.
    SpecId(SpecIdEvent),
    /// `EV_NO_ACTION` "StartupLocality": the locality PCR0 was reset from.
    StartupLocality(u8),
    /// Another `EV_NO_ACTION` event, with its signature text (up to the NUL).
    NoAction(String),
    /// `EV_EFI_VARIABLE_DRIVER_CONFIG`, `_BOOT`, `_BOOT2`, `_AUTHORITY`.
    EfiVariable(EfiVariable),
    /// `EV_EFI_BOOT_SERVICES_APPLICATION`, `_DRIVER`, `EV_EFI_RUNTIME_SERVICES_DRIVER`.
    EfiImageLoad(EfiImageLoad),
    /// `EV_SEPARATOR` with its 32-bit value (0 normally, 0xFFFFFFFF on error).
    Separator(u32),
    /// `EV_EFI_ACTION` / `EV_ACTION` text (e.g. "Exit Boot Services Invocation").
    Action(String),
    /// `EV_IPL` text (boot loader commands, kernel command lines).
    Ipl(String),
    /// `EV_POST_CODE` text, or a firmware blob (base, length).
    PostCode(PostCode),
    /// `EV_EVENT_TAG` (`TCG_PCClientTaggedEvent`).
    EventTag { id: u32, data: Vec<u8> },
    /// A type this crate does not decode; see [`super::Event::data`].
    Opaque,
    /// The data does not have the layout its type promises.
    Unparsed(&'static str),
}

/// The data of an `EV_POST_CODE` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PostCode {
    Text(String),
    Blob { base: u64, length: u64 },
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_le_bytes(a))
    }
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }
}

/// Decode `data` of an event of type `t`.
pub(super) fn parse(t: EventType, _pcr: u32, data: &[u8]) -> EventDetail {
    let r = match t {
        EventType::EV_NO_ACTION => no_action(data),
        EventType::EV_EFI_VARIABLE_DRIVER_CONFIG
        | EventType::EV_EFI_VARIABLE_BOOT
        | EventType::EV_EFI_VARIABLE_BOOT2
        | EventType::EV_EFI_VARIABLE_AUTHORITY => variable(data),
        EventType::EV_EFI_BOOT_SERVICES_APPLICATION
        | EventType::EV_EFI_BOOT_SERVICES_DRIVER
        | EventType::EV_EFI_RUNTIME_SERVICES_DRIVER => image_load(data),
        EventType::EV_SEPARATOR => <[u8; 4]>::try_from(data)
            .ok()
            .map(|b| EventDetail::Separator(u32::from_le_bytes(b)))
            .ok_or("separator is not 4 bytes"),
        EventType::EV_EFI_ACTION | EventType::EV_ACTION => Ok(EventDetail::Action(text(data))),
        EventType::EV_IPL => Ok(EventDetail::Ipl(text(data))),
        EventType::EV_POST_CODE => Ok(EventDetail::PostCode(post_code(data))),
        EventType::EV_EVENT_TAG => event_tag(data),
        _ => Ok(EventDetail::Opaque),
    };
    r.unwrap_or_else(EventDetail::Unparsed)
}

/// Text up to the first NUL, lossily decoded.
fn text(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(data.get(..end).unwrap_or(data)).into_owned()
}

fn no_action(data: &[u8]) -> Result<EventDetail, &'static str> {
    if data.starts_with(SPEC_ID_03) {
        return spec_id(data.get(SPEC_ID_03.len()..).unwrap_or(&[]))
            .map(EventDetail::SpecId)
            .ok_or("Spec ID Event03 does not decode");
    }
    const LOC: &[u8] = b"StartupLocality\0";
    if data.len() == LOC.len() + 1 && data.starts_with(LOC) {
        return Ok(EventDetail::StartupLocality(data[LOC.len()]));
    }
    Ok(EventDetail::NoAction(text(data.get(..16).unwrap_or(data))))
}

fn spec_id(rest: &[u8]) -> Option<SpecIdEvent> {
    let mut r = R(rest);
    let platform_class = r.u32()?;
    let spec_version_minor = r.u8()?;
    let spec_version_major = r.u8()?;
    let spec_errata = r.u8()?;
    let uintn_size = r.u8()?;
    let n = r.u32()? as usize;
    if n == 0 || n > super::MAX_ALGORITHMS {
        return None;
    }
    let mut algorithms = Vec::with_capacity(n);
    for _ in 0..n {
        let alg = HashAlg(r.u16()?);
        let size = r.u16()? as usize;
        if size == 0 || size > 64 || algorithms.iter().any(|(a, _)| *a == alg) {
            return None;
        }
        if let Some(known) = alg.digest_len() {
            if known != size {
                return None;
            }
        }
        algorithms.push((alg, size));
    }
    let vlen = r.u8()? as usize;
    let vendor_info = r.take(vlen)?.to_vec();
    Some(SpecIdEvent {
        platform_class,
        spec_version_minor,
        spec_version_major,
        spec_errata,
        uintn_size,
        algorithms,
        vendor_info,
    })
}

fn guid_text(g: &[u8]) -> String {
    // EFI_GUID: u32, u16, u16 little-endian, then 8 bytes in order.
    let le = |s: &[u8]| {
        s.iter()
            .rev()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let be = |s: &[u8]| s.iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        le(g.get(0..4).unwrap_or(&[])),
        le(g.get(4..6).unwrap_or(&[])),
        le(g.get(6..8).unwrap_or(&[])),
        be(g.get(8..10).unwrap_or(&[])),
        be(g.get(10..16).unwrap_or(&[]))
    )
}

fn variable(data: &[u8]) -> Result<EventDetail, &'static str> {
    let bad = "UEFI_VARIABLE_DATA does not decode";
    let mut r = R(data);
    let guid = r.take(16).ok_or(bad)?;
    let name_len = r.len().ok_or(bad)?;
    let data_len = r.len().ok_or(bad)?;
    let name_bytes = r.take(name_len.checked_mul(2).ok_or(bad)?).ok_or(bad)?;
    let var_data = r.take(data_len).ok_or(bad)?;
    let units: Vec<u16> = name_bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    Ok(EventDetail::EfiVariable(EfiVariable {
        guid: guid_text(guid),
        name: String::from_utf16_lossy(&units),
        data: var_data.to_vec(),
    }))
}

fn image_load(data: &[u8]) -> Result<EventDetail, &'static str> {
    let bad = "UEFI_IMAGE_LOAD_EVENT does not decode";
    let mut r = R(data);
    let image_location = r.u64().ok_or(bad)?;
    let image_length = r.u64().ok_or(bad)?;
    let link_time_address = r.u64().ok_or(bad)?;
    let device_path_len = r.u64().ok_or(bad)?;
    let dp = r
        .take(usize::try_from(device_path_len).map_err(|_| bad)?)
        .ok_or(bad)?;
    Ok(EventDetail::EfiImageLoad(EfiImageLoad {
        image_location,
        image_length,
        link_time_address,
        device_path_len,
        device_path: dp.to_vec(),
    }))
}

fn post_code(data: &[u8]) -> PostCode {
    let printable = data
        .iter()
        .all(|&b| b == 0 || b.is_ascii_graphic() || b == b' ');
    if data.len() == 16 && !printable {
        let mut r = R(data);
        if let (Some(base), Some(length)) = (r.u64(), r.u64()) {
            return PostCode::Blob { base, length };
        }
    }
    PostCode::Text(text(data))
}

fn event_tag(data: &[u8]) -> Result<EventDetail, &'static str> {
    let bad = "TCG_PCClientTaggedEvent does not decode";
    let mut r = R(data);
    let id = r.u32().ok_or(bad)?;
    let n = r.u32().ok_or(bad)? as usize;
    let d = r.take(n).ok_or(bad)?;
    Ok(EventDetail::EventTag {
        id,
        data: d.to_vec(),
    })
}
