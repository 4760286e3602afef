//! Times on the command line: RFC 3339 (`2026-12-01T10:00:00Z`) read and
//! written, and durations before now (`-5m`), without a date crate.

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01 (`civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads exactly `n` ASCII digits from the front of `s`.
fn digits(s: &mut &str, n: usize) -> Option<i64> {
    let head = s.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    *s = &s[n..];
    head.parse().ok()
}

/// Takes `c` from the front of `s`.
fn expect(s: &mut &str, c: char) -> Option<()> {
    *s = s.strip_prefix(c)?;
    Some(())
}

/// Milliseconds since the Unix epoch of an RFC 3339 time
/// (`2026-12-01T10:00:00Z`, `2026-12-01T10:00:00.250+01:00`; `t`, `z`
/// and a space instead of `T` accepted), or of a date alone (`2026-12-01`,
/// midnight UTC). `None` if `text` is neither.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    let mut s = text;
    let year = digits(&mut s, 4)?;
    expect(&mut s, '-')?;
    let month = digits(&mut s, 2)?;
    expect(&mut s, '-')?;
    let day = digits(&mut s, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * DAY_MS;
    if s.is_empty() {
        return Some(date_ms);
    }
    s = s.strip_prefix(['T', 't', ' '])?;
    let hour = digits(&mut s, 2)?;
    expect(&mut s, ':')?;
    let minute = digits(&mut s, 2)?;
    expect(&mut s, ':')?;
    let second = digits(&mut s, 2)?;
    // RFC 3339 allows a leap second (:60); record timestamps are Unix
    // time, which never shows one, so it is refused.
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut millis = 0;
    if let Some(rest) = s.strip_prefix('.') {
        let n = rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let frac = &rest[..n];
        millis =
            frac.bytes().take(3).fold(0, |acc, b| acc * 10 + i64::from(b - b'0')) * 10_i64.pow(3 - n.min(3) as u32);
        s = &rest[n..];
    }
    let offset_ms = match s {
        "Z" | "z" => 0,
        _ => {
            let sign = match s.chars().next()? {
                '+' => 1,
                '-' => -1,
                _ => return None,
            };
            s = &s[1..];
            let oh = digits(&mut s, 2)?;
            expect(&mut s, ':')?;
            let om = digits(&mut s, 2)?;
            if !s.is_empty() || oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3_600_000 + om * 60_000)
        }
    };
    Some(date_ms + hour * 3_600_000 + minute * 60_000 + second * 1000 + millis - offset_ms)
}

/// The length of a duration before now (`-5m`, `-90s`, `-2h`, `-1d`,
/// `-500ms`) in milliseconds; `None` if `text` is not one.
pub(crate) fn parse_ago(text: &str) -> Option<i64> {
    let rest = text.strip_prefix('-')?;
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    let amount: i64 = rest.get(..n)?.parse().ok()?;
    let unit = match &rest[n..] {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => DAY_MS,
        _ => return None,
    };
    amount.checked_mul(unit)
}

/// `millis` since the Unix epoch as RFC 3339 in UTC with milliseconds
/// (`2026-12-01T10:00:00.000Z`).
pub(crate) fn format_rfc3339(millis: i64) -> String {
    let days = millis.div_euclid(DAY_MS);
    let ms = millis.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let (h, min, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{frac:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_read_as_milliseconds_since_the_epoch() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-12-01T10:00:00Z"), Some(1_796_119_200_000));
        assert_eq!(parse_rfc3339("2026-12-01T11:00:00+01:00"), Some(1_796_119_200_000));
        assert_eq!(parse_rfc3339("2026-12-01t09:30:00.5-00:30"), Some(1_796_119_200_500));
        assert_eq!(parse_rfc3339("2026-12-01 10:00:00.123456z"), Some(1_796_119_200_123));
        assert_eq!(parse_rfc3339("2026-12-01"), Some(1_796_083_200_000));
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.999Z"), Some(-1));
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
    }

    #[test]
    fn malformed_times_are_refused() {
        for bad in [
            "",
            "2026",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T10:00:00",
            "2026-12-01T10:00Z",
            "2026-12-01T10:00:00.Z",
            "2026-12-01T10:00:00+0100",
            "12345",
            "-5m",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn durations_before_now_read_in_each_unit() {
        assert_eq!(parse_ago("-5m"), Some(300_000));
        assert_eq!(parse_ago("-90s"), Some(90_000));
        assert_eq!(parse_ago("-2h"), Some(7_200_000));
        assert_eq!(parse_ago("-1d"), Some(86_400_000));
        assert_eq!(parse_ago("-500ms"), Some(500));
        for bad in ["5m", "-m", "-5", "-5y", "-1.5h", "--5m"] {
            assert_eq!(parse_ago(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formatting_round_trips_through_parsing() {
        for ms in [0, -1, 1_796_119_200_123, 951_782_400_000, -62_135_596_800_000, 253_402_300_799_999] {
            let text = format_rfc3339(ms);
            assert_eq!(parse_rfc3339(&text), Some(ms), "{text}");
        }
        assert_eq!(format_rfc3339(1_796_119_200_000), "2026-12-01T10:00:00.000Z");
    }
}
