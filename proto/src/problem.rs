//! One thing wrong with a document (policy, inventory, configuration) and
//! where: validators collect every problem, so an operator fixes a file or a
//! form in one round.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[error("{place}: {message}")]
pub struct Problem {
    /// A path into the document: `allocation.units.lab.download`,
    /// `agencies[1] (bappeda).units[0].subnets[2]`, `server.listen`.
    pub place: String,
    pub message: String,
}

impl Problem {
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            place: place.into(),
            message: message.into(),
        }
    }
}

/// Problems as one readable block: a count, then one per line.
pub fn describe(problems: &[Problem]) -> String {
    let n = problems.len();
    let mut out = format!("{n} problem{}:", if n == 1 { "" } else { "s" });
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

/// Free text a person wrote (a reason, a comment, a name): at most `max`
/// characters, no control characters and no bidirectional overrides (which
/// make a log line or a page read differently from what it holds).
pub fn check_free_text(s: &str, max: usize) -> Result<(), String> {
    if s.chars().count() > max {
        return Err(format!("longer than {max} characters"));
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || is_bidi_control(*c)) {
        return Err(format!(
            "holds the invisible character U+{:04X} (control characters and bidi overrides are refused)",
            u32::from(c)
        ));
    }
    Ok(())
}

/// `s` with control characters and bidi overrides replaced by U+FFFD, at
/// most `max` characters: for text a machine sent (an agent's hostname)
/// that is shown, not refused.
pub fn clean_text(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_control() || is_bidi_control(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{061C}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text() {
        assert!(check_free_text("Surat Diskominfo 123/2026 — jam kerja", 100).is_ok());
        assert!(check_free_text("a\u{202E}b", 100)
            .unwrap_err()
            .contains("U+202E"));
        assert!(check_free_text("a\nb", 100).unwrap_err().contains("U+000A"));
        assert!(check_free_text(&"x".repeat(101), 100).is_err());
    }
}
