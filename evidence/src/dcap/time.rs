//! Strict RFC 3339 UTC timestamps as Intel's collateral writes them
//! (`2025-06-19T10:16:03Z`), to seconds since the Unix epoch, and back.

/// Parse `YYYY-MM-DDTHH:MM:SSZ` (optionally with a fraction of a second,
/// which is dropped). Anything else is `None`.
pub fn parse_rfc3339_utc(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't'))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let num = |r: core::ops::Range<usize>| -> Option<u64> {
        let d = b.get(r)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        d.iter().try_fold(0u64, |acc, c| {
            acc.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = b.get(19..)?;
    let rest = match rest.first() {
        Some(b'.') => {
            let n = rest
                .iter()
                .skip(1)
                .take_while(|c| c.is_ascii_digit())
                .count();
            if n == 0 {
                return None;
            }
            rest.get(1 + n..)?
        }
        _ => rest,
    };
    if !matches!(rest, b"Z" | b"z") {
        return None;
    }
    if !(1..=12).contains(&mo)
        || d == 0
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let days = days_from_civil(y, mo, d)?;
    days.checked_mul(86_400)?
        .checked_add(h * 3600 + mi * 60 + sec.min(59))
}

/// Format seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_rfc3339_utc(t: u64) -> String {
    let days = t / 86_400;
    let rem = t % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (H. Hinnant's algorithm), for years >= 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    if y < 1970 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

fn civil_from_days(z: u64) -> (u64, u64, u64) {
    let z = z + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_utc("2025-07-19T10:00:34Z"),
            Some(1_752_919_234)
        );
        assert_eq!(
            parse_rfc3339_utc("2026-03-20T10:41:14Z"),
            Some(1_774_003_274)
        );
        assert_eq!(
            parse_rfc3339_utc("2024-02-29T00:00:00.123Z"),
            Some(1_709_164_800)
        );
        assert_eq!(format_rfc3339_utc(1_752_919_234), "2025-07-19T10:00:34Z");
    }

    #[test]
    fn rejects_junk() {
        for s in [
            "",
            "2025-07-19",
            "2025-07-19T10:00:34",
            "2025-07-19T10:00:34+01:00",
            "2025-13-19T10:00:34Z",
            "2023-02-29T10:00:34Z",
            "2025-07-19T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "2025-07-19T10:00:34.Z",
            "+025-07-19T10:00:34Z",
        ] {
            assert_eq!(parse_rfc3339_utc(s), None, "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trip(t in 0u64..8_000_000_000) {
            proptest::prop_assert_eq!(parse_rfc3339_utc(&format_rfc3339_utc(t)), Some(t));
        }
        #[test]
        fn total(s in "\\PC{0,40}") {
            let _ = parse_rfc3339_utc(&s);
        }
    }
}
