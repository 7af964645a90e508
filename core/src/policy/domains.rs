//! Compact domain sets for blocklists of millions of names.
//!
//! A rule covers its domain and every subdomain: the rule `example.go.id`
//! matches `example.go.id`, `www.example.go.id` and `a.b.example.go.id`, not
//! `notexample.go.id`. Lists come as plain text (one domain a line), hosts
//! files (`0.0.0.0 domain [domain …]`) or adblock rules (`||domain^`);
//! comments and blank lines are skipped, invalid entries are counted and the
//! first [`MAX_REPORTED_INVALID`] reported with their line numbers — never
//! fatal, because one bad line in a national list of millions must not leave
//! an agency unprotected.
//!
//! Rules are stored lowercased, without the trailing dot (IDNs arrive as
//! punycode), inline in 64-byte lines with three candidate lines per rule
//! (see [`table`]): probing a name costs one memory latency, and a hit is
//! confirmed against the stored bytes, so hash collisions never produce a
//! false match. Measured for 3 M names in BENCHMARKS.md, section `domains`.
//!
//! The hash is computed label by label from the right (TLD first), so all
//! suffixes of a queried name (`id`, `go.id`, `example.go.id`, …) are hashed
//! in one pass. A Bloom filter of the rules small enough to stay in cache
//! ([`filter`]) says which suffixes may be rules: only those are probed in
//! the table (their lines prefetched together, so the misses overlap), so
//! most misses never touch the table and the unlisted suffixes of a deep
//! name cost no memory access.

mod filter;
mod table;

use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

/// How many invalid lines a [`LoadReport`] keeps verbatim (all are counted).
pub const MAX_REPORTED_INVALID: usize = 20;

/// Longest domain name in presentation form without the trailing dot.
pub const MAX_NAME_LEN: usize = 253;

const MAX_LABEL_LEN: usize = 63;
const SEED: u64 = 0x243F_6A88_85A3_08D3;
const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// The syntax of a list file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// One domain a line; `#` starts a comment.
    Plain,
    /// `ADDRESS name [name …]`; `#` starts a comment.
    Hosts,
    /// `||domain^` (optionally `$important`); `!` and `#` lines are comments.
    Adblock,
    /// Decide per line: `||`/`@@` → adblock, a leading IP address → hosts,
    /// otherwise plain.
    Auto,
}

impl FromStr for ListFormat {
    type Err = DomainsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "plain" | "domains" => Ok(ListFormat::Plain),
            "hosts" => Ok(ListFormat::Hosts),
            "adblock" | "abp" => Ok(ListFormat::Adblock),
            "auto" => Ok(ListFormat::Auto),
            _ => Err(DomainsError::UnknownFormat(s.to_string())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainsError {
    #[error("cannot read the list after line {line}: {source}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown list format {0:?} (plain, hosts, adblock or auto)")]
    UnknownFormat(String),
}

/// Why an entry was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    #[error("empty name or empty label")]
    EmptyLabel,
    #[error("label longer than 63 bytes")]
    LabelTooLong,
    #[error("name longer than 253 bytes")]
    NameTooLong,
    #[error("character not allowed in a domain name (IDNs must be punycode)")]
    BadChar,
    #[error("an IP address, not a domain")]
    IpAddress,
    #[error("hosts line without an address before the name")]
    MissingAddress,
    #[error("hosts line with an address but no name")]
    MissingName,
    #[error("the set is full (4 GiB of names)")]
    SetFull,
    #[error("unsupported adblock rule (only ||domain^ and ||domain^$important)")]
    UnsupportedRule,
}

/// One rejected entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidLine {
    /// 1-based line number in the source.
    pub line: u64,
    /// The offending entry (truncated to 120 bytes, lossy UTF-8).
    pub text: String,
    pub reason: InvalidReason,
}

/// What loading one list did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub lines: u64,
    /// New rules added to the set.
    pub added: u64,
    /// Rules already in the set (from this list or an earlier one).
    pub duplicates: u64,
    /// Every rejected entry is counted here …
    pub invalid: u64,
    /// … and the first [`MAX_REPORTED_INVALID`] are kept.
    pub first_invalid: Vec<InvalidLine>,
}

impl LoadReport {
    fn reject(&mut self, line: u64, text: &[u8], reason: InvalidReason) {
        self.invalid += 1;
        if self.first_invalid.len() < MAX_REPORTED_INVALID {
            let cut = &text[..text.len().min(120)];
            self.first_invalid.push(InvalidLine {
                line,
                text: String::from_utf8_lossy(cut).into_owned(),
                reason,
            });
        }
    }

    /// Add another report's counts (several files into one set).
    pub fn merge(&mut self, other: &LoadReport) {
        self.lines += other.lines;
        self.added += other.added;
        self.duplicates += other.duplicates;
        self.invalid += other.invalid;
        for i in &other.first_invalid {
            if self.first_invalid.len() < MAX_REPORTED_INVALID {
                self.first_invalid.push(i.clone());
            }
        }
    }
}

