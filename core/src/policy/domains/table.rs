//! The domain set's storage: names inline in cache-line buckets, so that
//! probing one suffix costs about one memory latency, hit or miss.
//!
//! A 3 M-name set is ~85 MB, so a probe of a name not seen recently is a
//! cache miss (~150–220 ns on the bench VM). A table of offsets into a name
//! arena needs two dependent misses to confirm a hit (slot, then name);
//! here the names sit in the lines that are probed.
//!
//! - The table is an array of 64-byte, 64-byte-aligned lines. Two header
//!   bytes, then entries back to back: `[len][list tag][name]` (lowercase),
//!   or `[len][list tag][u32 offset]` into a side arena for names longer
//!   than [`INLINE_MAX`] (rare in real lists; they cost a second access).
//! - Each name has three candidate lines (bucketized cuckoo hashing): with
//!   three choices ~22-byte names fill lines to ~84 % before one finds no
//!   room (two choices: ~70 %), which keeps memory per name below an
//!   offset table plus arena. A name goes to its first line when that has
//!   room; when it cannot, the first line's header records a bit of its
//!   hash ("displaced"). A lookup prefetches all three lines but waits for
//!   the first only, unless that line has the name's displaced bit — about
//!   one miss in eight at the usual fill.
//! - An entry that finds no room after [`MAX_KICKS`] moves goes to a small
//!   stash, sorted by hash; its first line is flagged, so lookups landing
//!   elsewhere (nearly all) never look there.
//! - List ids are tags into a small table (the first 255 distinct ids);
//!   rules of any further list live in the stash with their id.

use super::{rule_hash, InvalidReason};

const LINE: usize = 64;
/// Byte 0: bytes in use and the stash flag; byte 1: which hashes of the
/// names whose first line this is were placed elsewhere.
const HEADER: usize = 2;
const AREA: usize = LINE - HEADER;
/// Longest name stored inline: `[len][tag]` + name fills a line.
const INLINE_MAX: usize = AREA - 2;
const LONG_REF: usize = 4;
/// Header flag: an entry with this first line is in the stash.
const STASHED: u8 = 0x80;
const USED: u8 = 0x3f;
/// Tags index `lists`; past this many distinct lists rules are stashed.
const MAX_TAGS: usize = 255;
/// Cuckoo moves before an entry is stashed.
const MAX_KICKS: usize = 500;
/// A stash longer than this makes the table grow (if it is not sparse:
/// names crafted to share their lines must not make it grow forever).
const STASH_MAX: usize = 64;
/// Entry bytes per 100 bytes of line area. Sized for `TARGET_FILL` when
/// the count is known (`reserve`), a table grows beyond `GROW_FILL`; else
/// (names arriving one by one) it doubles beyond `UNSIZED_GROW_FILL`, where
/// a place is found without long walks, and `build` packs it to
/// `TARGET_FILL` once when below `SHRINK_BELOW`. A stash overflow makes it
/// grow only above `SPARSE`.
const GROW_FILL: usize = 86;
const UNSIZED_GROW_FILL: usize = 60;
const SHRINK_BELOW: usize = 70;
const TARGET_FILL: usize = 80;
const SPARSE: usize = 55;
const MIN_LINES: usize = 4;
/// Candidate lines per name (see the module comment).
const WAYS: usize = 3;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; LINE]);

impl Line {
    const EMPTY: Line = Line([0; LINE]);

    #[inline]
    fn used(&self) -> usize {
        usize::from(self.0[0] & USED)
    }

    #[inline]
    fn free(&self) -> usize {
        AREA - self.used()
    }

    #[inline]
    fn area(&self) -> &[u8] {
        &self.0[HEADER..HEADER + self.used()]
    }

    /// Whether a name with `hash` and this first line may be elsewhere.
    #[inline]
    fn may_be_elsewhere(&self, hash: u64) -> bool {
        self.0[1] & displaced_bit(hash) != 0
    }
}

