//! Local times of day, UTC offsets, weekdays and weekly windows: the one
//! definition that policy schedules, notification routes and reports use.
//!
//! Configuration keeps these as text (`"07:30"`, `"+07:00"`) so a validator
//! can report every typo with its place at once; the parsers here decide
//! what the text means, the same way everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Minutes since local midnight, `00:00`–`24:00` (`24:00` ends a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay(0);
    pub const END_OF_DAY: TimeOfDay = TimeOfDay(24 * 60);

    /// `HH:MM` with two digits each; `24:00` is the end of the day.
    pub fn parse(s: &str) -> Result<TimeOfDay, String> {
        let bad = || format!("{s:?} is not a time of day (HH:MM, 00:00-24:00)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(TimeOfDay(h * 60 + m))
    }

    pub fn from_minutes(m: u32) -> Option<TimeOfDay> {
        u16::try_from(m)
            .ok()
            .filter(|&m| m <= 24 * 60)
            .map(TimeOfDay)
    }

    pub fn minutes(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

/// A fixed offset from UTC in seconds east: `+07:00` WIB, `+08:00` WITA,
/// `+09:00` WIT. `Z` is UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UtcOffset(i32);

impl UtcOffset {
    pub const UTC: UtcOffset = UtcOffset(0);
    pub const WIB: UtcOffset = UtcOffset(7 * 3600);

    pub fn parse(s: &str) -> Result<UtcOffset, String> {
        let bad = || {
            format!(
                "{s:?} is not a UTC offset like \"+07:00\" (WIB), \"+08:00\" (WITA), \"+09:00\" (WIT)"
            )
        };
        if s == "Z" {
            return Ok(UtcOffset::UTC);
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let t = TimeOfDay::parse(rest).map_err(|_| bad())?;
        if t.minutes() > 14 * 60 {
            return Err(bad());
        }
        Ok(UtcOffset(sign * t.minutes() as i32 * 60))
    }

    pub fn from_seconds(secs: i32) -> Option<UtcOffset> {
        (secs.abs() <= 14 * 3600).then_some(UtcOffset(secs))
    }

    pub fn seconds(self) -> i32 {
        self.0
    }

    /// The local weekday and minute of the day of a Unix time in milliseconds.
    pub fn local(self, unix_ms: i64) -> (Weekday, u32) {
        let local_secs = unix_ms.div_euclid(1000) + i64::from(self.0);
        let days = local_secs.div_euclid(86_400);
        let minute = (local_secs.rem_euclid(86_400) / 60) as u32;
        // 1970-01-01 was a Thursday (index 3).
        let weekday = Weekday::ALL[(days + 3).rem_euclid(7) as usize];
        (weekday, minute)
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { '-' } else { '+' };
        let m = self.0.unsigned_abs() / 60;
        write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// 0 = Monday … 6 = Sunday.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn previous(self) -> Weekday {
        Weekday::ALL[(self.index() + 6) % 7]
    }
}

/// A weekly window: `from`–`to` local time on `days` (empty: every day).
/// `to` before `from` crosses midnight (the part after midnight belongs to
/// the day the window started); `from == to` is the whole day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub from: TimeOfDay,
    pub to: TimeOfDay,
}

impl Window {
    fn on(&self, d: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&d)
    }

    /// Whether local `day`, `minute` falls in the window.
    pub fn contains(&self, day: Weekday, minute: u32) -> bool {
        let (from, to) = (self.from.minutes(), self.to.minutes());
        if from == to || (from == 0 && to == 24 * 60) {
            self.on(day)
        } else if from < to {
            self.on(day) && from <= minute && minute < to
        } else {
            (self.on(day) && minute >= from) || (self.on(day.previous()) && minute < to)
        }
    }

    /// Whether a Unix time (ms) at `offset` falls in the window.
    pub fn contains_at(&self, offset: UtcOffset, unix_ms: i64) -> bool {
        let (day, minute) = offset.local(unix_ms);
        self.contains(day, minute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day() {
        assert_eq!(TimeOfDay::parse("07:30").map(TimeOfDay::minutes), Ok(450));
        assert_eq!(TimeOfDay::parse("24:00"), Ok(TimeOfDay::END_OF_DAY));
        for bad in [
            "24:01", "7:30", "07:60", "25:00", "+1:00", "ab:cd", "", "07:3",
        ] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TimeOfDay::parse("07:05").unwrap().to_string(), "07:05");
    }

    #[test]
    fn offsets() {
        assert_eq!(
            UtcOffset::parse("+07:00").map(UtcOffset::seconds),
            Ok(25_200)
        );
        assert_eq!(
            UtcOffset::parse("-03:30").map(UtcOffset::seconds),
            Ok(-12_600)
        );
        assert_eq!(UtcOffset::parse("Z"), Ok(UtcOffset::UTC));
        for bad in ["07:00", "+15:00", "+7", "WIB", ""] {
            assert!(UtcOffset::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(UtcOffset::parse("+09:00").unwrap().to_string(), "+09:00");
        assert_eq!(UtcOffset::parse("-03:30").unwrap().to_string(), "-03:30");
    }

    #[test]
    fn local_weekday() {
        // 2026-11-27T23:30:00Z is Saturday 06:30 WIB.
        let ms = 1_795_822_200_000;
        assert_eq!(UtcOffset::WIB.local(ms), (Weekday::Sat, 390));
        assert_eq!(UtcOffset::UTC.local(ms), (Weekday::Fri, 1410));
    }

    #[test]
    fn windows() {
        let office = Window {
            days: vec![Weekday::Mon],
            from: TimeOfDay::parse("07:30").unwrap(),
            to: TimeOfDay::parse("16:00").unwrap(),
        };
        assert!(office.contains(Weekday::Mon, 450));
        assert!(!office.contains(Weekday::Mon, 960));
        assert!(!office.contains(Weekday::Tue, 500));
        let night = Window {
            days: vec![Weekday::Fri],
            from: TimeOfDay::parse("22:00").unwrap(),
            to: TimeOfDay::parse("06:00").unwrap(),
        };
        assert!(night.contains(Weekday::Fri, 23 * 60));
        assert!(night.contains(Weekday::Sat, 60));
        assert!(!night.contains(Weekday::Fri, 60));
        let all = Window {
            days: vec![],
            from: TimeOfDay::MIDNIGHT,
            to: TimeOfDay::MIDNIGHT,
        };
        assert!(all.contains(Weekday::Sun, 0));
    }
}