/// A rule that matched a queried name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match<'a> {
    /// The rule as stored (lowercase, no trailing dot).
    pub rule: &'a str,
    /// The list (category) the rule was first loaded from.
    pub list: u16,
}

/// Whether [`DomainSetBuilder::insert`] added a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Added,
    Duplicate,
}

/// An immutable set of domain rules. Build it with [`DomainSetBuilder`] or
/// [`DomainSet::from_lines`].
#[derive(Debug, Clone)]
pub struct DomainSet {
    table: table::Table,
    filter: filter::RuleFilter,
    report: LoadReport,
}

impl Default for DomainSet {
    fn default() -> Self {
        DomainSetBuilder::new().build()
    }
}

impl DomainSet {
    /// Load one list (list id 0). Only I/O errors fail; invalid lines are in
    /// [`DomainSet::report`].
    pub fn from_lines<R: BufRead>(
        reader: R,
        format: ListFormat,
    ) -> Result<DomainSet, DomainsError> {
        let mut b = DomainSetBuilder::new();
        let report = b.add_lines(reader, format, 0)?;
        let mut set = b.build();
        set.report = report;
        Ok(set)
    }

    /// Load one list file (list id 0).
    pub fn from_path(path: &Path, format: ListFormat) -> Result<DomainSet, DomainsError> {
        let mut b = DomainSetBuilder::new();
        b.add_path(path, format, 0)?;
        Ok(b.build())
    }

    /// Number of distinct rules.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// What loading produced (merged over every list of the builder).
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// Heap bytes held (lines, long names, list tags, rule filter).
    pub fn memory_bytes(&self) -> usize {
        self.table.memory_bytes() + self.filter.memory_bytes()
    }

    /// Every rule once, in table order (deterministic for the same input).
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.table
            .iter()
            .map(|(name, _)| std::str::from_utf8(name).unwrap_or(""))
    }

    /// Whether `name` or one of its parent domains is a rule.
    pub fn contains(&self, name: &str) -> bool {
        self.lookup(name).is_some()
    }

    /// The rule covering `name` (the name itself or a parent domain), the
    /// broadest one when several do. ASCII case is ignored, as is one
    /// trailing dot.
    pub fn lookup(&self, name: &str) -> Option<Match<'_>> {
        self.lookup_bytes(name.as_bytes())
    }

    /// [`DomainSet::lookup`] for raw bytes (e.g. a DNS question name).
    pub fn lookup_bytes(&self, name: &[u8]) -> Option<Match<'_>> {
        if self.table.len() == 0 {
            return None;
        }
        let name = name.strip_suffix(b".").unwrap_or(name);
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return None;
        }
        let mut buf = [0u8; MAX_NAME_LEN];
        let name = lowercase_into(name, &mut buf);
        // Hash the suffixes TLD first and ask the in-cache filter about
        // each: the few that may be rules are probed in the table as they
        // come (TLD first: the broadest rule wins), so a hit needs no
        // hashing of the labels below it.
        let mut h = SEED;
        let mut end = name.len();
        loop {
            let start = label_start(name, end);
            h = mix_label(h, &name[start..end]);
            let hash = finish(h);
            if self.filter.may_contain(hash) {
                if let Some(hit) = self.table.find(hash, &name[start..]) {
                    return Some(to_match(hit));
                }
            }
            if start == 0 {
                return None;
            }
            end = start - 1;
        }
    }
}

fn to_match(hit: table::Hit<'_>) -> Match<'_> {
    Match {
        rule: std::str::from_utf8(hit.name).unwrap_or(""),
        list: hit.list,
    }
}

/// `name` ASCII-lowercased into `buf` (`name` is at most `buf`'s length).
#[inline]
fn lowercase_into<'a>(name: &[u8], buf: &'a mut [u8; MAX_NAME_LEN]) -> &'a [u8] {
    let out = &mut buf[..name.len()];
    for (o, &b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_lowercase();
    }
    out
}

/// Start of the label ending at `end` (exclusive).
#[inline]
fn label_start(name: &[u8], end: usize) -> usize {
    match name[..end].iter().rposition(|&b| b == b'.') {
        Some(dot) => dot + 1,
        None => 0,
    }
}

/// ASCII-lowercase eight bytes at once (bytes ≥ 0x80 unchanged).
#[inline]
fn lower8(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let heptets = x & LOW7;
    let ge_a = heptets + 0x3f3f_3f3f_3f3f_3f3f; // byte ≥ 'A' sets bit 7
    let gt_z = heptets + 0x2525_2525_2525_2525; // byte > 'Z' sets bit 7
    let upper = ge_a & !gt_z & !x & HIGH;
    x | (upper >> 2)
}