#[inline]
fn displaced_bit(hash: u64) -> u8 {
    // Bits 8–10 barely move the first line's multiply-shift index.
    1 << ((hash >> 8) & 7)
}

/// One encoded entry on its way between lines.
#[derive(Clone, Copy)]
struct Entry {
    hash: u64,
    size: usize,
    bytes: [u8; AREA],
}

#[derive(Debug, Clone)]
struct Stashed {
    hash: u64,
    name: Box<[u8]>,
    list: u16,
}

/// A stored rule: its bytes (lowercase) and list id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hit<'a> {
    pub name: &'a [u8],
    pub list: u16,
}

#[derive(Clone)]
pub(super) struct Table {
    lines: Vec<Line>,
    /// Entry bytes in `lines` (headers excluded).
    used: usize,
    len: usize,
    long: Vec<u8>,
    stash: Vec<Stashed>,
    lists: Vec<u16>,
    rng: u64,
    /// Sized by `reserve` for what is coming.
    sized: bool,
    /// [`rule_hash`]; tests put a weaker one to force shared lines.
    hash_of: fn(&[u8]) -> u64,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("lines", &self.lines.len())
            .field("used", &self.used)
            .field("len", &self.len)
            .field("long", &self.long.len())
            .field("stash", &self.stash.len())
            .field("lists", &self.lists)
            .finish()
    }
}

impl Default for Table {
    fn default() -> Self {
        Table::with_lines(MIN_LINES)
    }
}

#[inline]
fn entry_size(len: usize) -> usize {
    2 + if len <= INLINE_MAX { len } else { LONG_REF }
}

/// Lines for `bytes` of entries at `fill` percent.
fn lines_for(bytes: usize, fill: usize) -> usize {
    (bytes.saturating_mul(100) / (AREA * fill) + 1).max(MIN_LINES)
}

impl Table {
    fn with_lines(n: usize) -> Self {
        // Two 32-bit hash halves pick the lines: at most 2^32 of them.
        let n = n.clamp(MIN_LINES, u32::MAX as usize);
        let mut lines = Vec::with_capacity(n);
        super::advise_huge_pages(&lines);
        lines.resize(n, Line::EMPTY);
        Table {
            lines,
            used: 0,
            len: 0,
            long: Vec::new(),
            stash: Vec::new(),
            lists: Vec::new(),
            rng: 0x9E37_79B9_7F4A_7C15,
            sized: false,
            hash_of: rule_hash,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.lines.capacity() * LINE
            + self.long.capacity()
            + self.lists.capacity() * 2
            + self.stash.capacity() * std::mem::size_of::<Stashed>()
            + self.stash.iter().map(|s| s.name.len()).sum::<usize>()
    }

    /// Average entry size so far, or a typical one for an empty table.
    fn avg_entry(&self) -> usize {
        if self.len >= 1024 {
            self.used.div_ceil(self.len.max(1))
        } else {
            24
        }
    }

    /// Room for `rules` more rules read from `bytes` of list (None: an
    /// estimate from what is already in) without growing on the way.
    pub(super) fn reserve(&mut self, rules: usize, bytes: Option<usize>) {
        let more = match bytes {
            // A list line is its name and a newline; an entry its name and two bytes.
            Some(b) => b.saturating_add(rules),
            None => rules.saturating_mul(self.avg_entry()),
        };
        let want = lines_for(self.used.saturating_add(more), TARGET_FILL);
        if want > self.lines.len() {
            self.rebuild(want, usize::MAX);
        }
        self.sized = true;
    }

    /// Pack a table that grew name by name, or give back most of an
    /// over-estimated reservation.
    pub(super) fn shrink_if_sparse(&mut self) {
        if self.used * 100 < self.lines.len() * AREA * SHRINK_BELOW {
            self.rebuild(lines_for(self.used, TARGET_FILL), self.lines.len());
        }
        self.long.shrink_to_fit();
        self.stash.shrink_to_fit();
        self.lists.shrink_to_fit();
    }

    /// The candidate lines of a hash.
    #[inline]
    fn buckets(&self, hash: u64) -> [usize; WAYS] {
        // Multiply-shift maps 32 hash bits onto any line count (no power
        // of two needed, so the table is sized to the names).
        let n = self.lines.len() as u64;
        let third = hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        [
            (((hash & 0xffff_ffff) * n) >> 32) as usize,
            (((hash >> 32) * n) >> 32) as usize,
            ((third * n) >> 32) as usize,
        ]
    }

    /// Start fetching the candidate lines of `hash`.
    #[inline]
    pub(super) fn prefetch(&self, hash: u64) {
        for i in self.buckets(hash) {
            if let Some(l) = self.lines.get(i) {
                prefetch_line(l);
            }
        }
    }

    /// The stored rule equal to `name` (lowercase), whose hash is `hash`.
    /// Most names are in their first line, and most misses learn from that
    /// line's header that no name with their hash was put elsewhere: then
    /// the other lines are not waited for.
    #[inline]
    pub(super) fn find(&self, hash: u64, name: &[u8]) -> Option<Hit<'_>> {
        let [first, rest @ ..] = self.buckets(hash);
        // Asked for now, so that when the first line says the name may be
        // elsewhere their misses have overlapped with its own.
        for &i in &rest {
            if let Some(l) = self.lines.get(i) {
                prefetch_line(l);
            }
        }
        let home = self.lines.get(first)?;
        if let Some(hit) = self.scan(home, name) {
            return Some(hit);
        }
        if !home.may_be_elsewhere(hash) {
            return None;
        }
        for i in rest {
            if i != first {
                if let Some(hit) = self.scan(self.lines.get(i)?, name) {
                    return Some(hit);
                }
            }
        }
        if home.0[0] & STASHED != 0 {
            return self.stash_find(hash, name);
        }
        None
    }

