//! [`Position`]: where `consume --from` starts and where `group
//! reset-offsets --to` moves a group.

use std::str::FromStr;

use crate::time;

/// A place in every partition of a topic, as given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    /// The log start: the oldest record still stored.
    Earliest,
    /// The high watermark: only records appended from now on.
    Latest,
    /// This offset (kept within each partition's log).
    Offset(u64),
    /// The first record at or after this time (ms since the Unix epoch).
    Timestamp(i64),
}

impl FromStr for Position {
    type Err = String;

    /// `earliest`, `latest`, an offset (digits), an RFC 3339 time or a
    /// time before now (`-5m`).
    fn from_str(s: &str) -> Result<Position, String> {
        match s {
            "earliest" => return Ok(Position::Earliest),
            "latest" => return Ok(Position::Latest),
            _ => {}
        }
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Position::Offset).map_err(|_| format!("offset {s} is too large"));
        }
        if let Some(ms) = time::parse_rfc3339(s) {
            return Ok(Position::Timestamp(ms));
        }
        if let Some(ago) = time::parse_ago(s) {
            return Ok(Position::Timestamp(millpond::now_millis().saturating_sub(ago)));
        }
        Err(format!(
            "{s:?} is not a position: use earliest, latest, an offset (42), an RFC 3339 time \
             (2026-12-01T10:00:00Z) or a time before now (-5m, -2h, -1d, -30s, -500ms)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_position_is_read() {
        assert_eq!("earliest".parse(), Ok(Position::Earliest));
        assert_eq!("latest".parse(), Ok(Position::Latest));
        assert_eq!("42".parse(), Ok(Position::Offset(42)));
        assert_eq!("2026-12-01T10:00:00Z".parse(), Ok(Position::Timestamp(1_796_119_200_000)));
        let before = millpond::now_millis() - 300_000;
        let Ok(Position::Timestamp(ms)) = "-5m".parse() else { panic!("-5m is a time") };
        assert!((before..before + 60_000).contains(&ms));
        assert!("soon".parse::<Position>().unwrap_err().contains("not a position"));
        assert!("99999999999999999999999".parse::<Position>().is_err());
    }
}