/// Hash state after one more label (case-folded as it is read).
#[inline]
fn mix_label(h: u64, label: &[u8]) -> u64 {
    let mut h = (h ^ label.len() as u64).wrapping_mul(K);
    let mut chunks = label.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(23) ^ lower8(u64::from_le_bytes(w))).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        h = (h.rotate_left(23) ^ lower8(load_tail(rest))).wrapping_mul(K);
    }
    h
}

/// 1–7 bytes as a little-endian word, in registers: a partial copy into a
/// stack buffer read back as one word stalls store-to-load forwarding.
#[inline]
fn load_tail(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
        u64::from(lo) | u64::from(hi) << (8 * (n - 4))
    } else {
        let mut w = 0u64;
        for (i, &x) in b.iter().enumerate() {
            w |= u64::from(x) << (8 * i);
        }
        w
    }
}

/// murmur3's fmix64: every input bit affects the table index and fingerprint.
#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Hash of a normalized rule (same as a lookup's hash of that suffix).
fn rule_hash(name: &[u8]) -> u64 {
    let mut h = SEED;
    let mut end = name.len();
    loop {
        let start = label_start(name, end);
        h = mix_label(h, &name[start..end]);
        if start == 0 {
            return finish(h);
        }
        end = start - 1;
    }
}

/// A filter of every rule in `table`, sized for `rules`.
fn filter_of(table: &table::Table, rules: usize) -> filter::RuleFilter {
    let mut f = filter::RuleFilter::for_rules(rules);
    for (name, _) in table.iter() {
        f.add(rule_hash(name));
    }
    f
}

/// Accumulates rules from one or more lists.
#[derive(Debug)]
pub struct DomainSetBuilder {
    table: table::Table,
    /// Kept up to date while rules arrive once the expected count is known
    /// (`reserve`): a new rule that the filter rejects needs no duplicate
    /// probe, which would be a cache miss per rule. Unsized (answers
    /// "maybe" to everything) before that.
    filter: filter::RuleFilter,
    /// Rules `filter` is sized for.
    filter_for: usize,
    report: LoadReport,
}

impl Default for DomainSetBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl DomainSetBuilder {
    pub fn new() -> Self {
        DomainSetBuilder {
            table: table::Table::default(),
            filter: filter::RuleFilter::default(),
            filter_for: 0,
            report: LoadReport::default(),
        }
    }

    /// Pre-size for about `rules` rules (avoids rehashing while loading).
    pub fn with_capacity(rules: usize) -> Self {
        let mut b = Self::new();
        b.reserve(rules);
        b
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.len() == 0
    }

    /// Add one rule (`example.com`, `Example.COM.`, `*.example.com`).
    pub fn insert(&mut self, name: &str, list: u16) -> Result<Inserted, InvalidReason> {
        self.insert_bytes(name.as_bytes(), list)
    }

    /// Add one rule given as bytes.
    pub fn insert_bytes(&mut self, name: &[u8], list: u16) -> Result<Inserted, InvalidReason> {
        let name = name.strip_prefix(b"*.").unwrap_or(name);
        let name = name.strip_suffix(b".").unwrap_or(name);
        validate(name)?;
        let mut buf = [0u8; MAX_NAME_LEN];
        let name = lowercase_into(name, &mut buf);
        let hash = rule_hash(name);
        if self.filter.may_contain(hash) && self.table.find(hash, name).is_some() {
            return Ok(Inserted::Duplicate);
        }
        self.table.insert(hash, name, list)?;
        self.filter.add(hash);
        Ok(Inserted::Added)
    }