    #[inline]
    fn scan<'a>(&'a self, line: &'a Line, name: &[u8]) -> Option<Hit<'a>> {
        let bytes = line.area();
        let want = name.len();
        let mut at = 0;
        while let (Some(&len), Some(&tag)) = (bytes.get(at), bytes.get(at + 1)) {
            let len = usize::from(len);
            let body = at + 2;
            if len <= INLINE_MAX {
                if len == want {
                    let stored = bytes.get(body..body + len)?;
                    if stored == name {
                        return Some(self.hit(stored, tag));
                    }
                }
                at = body + len;
            } else {
                if len == want {
                    let stored = self.long_name(bytes.get(body..body + LONG_REF)?, len)?;
                    if stored == name {
                        return Some(self.hit(stored, tag));
                    }
                }
                at = body + LONG_REF;
            }
        }
        None
    }

    #[inline]
    fn hit<'a>(&'a self, name: &'a [u8], tag: u8) -> Hit<'a> {
        Hit {
            name,
            list: self.lists.get(usize::from(tag)).copied().unwrap_or(0),
        }
    }

    fn long_name(&self, offset: &[u8], len: usize) -> Option<&[u8]> {
        let off = u32::from_le_bytes(offset.try_into().ok()?) as usize;
        self.long.get(off..off + len)
    }

