//! Timestamps as Unix nanoseconds on the wire, RFC 3339 (UTC, microseconds)
//! in JSON: one field type serves the compact protocol and the readable output.

use serde::{de::Error, Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;

/// RFC 3339 with microseconds, UTC.
pub fn rfc3339(ts_ns: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts_ns))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parse RFC 3339 into Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let t = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
    u64::try_from(t.unix_timestamp_nanos()).map_err(|_| format!("{s:?} is before 1970"))
}

pub fn serialize<S: Serializer>(ts: &u64, s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&rfc3339(*ts))
    } else {
        s.serialize_u64(*ts)
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    if d.is_human_readable() {
        let s = String::deserialize(d)?;
        parse_rfc3339(&s).map_err(D::Error::custom)
    } else {
        u64::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_microseconds() {
        let ts = 1_764_236_140_458_241_000;
        let s = rfc3339(ts);
        assert_eq!(s, "2025-11-27T09:35:40.458241Z");
        assert_eq!(parse_rfc3339(&s), Ok(ts));
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