    /// Make room for `additional` more rules without rehashing on the way.
    pub fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, None);
        self.size_filter(additional);
    }

    /// Size the filter for `additional` more rules than are in now.
    fn size_filter(&mut self, additional: usize) {
        let want = self.table.len().saturating_add(additional);
        if want > self.filter_for {
            self.filter = filter_of(&self.table, want);
            self.filter_for = want;
        }
    }

    /// Read a list; `list` is the id lookups report for its rules.
    pub fn add_lines<R: BufRead>(
        &mut self,
        mut reader: R,
        format: ListFormat,
        list: u16,
    ) -> Result<LoadReport, DomainsError> {
        let mut report = LoadReport::default();
        let mut buf = Vec::with_capacity(256);
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|source| DomainsError::Io {
                    line: report.lines,
                    source,
                })?;
            if n == 0 {
                break;
            }
            report.lines += 1;
            let line_no = report.lines;
            self.add_line(&buf, format, list, line_no, &mut report);
        }
        self.report.merge(&report);
        tracing::debug!(
            lines = report.lines,
            added = report.added,
            duplicates = report.duplicates,
            invalid = report.invalid,
            "domain list loaded"
        );
        Ok(report)
    }

    /// Read a list file.
    pub fn add_path(
        &mut self,
        path: &Path,
        format: ListFormat,
        list: u16,
    ) -> Result<LoadReport, DomainsError> {
        let f = std::fs::File::open(path).map_err(|source| DomainsError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // Size the table once: a quick pass counts the lines (an upper bound
        // on the rules, bar multi-name hosts lines), and the file's bytes
        // bound the names' bytes (each line holds its name and a newline).
        let lines = count_lines(&f).map_err(|source| DomainsError::Io { line: 0, source })?;
        let bytes = f
            .metadata()
            .ok()
            .and_then(|m| usize::try_from(m.len()).ok());
        self.table.reserve(lines, bytes);
        self.size_filter(lines);
        self.add_lines(std::io::BufReader::with_capacity(1 << 16, f), format, list)
    }

    fn add_line(
        &mut self,
        raw: &[u8],
        format: ListFormat,
        list: u16,
        line_no: u64,
        report: &mut LoadReport,
    ) {
        let line = raw.trim_ascii();
        if line.is_empty() || line[0] == b'#' {
            return;
        }
        let format = match format {
            ListFormat::Auto => {
                if line.starts_with(b"||") || line.starts_with(b"@@") || line[0] == b'!' {
                    ListFormat::Adblock
                } else if first_token_is_ip(line) {
                    ListFormat::Hosts
                } else {
                    ListFormat::Plain
                }
            }
            f => f,
        };
        match format {
            ListFormat::Plain | ListFormat::Auto => {
                let entry = strip_comment(line);
                self.add_entry(entry, list, line_no, report);
            }
            ListFormat::Hosts => {
                let entry = strip_comment(line);
                let mut tokens = entry
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|t| !t.is_empty());
                let Some(addr) = tokens.next() else { return };
                if !is_ip(addr) {
                    report.reject(line_no, entry, InvalidReason::MissingAddress);
                    return;
                }
                let mut any = false;
                for name in tokens {
                    any = true;
                    if is_hosts_boilerplate(name) {
                        continue;
                    }
                    self.add_entry(name, list, line_no, report);
                }
                if !any {
                    report.reject(line_no, entry, InvalidReason::MissingName);
                }
            }
            ListFormat::Adblock => {
                if line[0] == b'!' || line[0] == b'[' {
                    return;
                }
                match adblock_domain(line) {
                    Some(d) => self.add_entry(d, list, line_no, report),
                    None => report.reject(line_no, line, InvalidReason::UnsupportedRule),
                }
            }
        }
    }

    fn add_entry(&mut self, entry: &[u8], list: u16, line_no: u64, report: &mut LoadReport) {
        match self.insert_bytes(entry, list) {
            Ok(Inserted::Added) => report.added += 1,
            Ok(Inserted::Duplicate) => report.duplicates += 1,
            Err(reason) => report.reject(line_no, entry, reason),
        }
    }

    /// Freeze: an over-estimated reservation is given back.
    pub fn build(mut self) -> DomainSet {
        self.table.shrink_if_sparse();
        let rules = self.table.len();
        // Sized as it should be unless more rules came than were announced
        // (more false positives) or far fewer (memory held for nothing).
        let filter = if (rules..=rules.saturating_mul(2)).contains(&self.filter_for) {
            self.filter
        } else {
            filter_of(&self.table, rules)
        };
        DomainSet {
            filter,
            table: self.table,
            report: self.report,
        }
    }
}

/// Newlines in a file, plus one; the position of `f` is put back at the start.
fn count_lines(f: &std::fs::File) -> std::io::Result<usize> {
    use std::io::{Read, Seek};
    let mut r = f;
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += buf[..k].iter().filter(|&&b| b == b'\n').count();
    }
    r.seek(std::io::SeekFrom::Start(0))?;
    Ok(n + 1)
}