    fn stash_find(&self, hash: u64, name: &[u8]) -> Option<Hit<'_>> {
        let from = self.stash.partition_point(|s| s.hash < hash);
        self.stash[from..]
            .iter()
            .take_while(|s| s.hash == hash)
            .find(|s| &*s.name == name)
            .map(|s| Hit {
                name: &s.name,
                list: s.list,
            })
    }

    /// Add a rule known not to be in (`name` lowercase, `hash` its
    /// [`rule_hash`]). May grow the table.
    pub(super) fn insert(
        &mut self,
        hash: u64,
        name: &[u8],
        list: u16,
    ) -> Result<(), InvalidReason> {
        let size = entry_size(name.len());
        if self.used + self.long.len() + size + name.len() >= u32::MAX as usize {
            return Err(InvalidReason::SetFull);
        }
        let grow_at = if self.sized {
            GROW_FILL
        } else {
            UNSIZED_GROW_FILL
        };
        if (self.used + size) * 100 > self.lines.len() * AREA * grow_at {
            self.rebuild(self.lines.len() * 2, usize::MAX);
        }
        self.insert_raw(hash, name, list);
        if self.stash.len() > STASH_MAX && !self.sparse() {
            self.rebuild(self.lines.len() + self.lines.len() / 4, usize::MAX);
        }
        Ok(())
    }

    /// Insert without any growth check.
    fn insert_raw(&mut self, hash: u64, name: &[u8], list: u16) {
        self.len += 1;
        let tag = match self.lists.iter().position(|&l| l == list) {
            Some(t) => t,
            None if self.lists.len() < MAX_TAGS => {
                self.lists.push(list);
                self.lists.len() - 1
            }
            None => {
                self.stash_push(hash, name, list);
                return;
            }
        };
        let mut e = Entry {
            hash,
            size: entry_size(name.len()),
            bytes: [0; AREA],
        };
        e.bytes[0] = name.len() as u8;
        e.bytes[1] = tag as u8;
        if name.len() <= INLINE_MAX {
            e.bytes[2..2 + name.len()].copy_from_slice(name);
        } else {
            // Bounded by the SetFull check in `insert`.
            let off = self.long.len() as u32;
            self.long.extend_from_slice(name);
            e.bytes[2..2 + LONG_REF].copy_from_slice(&off.to_le_bytes());
        }
        self.place(e);
    }

    /// Put an entry in one of its lines, moving others to another of theirs
    /// when all are full (a random walk); stash what finds no room.
    fn place(&mut self, e: Entry) {
        let cands = self.buckets(e.hash);
        // The first line if it has room (lookups wait for it only); else
        // best fit: the fullest line that still has room, leaving the larger
        // holes for larger names.
        let first = Some(cands[0])
            .filter(|&i| self.lines[i].free() >= e.size)
            .or_else(|| {
                cands
                    .iter()
                    .copied()
                    .filter(|&i| self.lines[i].free() >= e.size)
                    .min_by_key(|&i| self.lines[i].free())
            });
        if let Some(first) = first {
            self.append(first, &e);
            return;
        }
        let start = cands[(self.next_rng() % WAYS as u64) as usize];
        let mut work = vec![(e, start)];
        let mut kicks = 0;
        while let Some((cur, at)) = work.pop() {
            if self.lines[at].free() >= cur.size {
                self.append(at, &cur);
                continue;
            }
            if kicks >= MAX_KICKS {
                self.stash_entry(&cur);
                continue;
            }
            kicks += 1;
            if let Some((victim, alt)) = self.movable(at, cur.size) {
                self.append(alt, &victim);
            }
            while self.lines[at].free() < cur.size {
                let victim = self.evict_random(at);
                let alt = self.other_line(victim.hash, at);
                work.push((victim, alt));
            }
            self.append(at, &cur);
        }
    }

    fn append(&mut self, line: usize, e: &Entry) {
        let first = self.buckets(e.hash)[0];
        if first != line {
            self.lines[first].0[1] |= displaced_bit(e.hash);
        }
        let l = &mut self.lines[line];
        let used = l.used();
        l.0[HEADER + used..HEADER + used + e.size].copy_from_slice(&e.bytes[..e.size]);
        l.0[0] = (l.0[0] & !USED) | (used + e.size) as u8;
        self.used += e.size;
    }

    /// Take out of `line` an entry whose other line has room for it and
    /// whose leaving makes room for `need` bytes, if there is one.
    fn movable(&mut self, line: usize, need: usize) -> Option<(Entry, usize)> {
        let l = &self.lines[line];
        let free = l.free();
        let bytes = l.area();
        let (pick, alt) = entries(bytes).enumerate().find_map(|(i, (start, size))| {
            if free + size < need {
                return None;
            }
            let name = self.entry_name(&bytes[start..start + size])?;
            let alt = self.other_line((self.hash_of)(name), line);
            (alt != line && self.lines[alt].free() >= size).then_some((i, alt))
        })?;
        Some((self.evict(line, pick), alt))
    }

    /// The candidate line of `hash` other than `line` with the most room.
    fn other_line(&self, hash: u64, line: usize) -> usize {
        self.buckets(hash)
            .into_iter()
            .filter(|&i| i != line)
            .max_by_key(|&i| self.lines[i].free())
            .unwrap_or(line)
    }

    fn evict_random(&mut self, line: usize) -> Entry {
        let count = entries(self.lines[line].area()).count();
        let pick = (self.next_rng() % count.max(1) as u64) as usize;
        self.evict(line, pick)
    }

    fn evict(&mut self, line: usize, pick: usize) -> Entry {
        let (start, size) = entries(self.lines[line].area()).nth(pick).unwrap_or((0, 0));
        let mut e = Entry {
            hash: 0,
            size,
            bytes: [0; AREA],
        };
        let l = &mut self.lines[line];
        let used = l.used();
        let at = HEADER + start;
        e.bytes[..size].copy_from_slice(&l.0[at..at + size]);
        l.0.copy_within(at + size..HEADER + used, at);
        l.0[HEADER + used - size..HEADER + used].fill(0);
        l.0[0] = (l.0[0] & !USED) | (used - size) as u8;
        self.used -= size;
        e.hash = (self.hash_of)(self.entry_name(&e.bytes[..size]).unwrap_or_default());
        e
    }

    /// The name bytes of an encoded entry.
    fn entry_name<'a>(&'a self, entry: &'a [u8]) -> Option<&'a [u8]> {
        let len = usize::from(*entry.first()?);
        if len <= INLINE_MAX {
            entry.get(2..2 + len)
        } else {
            self.long_name(entry.get(2..2 + LONG_REF)?, len)
        }
    }

    fn stash_entry(&mut self, e: &Entry) {
        let name = self
            .entry_name(&e.bytes[..e.size])
            .unwrap_or_default()
            .to_vec();
        let list = self.hit(&[], e.bytes[1]).list;
        self.stash_push(e.hash, &name, list);
    }

    fn stash_push(&mut self, hash: u64, name: &[u8], list: u16) {
        let first = self.buckets(hash)[0];
        self.lines[first].0[0] |= STASHED;
        self.lines[first].0[1] |= displaced_bit(hash);
        let at = self.stash.partition_point(|s| s.hash <= hash);
        self.stash.insert(
            at,
            Stashed {
                hash,
                name: name.into(),
                list,
            },
        );
    }

    /// Re-place every rule into at least `lines` lines, more while the
    /// stash overflows (names of one size pack worse than a mix: two
    /// 25-byte names fill a line at 80 %) — but not below [`SPARSE`],
    /// where the stash holds names made to share their lines. `limit`:
    /// keep the table as it is rather than reach that many lines.
    fn rebuild(&mut self, mut lines: usize, limit: usize) {
        loop {
            if lines >= limit {
                return;
            }
            let next = self.rebuilt(lines);
            if next.stash.len() <= STASH_MAX || next.sparse() {
                *self = next;
                return;
            }
            lines += lines / 4 + 1;
        }
    }

    fn rebuilt(&self, lines: usize) -> Table {
        let mut next = Table::with_lines(lines);
        next.lists = self.lists.clone();
        next.rng = self.rng;
        next.hash_of = self.hash_of;
        next.long.reserve(self.long.len());
        // In batches whose lines are prefetched first: the new places are
        // random, and waiting for each in turn made growing 4× slower.
        let mut batch: Vec<(u64, &[u8], u16)> = Vec::with_capacity(16);
        let mut names = self.iter().peekable();
        while names.peek().is_some() {
            batch.clear();
            for (name, list) in names.by_ref().take(16) {
                let hash = (self.hash_of)(name);
                next.prefetch(hash);
                batch.push((hash, name, list));
            }
            for &(hash, name, list) in &batch {
                next.insert_raw(hash, name, list);
            }
        }
        next
    }

    fn sparse(&self) -> bool {
        self.used * 100 < self.lines.len() * AREA * SPARSE
    }

    fn next_rng(&mut self) -> u64 {
        // xorshift64: a deterministic build.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Every rule with its list id: line by line, then the stash.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], u16)> + '_ {
        self.lines
            .iter()
            .flat_map(move |l| {
                let bytes = l.area();
                entries(bytes).filter_map(move |(start, size)| {
                    let e = &bytes[start..start + size];
                    Some((self.entry_name(e)?, self.hit(&[], e[1]).list))
                })
            })
            .chain(self.stash.iter().map(|s| (&*s.name, s.list)))
    }
}

