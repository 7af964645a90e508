//! permessage-deflate (RFC 7692) for the live feed, server to page only.
//!
//! axum's WebSocket (tungstenite 0.29) cannot negotiate the extension, so
//! the feed upgrades by hand and compresses itself: each message is
//! deflated with a sync flush (the trailing 00 00 ff ff dropped) and sent
//! as one frame with RSV1 set; the browser inflates it natively. The
//! compressor keeps its window between messages (context takeover): a
//! second's patch is mostly the same keys as the one before, which then
//! cost a back-reference each. That window is ~300 KB a page, so only the
//! first [`MAX_DEFLATE_FEEDS`] pages get it; the rest are sent plain.
//! Pages send the feed nothing but control frames, which are never
//! compressed, so there is no inflating side here.

use std::sync::atomic::{AtomicUsize, Ordering};

use flate2::{Compress, Compression, FlushCompress};

/// Pages with a compressor at most (each holds its window and tables).
pub const MAX_DEFLATE_FEEDS: usize = 256;

static DEFLATE_FEEDS: AtomicUsize = AtomicUsize::new(0);

/// What the page offered, as we accept it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    /// The page asked us to start every message afresh.
    pub server_no_context_takeover: bool,
}

impl Offer {
    /// The response header's value.
    pub fn response(self) -> &'static str {
        if self.server_no_context_takeover {
            "permessage-deflate; server_no_context_takeover"
        } else {
            "permessage-deflate"
        }
    }
}

/// The first permessage-deflate offer in `Sec-WebSocket-Extensions`
/// values that we can honour. We cannot shrink our window below 15 bits
/// (the pure-Rust deflate has a fixed one), so an offer asking for that is
/// passed over.
pub fn negotiate<'a>(values: impl IntoIterator<Item = &'a str>) -> Option<Offer> {
    for offer in values.into_iter().flat_map(|v| v.split(',')) {
        let mut parts = offer.split(';').map(str::trim);
        if parts.next() != Some("permessage-deflate") {
            continue;
        }
        let mut ok = true;
        let mut no_takeover = false;
        let mut seen = Vec::new();
        for p in parts {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            };
            if seen.contains(&name) {
                ok = false;
            }
            seen.push(name);
            match (name, value) {
                ("server_no_context_takeover", None) => no_takeover = true,
                ("client_no_context_takeover", None) => {}
                ("client_max_window_bits", None) => {}
                ("client_max_window_bits", Some(v)) => {
                    ok &= v.parse::<u8>().is_ok_and(|b| (8..=15).contains(&b));
                }
                ("server_max_window_bits", Some(v)) => ok &= v == "15",
                _ => ok = false,
            }
        }
        if ok {
            return Some(Offer {
                server_no_context_takeover: no_takeover,
            });
        }
    }
    None
}

/// One page's compressor; holds its place among [`MAX_DEFLATE_FEEDS`].
pub struct Deflater {
    c: Compress,
    reset_each: bool,
}

impl Deflater {
    /// A compressor, unless [`MAX_DEFLATE_FEEDS`] pages have one already.
    pub fn take(offer: Offer) -> Option<Deflater> {
        let n = DEFLATE_FEEDS.fetch_add(1, Ordering::Relaxed);
        if n >= MAX_DEFLATE_FEEDS {
            DEFLATE_FEEDS.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Deflater {
            c: Compress::new(Compression::new(6), false),
            reset_each: offer.server_no_context_takeover,
        })
    }

    /// One message's compressed payload.
    pub fn compress(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        if self.reset_each {
            self.c.reset();
        }
        let start = self.c.total_in();
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let done = usize::try_from(self.c.total_in() - start).unwrap_or(usize::MAX);
            let rest = data.get(done..).unwrap_or_default();
            self.c
                .compress_vec(rest, &mut out, FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            let done = usize::try_from(self.c.total_in() - start).unwrap_or(usize::MAX);
            // A sync flush is complete when it left room in the buffer.
            if done >= data.len() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&[0, 0, 0xff, 0xff]) {
            out.truncate(out.len() - 4);
        }
        Ok(out)
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        DEFLATE_FEEDS.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    #[test]
    fn offers() {
        let on = Some(Offer {
            server_no_context_takeover: false,
        });
        assert_eq!(
            negotiate(["permessage-deflate; client_max_window_bits"]),
            on
        );
        assert_eq!(negotiate(["permessage-deflate"]), on);
        assert_eq!(
            negotiate(["permessage-deflate; server_max_window_bits=10, permessage-deflate"]),
            on,
            "the second offer is taken"
        );
        assert_eq!(
            negotiate(["permessage-deflate; server_no_context_takeover"]),
            Some(Offer {
                server_no_context_takeover: true
            })
        );
        assert_eq!(
            negotiate(["permessage-deflate; server_max_window_bits=10"]),
            None
        );
        assert_eq!(negotiate(["x-webkit-deflate-frame"]), None);
        assert_eq!(negotiate(["permessage-deflate; bogus"]), None);
        assert_eq!(negotiate([]), None);
    }

    /// Messages compressed in one context inflate in order with one
    /// inflater, as a browser does.
    #[test]
    fn round_trip_with_context_takeover() {
        for reset in [false, true] {
            let mut d = Deflater::take(Offer {
                server_no_context_takeover: reset,
            })
            .unwrap();
            let mut inf = Decompress::new(false);
            let mut sizes = Vec::new();
            for i in 0..5 {
                let msg = format!(
                    r#"{{"type":"delta","seq":{i},"o":{{"ts":"2026-01-01T00:00:0{i}Z"}}}}"#
                )
                .repeat(20);
                let mut z = d.compress(msg.as_bytes()).unwrap();
                sizes.push(z.len());
                z.extend_from_slice(&[0, 0, 0xff, 0xff]);
                if reset {
                    inf = Decompress::new(false);
                }
                let mut out = Vec::with_capacity(msg.len() + 64);
                inf.decompress_vec(&z, &mut out, FlushDecompress::Sync)
                    .unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), msg);
            }
            if !reset {
                assert!(sizes[4] < sizes[0], "context helps: {sizes:?}");
            }
        }
    }
}