/// Ask for transparent huge pages on a big buffer: random probes into tens
/// of megabytes otherwise pay a TLB miss (a costly one under a hypervisor) on
/// top of the cache miss. Only advice; nothing changes where THP is off.
fn advise_huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    let start = v.as_ptr() as usize;
    let aligned = (start + HUGE - 1) & !(HUGE - 1);
    let end = (start + bytes) & !(HUGE - 1);
    if end > aligned {
        // SAFETY: [aligned, end) lies inside the vector's allocation and is
        // page-aligned; MADV_HUGEPAGE changes how the kernel backs the pages,
        // never their contents or validity.
        unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                end - aligned,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

/// Check a rule (before lowercasing): LDH plus `_`, label and name lengths,
/// not an IP address.
fn validate(name: &[u8]) -> Result<(), InvalidReason> {
    if name.is_empty() {
        return Err(InvalidReason::EmptyLabel);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(InvalidReason::NameTooLong);
    }
    let mut label_len = 0usize;
    let mut labels = 0usize;
    let mut all_digits = true;
    for &b in name {
        match b {
            b'.' => {
                if label_len == 0 {
                    return Err(InvalidReason::EmptyLabel);
                }
                label_len = 0;
                labels += 1;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' => {
                all_digits = false;
                label_len += 1;
            }
            b'0'..=b'9' => label_len += 1,
            b':' if is_ip(name) => return Err(InvalidReason::IpAddress),
            _ => return Err(InvalidReason::BadChar),
        }
        if label_len > MAX_LABEL_LEN {
            return Err(InvalidReason::LabelTooLong);
        }
    }
    if label_len == 0 {
        return Err(InvalidReason::EmptyLabel);
    }
    if all_digits && labels == 3 {
        return Err(InvalidReason::IpAddress);
    }
    Ok(())
}

fn is_ip(token: &[u8]) -> bool {
    std::str::from_utf8(token)
        .ok()
        .and_then(|s| s.parse::<IpAddr>().ok())
        .is_some()
}

fn first_token_is_ip(line: &[u8]) -> bool {
    let first = line
        .split(|b| b.is_ascii_whitespace())
        .next()
        .unwrap_or_default();
    // Cheap pre-check: an address starts with a digit or contains ':'.
    (first.first().is_some_and(u8::is_ascii_digit) || first.contains(&b':'))
        && line.len() > first.len()
        && is_ip(first)
}

fn strip_comment(line: &[u8]) -> &[u8] {
    match line.iter().position(|&b| b == b'#') {
        Some(i) => line[..i].trim_ascii(),
        None => line,
    }
}

/// Names every hosts file maps to loopback; never rules.
fn is_hosts_boilerplate(name: &[u8]) -> bool {
    const NAMES: &[&[u8]] = &[
        b"localhost",
        b"localhost.localdomain",
        b"local",
        b"broadcasthost",
        b"ip6-localhost",
        b"ip6-loopback",
        b"ip6-localnet",
        b"ip6-mcastprefix",
        b"ip6-allnodes",
        b"ip6-allrouters",
        b"ip6-allhosts",
        b"0.0.0.0",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// `||domain^`, `||domain^$important`, `||domain` → `domain`.
fn adblock_domain(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"||")?;
    let (domain, tail) = match rest.iter().position(|&b| b == b'^') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let tail = tail.trim_ascii();
    if !(tail.is_empty() || tail == b"$important") {
        return None;
    }
    if domain.is_empty()
        || domain
            .iter()
            .any(|&b| matches!(b, b'/' | b'*' | b'$' | b'|'))
    {
        return None;
    }
    Some(domain)
}

/// A blocklist with its allowlist: an allowlisted name (or a subdomain of an
/// allowlisted name) is never blocked, whatever the blocklist says.
#[derive(Debug, Clone, Default)]
pub struct DomainFilter {
    pub blocked: DomainSet,
    pub allowed: DomainSet,
    /// Names of the blocklists by list id (for events), e.g. `judi`.
    pub list_names: Vec<String>,
}

/// Why a name is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMatch<'a> {
    pub rule: &'a str,
    pub list: u16,
    /// `list_names[list]`, or `""` when unnamed.
    pub list_name: &'a str,
}

impl DomainFilter {
    pub fn new(blocked: DomainSet, allowed: DomainSet, list_names: Vec<String>) -> Self {
        DomainFilter {
            blocked,
            allowed,
            list_names,
        }
    }

    /// The blocking rule for `name`, unless the allowlist covers it.
    pub fn check(&self, name: &[u8]) -> Option<BlockMatch<'_>> {
        let m = self.blocked.lookup_bytes(name)?;
        if self.allowed.lookup_bytes(name).is_some() {
            return None;
        }
        Some(BlockMatch {
            rule: m.rule,
            list: m.list,
            list_name: self
                .list_names
                .get(usize::from(m.list))
                .map(String::as_str)
                .unwrap_or(""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn set(text: &str, format: ListFormat) -> DomainSet {
        DomainSet::from_lines(text.as_bytes(), format).expect("in-memory read")
    }

    #[test]
    fn load_tail_is_zero_padded_le() {
        let b = [1u8, 2, 3, 4, 5, 6, 7];
        for n in 1..=7 {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(&b[..n]);
            assert_eq!(load_tail(&b[..n]), u64::from_le_bytes(w), "{n}");
        }
    }

    #[test]
    fn lower8_matches_ascii_lowercase() {
        for b in 0..=255u8 {
            let x = u64::from_le_bytes([b, b'A', b'z', b'Z', b'@', b'[', 0x80 | b, b]);
            let want: Vec<u8> = x.to_le_bytes().iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(lower8(x).to_le_bytes().to_vec(), want, "{b}");
        }
    }

    #[test]
    fn rule_covers_subdomains_only() {
        let s = set("example.go.id\n", ListFormat::Plain);
        for yes in [
            "example.go.id",
            "www.example.go.id",
            "a.b.example.go.id",
            "EXAMPLE.Go.Id.",
            "x.example.go.id.",
        ] {
            assert_eq!(
                s.lookup(yes).map(|m| m.rule),
                Some("example.go.id"),
                "{yes}"
            );
        }
        for no in [
            "notexample.go.id",
            "go.id",
            "id",
            "example.go.id.evil",
            "example.go",
            "",
            ".",
            "..",
            "example..go.id",
        ] {
            assert!(s.lookup(no).is_none(), "{no}");
        }
    }

    #[test]
    fn broadest_rule_wins_and_lists_are_tracked() {
        let mut b = DomainSetBuilder::new();
        b.add_lines("sub.judi.com\n".as_bytes(), ListFormat::Plain, 3)
            .expect("read");
        b.add_lines("judi.com\nporn.xyz\n".as_bytes(), ListFormat::Plain, 7)
            .expect("read");
        b.add_lines("porn.xyz\n".as_bytes(), ListFormat::Plain, 9)
            .expect("read");
        let s = b.build();
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.lookup("a.sub.judi.com"),
            Some(Match {
                rule: "judi.com",
                list: 7
            })
        );
        assert_eq!(s.lookup("x.porn.xyz").map(|m| m.list), Some(7));
        assert_eq!(s.report().duplicates, 1);
    }

    #[test]
    fn plain_format_comments_and_invalid_lines() {
        let text = "# TrustPositif\n\nexample.com\n  Foo.Example.NET.  # trailing\n*.wild.id\nbad domain\n\
                    -ok-.com\nexa_mple.org\nä.com\n1.2.3.4\na..b\n";
        let s = set(text, ListFormat::Plain);
        let r = s.report();
        assert_eq!(r.lines, 11);
        assert_eq!(r.added, 5, "{r:?}");
        assert_eq!(r.invalid, 4);
        let lines: Vec<_> = r.first_invalid.iter().map(|i| (i.line, i.reason)).collect();
        assert_eq!(
            lines,
            vec![
                (6, InvalidReason::BadChar),
                (9, InvalidReason::BadChar),
                (10, InvalidReason::IpAddress),
                (11, InvalidReason::EmptyLabel),
            ]
        );
        assert!(s.contains("foo.example.net"));
        assert!(s.contains("x.wild.id"));
        assert!(s.contains("exa_mple.org"));
        let long = format!("{}.com", "a".repeat(64));
        let s = set(&long, ListFormat::Plain);
        assert_eq!(
            s.report().first_invalid[0].reason,
            InvalidReason::LabelTooLong
        );
        let long = format!("{}com", "abcdefgh.".repeat(29));
        let s = set(&long, ListFormat::Plain);
        assert_eq!(
            s.report().first_invalid[0].reason,
            InvalidReason::NameTooLong
        );
    }

    #[test]
    fn hosts_format() {
        let text = "127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n0.0.0.0 ads.example.com tracker.example.net # c\n\
                    0.0.0.0\nexample.org\n127.0.0.1\tslot.xyz\n# 0.0.0.0 commented.com\n";
        let s = set(text, ListFormat::Hosts);
        let r = s.report();
        assert_eq!(r.added, 3, "{r:?}");
        assert!(s.contains("ads.example.com") && s.contains("a.tracker.example.net"));
        assert!(s.contains("slot.xyz"));
        assert!(!s.contains("localhost") && !s.contains("commented.com"));
        let reasons: Vec<_> = r.first_invalid.iter().map(|i| (i.line, i.reason)).collect();
        assert_eq!(
            reasons,
            vec![
                (4, InvalidReason::MissingName),
                (5, InvalidReason::MissingAddress)
            ]
        );
    }

    #[test]
    fn adblock_format() {
        let text =
            "[Adblock Plus 2.0]\n! comment\n||judi.com^\n||Slot.XYZ^$important\n||bare.net\n\
                    @@||ok.judi.com^\n||x.com^$third-party\n/banner/*\nexample.com##.ad\n";
        let s = set(text, ListFormat::Adblock);
        let r = s.report();
        assert_eq!(r.added, 3, "{r:?}");
        assert!(s.contains("a.judi.com") && s.contains("slot.xyz") && s.contains("bare.net"));
        assert_eq!(r.invalid, 4);
        assert!(r
            .first_invalid
            .iter()
            .all(|i| i.reason == InvalidReason::UnsupportedRule));
        assert_eq!(r.first_invalid[0].line, 6);
    }

    #[test]
    fn auto_format_mixes() {
        let text = "plain.com\n0.0.0.0 hosts.com\n||adblock.com^\n! c\n";
        let s = set(text, ListFormat::Auto);
        assert_eq!(s.len(), 3);
        assert_eq!(s.report().invalid, 0);
    }

    #[test]
    fn invalid_lines_reported_up_to_limit() {
        let text = "bad line\n".repeat(100);
        let s = set(&text, ListFormat::Plain);
        assert_eq!(s.report().invalid, 100);
        assert_eq!(s.report().first_invalid.len(), MAX_REPORTED_INVALID);
        assert_eq!(s.report().first_invalid[19].line, 20);
    }

    #[test]
    fn allowlist_overrides() {
        let f = DomainFilter::new(
            set("judi.com\nblocked.go.id\n", ListFormat::Plain),
            set("ok.judi.com\n", ListFormat::Plain),
            vec!["judi".into()],
        );
        assert_eq!(
            f.check(b"www.judi.com").map(|m| (m.rule, m.list_name)),
            Some(("judi.com", "judi"))
        );
        assert!(f.check(b"ok.judi.com").is_none());
        assert!(f.check(b"a.ok.judi.com").is_none());
        assert!(f.check(b"other.com").is_none());
        assert!(f.check(b"blocked.go.id").is_some());
    }

    #[test]
    fn grows_and_keeps_everything() {
        let mut b = DomainSetBuilder::new();
        for i in 0..50_000 {
            b.insert(&format!("d{i}.example{}.com", i % 7), (i % 3) as u16)
                .expect("valid");
        }
        let s = b.build();
        assert_eq!(s.len(), 50_000);
        for i in 0..50_000 {
            let m = s.lookup(&format!("www.d{i}.example{}.com", i % 7));
            assert!(m.is_some(), "{i}");
        }
        assert!(s.lookup("d50000.example0.com").is_none());
        assert_eq!(s.iter().count(), 50_000);
    }

    #[test]
    fn files_loaded_one_after_another_keep_duplicates_and_lists_exact() {
        // add_path announces each file's size: the filter that skips the
        // duplicate probe is resized for the second file and must still
        // know every rule of the first.
        let dir = tempfile::tempdir().expect("temp dir");
        let first = dir.path().join("first.txt");
        let second = dir.path().join("second.txt");
        let a: String = (0..3_000).map(|i| format!("a{i}.judi.com\n")).collect();
        let b: String = (0..3_000)
            .map(|i| format!("0.0.0.0 a{}.judi.com\nb{i}.slot.xyz\n", i * 2))
            .collect();
        std::fs::write(&first, a).expect("write");
        // And rules of its own again, which only the filter's updates
        // while loading know about.
        let again: String = (0..100).map(|i| format!("||b{i}.slot.xyz^\n")).collect();
        std::fs::write(&second, b + &again).expect("write");
        let mut builder = DomainSetBuilder::new();
        let r1 = builder.add_path(&first, ListFormat::Auto, 1).expect("read");
        let r2 = builder
            .add_path(&second, ListFormat::Auto, 2)
            .expect("read");
        assert_eq!((r1.added, r1.duplicates), (3_000, 0));
        // a0, a2, … a2998 were in the first file.
        assert_eq!((r2.added, r2.duplicates), (4_500, 1_600));
        let s = builder.build();
        assert_eq!(s.len(), 7_500);
        assert_eq!(s.lookup("x.a2.judi.com").map(|m| m.list), Some(1));
        assert_eq!(s.lookup("a3002.judi.com").map(|m| m.list), Some(2));
        assert_eq!(s.lookup("www.b2999.slot.xyz").map(|m| m.list), Some(2));
        assert!(s.lookup("a6000.judi.com").is_none());
        assert!(s.lookup("b3000.slot.xyz").is_none());
    }

    #[test]
    fn names_with_many_labels() {
        let s = set("deep.example.com\n", ListFormat::Plain);
        let name = format!("{}deep.example.com", "x.".repeat(40));
        assert!(s.contains(&name));
        let t = set(
            &format!("{}deep.example.com\n", "x.".repeat(20)),
            ListFormat::Plain,
        );
        assert!(t.contains(&format!("y.{}deep.example.com", "x.".repeat(20))));
        assert!(!t.contains(&format!("{}deep.example.com", "x.".repeat(19))));
        assert!(!s.contains(&"a.".repeat(200)));
    }

    fn naive_lookup(rules: &HashSet<String>, name: &str) -> Option<String> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return None;
        }
        let labels: Vec<&str> = name.split('.').collect();
        (1..=labels.len())
            .map(|k| labels[labels.len() - k..].join("."))
            .find(|s| rules.contains(s))
    }

    fn label() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("ab".to_string()),
            Just("go".to_string()),
            Just("id".to_string()),
            Just("Co".to_string()),
            Just("x-y".to_string()),
            "[a-z0-9]{1,12}",
        ]
    }

    fn domain() -> impl Strategy<Value = String> {
        prop::collection::vec(label(), 1..5).prop_map(|v| v.join("."))
    }

    /// Also names past the inline limit (stored out of line) and up to
    /// the 253-byte maximum.
    fn long_domain() -> impl Strategy<Value = String> {
        let label = prop_oneof![
            3 => label(),
            1 => "[a-z]{30,63}",
        ];
        prop::collection::vec(label, 1..6)
            .prop_map(|v| v.join("."))
            .prop_filter("at most 253 bytes", |d| d.len() <= MAX_NAME_LEN)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn matches_naive_model(
            rules in prop::collection::vec(domain(), 0..60),
            queries in prop::collection::vec((domain(), prop::bool::ANY), 1..60),
            // None: rules arrive unannounced; else announced, too few or
            // too many (the filter is kept up to date while loading).
            reserve in prop::option::of(0usize..120),
        ) {
            let mut b = match reserve {
                Some(n) => DomainSetBuilder::with_capacity(n),
                None => DomainSetBuilder::new(),
            };
            let mut naive = HashSet::new();
            for r in &rules {
                b.insert(r, 0).expect("generated rules are valid");
                naive.insert(r.to_ascii_lowercase());
            }
            let s = b.build();
            prop_assert_eq!(s.len(), naive.len());
            for (q, dot) in &queries {
                let q = if *dot { format!("{q}.") } else { q.clone() };
                let got = s.lookup(&q).map(|m| m.rule.to_string());
                prop_assert_eq!(got, naive_lookup(&naive, &q), "query {}", q);
            }
            // Every rule matches itself and a subdomain of itself.
            for r in &rules {
                prop_assert!(s.contains(r));
                let sub = format!("zz.{r}");
                prop_assert!(s.contains(&sub));
            }
        }

        #[test]
        fn long_names_and_many_lists_match_naive_model(
            rules in prop::collection::vec((long_domain(), 0u16..300), 0..80),
            queries in prop::collection::vec(long_domain(), 1..40),
            reserve in prop::option::of(0usize..160),
        ) {
            let mut b = DomainSetBuilder::new();
            if let Some(n) = reserve {
                b.reserve(n);
            }
            let mut naive: HashMap<String, u16> = HashMap::new();
            for (r, list) in &rules {
                let added = b.insert(r, *list).expect("generated rules are valid");
                let key = r.to_ascii_lowercase();
                let new = !naive.contains_key(&key);
                // The first list a rule came from is kept.
                naive.entry(key).or_insert(*list);
                prop_assert_eq!(added == Inserted::Added, new);
            }
            let s = b.build();
            let keys: HashSet<String> = naive.keys().cloned().collect();
            prop_assert_eq!(s.len(), keys.len());
            let mut listed: Vec<&str> = s.iter().collect();
            listed.sort_unstable();
            let mut want: Vec<&str> = keys.iter().map(String::as_str).collect();
            want.sort_unstable();
            prop_assert_eq!(listed, want);
            for q in queries.iter().chain(rules.iter().map(|r| &r.0)) {
                let got = s.lookup(q).map(|m| (m.rule.to_string(), m.list));
                let rule = naive_lookup(&keys, q);
                let want = rule.map(|r| { let l = naive[&r]; (r, l) });
                prop_assert_eq!(got, want, "query {}", q);
            }
        }

        #[test]
        fn filter_matches_naive_model(
            block in prop::collection::vec(domain(), 0..30),
            allow in prop::collection::vec(domain(), 0..10),
            queries in prop::collection::vec(domain(), 1..40),
        ) {
            let bs = DomainSet::from_lines(block.join("\n").as_bytes(), ListFormat::Plain).expect("read");
            let al = DomainSet::from_lines(allow.join("\n").as_bytes(), ListFormat::Plain).expect("read");
            let f = DomainFilter::new(bs, al, vec![]);
            let nb: HashSet<String> = block.iter().map(|s| s.to_ascii_lowercase()).collect();
            let na: HashSet<String> = allow.iter().map(|s| s.to_ascii_lowercase()).collect();
            for q in &queries {
                let want = naive_lookup(&nb, q).filter(|_| naive_lookup(&na, q).is_none());
                prop_assert_eq!(f.check(q.as_bytes()).map(|m| m.rule.to_string()), want);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..30), q in prop::collection::vec(any::<u8>(), 0..300)) {
            let text: Vec<u8> = lines.join(&b'\n');
            for f in [ListFormat::Plain, ListFormat::Hosts, ListFormat::Adblock, ListFormat::Auto] {
                let s = DomainSet::from_lines(&text[..], f).expect("in-memory read");
                let _ = s.lookup_bytes(&q);
                for r in s.iter() {
                    prop_assert!(s.contains(r));
                }
            }
        }
    }
}