/// (start, size) of each entry in a line's entry area.
fn entries(bytes: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = usize::from(*bytes.get(at)?);
        if len == 0 {
            return None;
        }
        let start = at;
        at += entry_size(len);
        (at <= bytes.len()).then_some((start, at - start))
    })
}

/// Ask for a line ahead of its use, so the misses of several probes overlap.
#[inline]
fn prefetch_line(line: &Line) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint; it never faults and `line` is a
        // live reference anyway.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(line.0.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // An independent load: out-of-order execution overlaps it with the
        // others issued before the first probe waits.
        std::hint::black_box(line.0[0]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A table whose hash keeps only a few bits (`hash_of`), so names
    /// share lines and displaced bits as often as wanted; `grow`: through
    /// `insert` (growing), else without growth (more go to the stash).
    fn filled(
        names: &[(String, u16)],
        hash_of: fn(&[u8]) -> u64,
        lines: usize,
        grow: bool,
    ) -> Table {
        let mut t = Table::with_lines(lines);
        t.hash_of = hash_of;
        let mut seen = HashMap::new();
        for (n, list) in names {
            let h = hash_of(n.as_bytes());
            if t.find(h, n.as_bytes()).is_some() {
                assert!(seen.contains_key(n), "{n} found before it was added");
                continue;
            }
            seen.insert(n.clone(), *list);
            if grow {
                t.insert(h, n.as_bytes(), *list).expect("room");
            } else {
                t.insert_raw(h, n.as_bytes(), *list);
            }
        }
        assert_eq!(t.len(), seen.len());
        t
    }

    /// The top `BITS` bits of both hash halves (they pick the lines) and
    /// nothing else (the displaced bits are then shared too).
    fn cut<const BITS: u32>(name: &[u8]) -> u64 {
        let keep = if BITS == 0 { 0 } else { !0u64 << (32 - BITS) } & 0xffff_ffff;
        rule_hash(name) & (keep | keep << 32)
    }

    const HASHES: [fn(&[u8]) -> u64; 5] = [cut::<0>, cut::<1>, cut::<3>, cut::<8>, rule_hash];

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z0-9]{1,12}(\\.[a-z]{2,3}){1,2}",
            1 => "[a-z]{50,63}\\.[a-z]{2,6}",
            1 => "[a-z]{1,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn colliding_hashes_stay_exact(
            names in prop::collection::vec((name(), 0u16..4), 1..200),
            probes in prop::collection::vec(name(), 0..50),
            which in 0..HASHES.len(),
            lines in 4usize..40,
            grow in any::<bool>(),
        ) {
            let hash_of = HASHES[which];
            let t = filled(&names, hash_of, lines, grow);
            let mut want: HashMap<&str, u16> = HashMap::new();
            for (n, l) in &names {
                want.entry(n.as_str()).or_insert(*l);
            }
            for (n, l) in &want {
                let hit = t.find(hash_of(n.as_bytes()), n.as_bytes());
                prop_assert_eq!(hit.map(|h| (h.name, h.list)), Some((n.as_bytes(), *l)));
            }
            for p in &probes {
                let hit = t.find(hash_of(p.as_bytes()), p.as_bytes()).map(|h| h.name);
                prop_assert_eq!(hit.is_some(), want.contains_key(p.as_str()), "{}", p);
            }
            let mut all: Vec<(&[u8], u16)> = t.iter().collect();
            all.sort_unstable();
            let mut exp: Vec<(&[u8], u16)> = want.iter().map(|(n, l)| (n.as_bytes(), *l)).collect();
            exp.sort_unstable();
            prop_assert_eq!(all, exp);
        }

        #[test]
        fn growing_keeps_every_name(names in prop::collection::vec((name(), 0u16..300), 1..400)) {
            let t = filled(&names, rule_hash, 4, true);
            for (n, _) in &names {
                prop_assert!(t.find(rule_hash(n.as_bytes()), n.as_bytes()).is_some());
            }
            prop_assert_eq!(t.iter().count(), t.len());
        }
    }

    #[test]
    fn one_shared_hash_goes_to_the_stash() {
        let names: Vec<(String, u16)> = (0..40).map(|i| (format!("n{i}.com"), i % 3)).collect();
        let t = filled(&names, cut::<0>, 64, false);
        assert!(!t.stash.is_empty(), "three lines cannot hold 40 names");
        for (n, l) in &names {
            assert_eq!(t.find(0, n.as_bytes()).map(|h| h.list), Some(*l), "{n}");
        }
        assert!(t.find(0, b"n40.com").is_none());
    }

    #[test]
    fn more_lists_than_tags() {
        let mut t = Table::default();
        for i in 0..600u16 {
            let n = format!("l{i}.id");
            t.insert(rule_hash(n.as_bytes()), n.as_bytes(), i)
                .expect("room");
        }
        for i in 0..600u16 {
            let n = format!("l{i}.id");
            assert_eq!(
                t.find(rule_hash(n.as_bytes()), n.as_bytes())
                    .map(|h| h.list),
                Some(i)
            );
        }
    }

    #[test]
    fn names_of_one_size_still_fit() {
        // 22-byte entries: two to a line, so the table must grow past the
        // reserved size rather than stash.
        let mut t = Table::default();
        let n = 30_000;
        t.reserve(n, Some(n * 21));
        for i in 0..n {
            let name = format!("w{i:06}x.example.com");
            t.insert(rule_hash(name.as_bytes()), name.as_bytes(), 0)
                .expect("room");
        }
        // As `DomainSetBuilder::build` does.
        t.shrink_if_sparse();
        assert!(t.stash.len() <= STASH_MAX, "{t:?}");
        assert!(t.memory_bytes() < n * 40, "{t:?}");
        for i in 0..n {
            let name = format!("w{i:06}x.example.com");
            assert!(t
                .find(rule_hash(name.as_bytes()), name.as_bytes())
                .is_some());
        }
    }

    #[test]
    fn packs_names_densely_and_mostly_at_home() {
        // ~22-byte entries, as in real lists: the memory per name the
        // design promises (BENCHMARKS.md, section `domains`).
        let mut t = Table::default();
        let n = 200_000;
        t.reserve(n, Some(n * 20));
        let letters = "abcdefghijklmnopqrstuvwxyz";
        for i in 0..n {
            let name = format!(
                "{}{i}.{}",
                &letters[..(i * 7) % 20 + 1],
                ["com", "co.id", "xyz", "net"][i % 4]
            );
            t.insert(rule_hash(name.as_bytes()), name.as_bytes(), 0)
                .expect("room");
        }
        let per_name = t.memory_bytes() as f64 / n as f64;
        assert!(per_name < 32.0, "{per_name:.1} bytes per name, {t:?}");
        assert!(t.stash.len() <= STASH_MAX, "{t:?}");
        // A miss waits for the other lines only when the first line's
        // displaced bits say so.
        let flagged = (0..10_000u64)
            .map(super::super::finish)
            .filter(|&h| t.lines[t.buckets(h)[0]].may_be_elsewhere(h))
            .count();
        assert!(
            flagged < 2_500,
            "{flagged} of 10000 misses read three lines"
        );
    }
}
