//! Named domain lists (the categories: judi, pornografi, …) as the collector
//! keeps them and the agents receive them.
//!
//! A list is held in one canonical text — its names normalized as the
//! domain set reads them, deduplicated, sorted, one a line — and named by
//! that text's SHA-256. Equal content is then one list however it was
//! written (plain, hosts, adblock; any order, any case), an unchanged sync
//! is no new version, and an agent that holds the hash holds the list: it
//! fetches again only when the hash changes.
//!
//! Pure: readers and byte slices in, text and hashes out.

use std::io::BufRead;

use ring::digest;

use crate::policy::domains::{DomainSetBuilder, DomainsError, ListFormat, LoadReport};

/// The canonical form of a list.
#[derive(Debug)]
pub struct CanonicalList {
    /// Names, sorted, each followed by `\n`.
    pub text: Vec<u8>,
    /// SHA-256 of `text`, lowercase hex.
    pub sha256: String,
    pub domains: u64,
    /// What was read: lines, duplicates, the invalid lines with their place.
    pub report: LoadReport,
}

/// Read a list in `format` and make its canonical form.
pub fn canonicalize<R: BufRead>(
    reader: R,
    format: ListFormat,
) -> Result<CanonicalList, DomainsError> {
    let mut builder = DomainSetBuilder::new();
    let report = builder.add_lines(reader, format, 0)?;
    let set = builder.build();
    let mut names: Vec<&str> = set.iter().filter(|n| !n.is_empty()).collect();
    names.sort_unstable();
    names.dedup();
    let mut text = Vec::with_capacity(names.iter().map(|n| n.len() + 1).sum());
    for n in &names {
        text.extend_from_slice(n.as_bytes());
        text.push(b'\n');
    }
    Ok(CanonicalList {
        sha256: sha256_hex(&text),
        domains: names.len() as u64,
        text,
        report,
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut s = String::with_capacity(64);
    for b in d.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Incremental SHA-256 (an agent checks a list as it decompresses it).
pub struct Sha256(digest::Context);

impl Default for Sha256 {
    fn default() -> Self {
        Sha256(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256 {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn hex(self) -> String {
        let d = self.0.finish();
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

pub fn valid_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// List (category) names: what a URL path segment, a file name and a
/// policy key can all carry.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Why a new version of a list is held for an administrator instead of
/// taking effect (a sync that went wrong at the source looks like this).
#[derive(Debug, Clone, PartialEq)]
pub enum Hold {
    /// The new content has no domain at all.
    Empty,
    /// It lost more than the allowed share of the previous version's names.
    Shrank {
        from: u64,
        to: u64,
        max_percent: f64,
    },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hold::Empty => write!(f, "the new list is empty"),
            Hold::Shrank {
                from,
                to,
                max_percent,
            } => write!(
                f,
                "the list shrank from {from} to {to} domains ({:.1} % fewer; more than the {max_percent} % allowed)",
                shrink_percent(*from, *to)
            ),
        }
    }
}

pub fn shrink_percent(from: u64, to: u64) -> f64 {
    if from == 0 || to >= from {
        0.0
    } else {
        (from - to) as f64 * 100.0 / from as f64
    }
}

/// Whether a new version of `to` domains replacing one of `from` must wait
/// for a confirmation. The first version of a list is never held unless
/// empty.
pub fn hold(from: Option<u64>, to: u64, max_shrink_percent: f64) -> Option<Hold> {
    if to == 0 {
        return Some(Hold::Empty);
    }
    let from = from?;
    (shrink_percent(from, to) > max_shrink_percent).then_some(Hold::Shrank {
        from,
        to,
        max_percent: max_shrink_percent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_content_one_hash_whatever_the_format() {
        let plain = canonicalize(
            &b"Slot88.example\ntogel.example\n# comment\nslot88.example\n"[..],
            ListFormat::Auto,
        )
        .expect("reads");
        let mixed = canonicalize(
            &b"||togel.example^\n0.0.0.0 SLOT88.EXAMPLE\n"[..],
            ListFormat::Auto,
        )
        .expect("reads");
        assert_eq!(plain.text, b"slot88.example\ntogel.example\n");
        assert_eq!(plain.sha256, mixed.sha256);
        assert_eq!(plain.domains, 2);
        assert_eq!(plain.report.duplicates, 1);
        assert!(valid_sha256(&plain.sha256));
        assert_eq!(sha256_hex(&plain.text), plain.sha256);
        let mut inc = Sha256::default();
        inc.update(b"slot88.example\n");
        inc.update(b"togel.example\n");
        assert_eq!(inc.hex(), plain.sha256);
    }

    #[test]
    fn invalid_lines_are_reported_with_their_place() {
        let l =
            canonicalize(&b"ok.example\nnot a domain!\n"[..], ListFormat::Plain).expect("reads");
        assert_eq!(l.domains, 1);
        assert_eq!(l.report.invalid, 1);
        assert_eq!(l.report.first_invalid[0].line, 2);
    }

    #[test]
    fn empty_and_shrunk_lists_are_held() {
        assert_eq!(hold(None, 0, 20.0), Some(Hold::Empty));
        assert_eq!(hold(None, 5, 20.0), None);
        assert_eq!(hold(Some(100), 81, 20.0), None);
        assert!(matches!(
            hold(Some(100), 79, 20.0),
            Some(Hold::Shrank { .. })
        ));
        assert_eq!(hold(Some(100), 150, 20.0), None);
        assert!(hold(Some(100), 79, 20.0)
            .expect("held")
            .to_string()
            .contains("21.0 % fewer"));
    }

    #[test]
    fn names_and_hashes() {
        assert!(valid_name("judi"));
        assert!(valid_name("trust-positif_2"));
        assert!(!valid_name("../x"));
        assert!(!valid_name(""));
        assert!(!valid_sha256("ABC"));
    }
}
