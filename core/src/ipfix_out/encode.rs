//! IPFIX messages (RFC 7011 §3) from biflow records: each no longer than the
//! configured size, the templates at the start of the first message and
//! again every N seconds or M messages (UDP has no other way to tell a
//! collector that restarted), the sequence number counting data records.

use super::elements::{self, BiflowRecord, MAX_RECORD, TEMPLATE_V4, TEMPLATE_V6};

const VERSION: u16 = 10;
const HEADER: usize = 16;
const SET_HEADER: usize = 4;
const TEMPLATE_SET: u16 = 2;
/// IPv6 (40) + UDP (8): the headers below an IPFIX message, counted for
/// either family so one setting holds for both.
pub const IP_UDP_OVERHEAD: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderSettings {
    pub observation_domain: u32,
    /// Longest message in bytes ([`EncoderSettings::message_limit`] from the
    /// path MTU).
    pub max_message: usize,
    /// Send the templates again after this long (unix nanoseconds, as the
    /// `now` arguments).
    pub template_refresh_ns: u64,
    /// … or after this many messages; 0 = by time only.
    pub template_refresh_messages: u32,
}

impl EncoderSettings {
    /// The largest message that fits a UDP datagram within `mtu`.
    pub fn message_limit(mtu: usize) -> usize {
        mtu.saturating_sub(IP_UDP_OVERHEAD).min(u16::MAX as usize)
    }

    /// The smallest path MTU the encoder works with: the largest record, or
    /// both templates, in one message.
    pub fn min_mtu() -> usize {
        min_message() + IP_UDP_OVERHEAD
    }
}

fn template_set_len() -> usize {
    let mut v = Vec::new();
    elements::write_template(false, &mut v);
    elements::write_template(true, &mut v);
    SET_HEADER + v.len()
}

fn min_message() -> usize {
    HEADER + (SET_HEADER + MAX_RECORD).max(template_set_len())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the message limit {got} bytes is below the {min} bytes one record or the templates need (path MTU at least {min_mtu})")]
    TooSmall {
        got: usize,
        min: usize,
        min_mtu: usize,
    },
    #[error("the message limit {0} bytes is above IPFIX's 65535")]
    TooLarge(usize),
    #[error("the template refresh interval must be above zero")]
    NoRefresh,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("source {src} and destination {dst} are of different address families")]
    MixedFamilies {
        src: std::net::IpAddr,
        dst: std::net::IpAddr,
    },
}

/// Builds messages; the caller sends each one as one UDP datagram.
#[derive(Debug)]
pub struct Encoder {
    s: EncoderSettings,
    /// The message being built; empty when none is open.
    buf: Vec<u8>,
    /// The open data set: its header's offset and id.
    open_set: Option<(usize, u16)>,
    records_in_message: u32,
    scratch: Vec<u8>,
    /// Data records in the messages finished so far (RFC 7011 §3.1).
    seq: u32,
    templates_sent_at: Option<u64>,
    messages_since_templates: u32,
    /// Messages finished.
    pub messages: u64,
    /// Data records written.
    pub records: u64,
    /// Messages that carried the templates.
    pub template_messages: u64,
}

impl Encoder {
    pub fn new(s: EncoderSettings) -> Result<Self, SettingsError> {
        let min = min_message();
        if s.max_message < min {
            return Err(SettingsError::TooSmall {
                got: s.max_message,
                min,
                min_mtu: min + IP_UDP_OVERHEAD,
            });
        }
        if s.max_message > u16::MAX as usize {
            return Err(SettingsError::TooLarge(s.max_message));
        }
        if s.template_refresh_ns == 0 {
            return Err(SettingsError::NoRefresh);
        }
        Ok(Self {
            buf: Vec::with_capacity(s.max_message),
            s,
            open_set: None,
            records_in_message: 0,
            scratch: Vec::with_capacity(MAX_RECORD),
            seq: 0,
            templates_sent_at: None,
            messages_since_templates: 0,
            messages: 0,
            records: 0,
            template_messages: 0,
        })
    }

    /// Records waiting in the open message.
    pub fn pending(&self) -> u32 {
        self.records_in_message
    }

    /// Add one record; a message that fills up is finished into `out`.
    pub fn add(
        &mut self,
        r: &BiflowRecord<'_>,
        now_ns: u64,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<(), EncodeError> {
        let set_id = match (r.src, r.dst) {
            (std::net::IpAddr::V4(_), std::net::IpAddr::V4(_)) => TEMPLATE_V4,
            (std::net::IpAddr::V6(_), std::net::IpAddr::V6(_)) => TEMPLATE_V6,
            (src, dst) => return Err(EncodeError::MixedFamilies { src, dst }),
        };
        self.scratch.clear();
        elements::write_record(r, &mut self.scratch);
        if self.buf.is_empty() {
            self.start(now_ns);
        }
        if !self.fits(set_id) {
            self.finish(now_ns, out);
            self.start(now_ns);
            if !self.fits(set_id) {
                // Only the templates fit beside the header: send them alone,
                // then the record in a message of its own, even when the
                // templates are due with every message (they just went out).
                self.finish(now_ns, out);
                self.open(now_ns, false);
            }
        }
        if self.open_set.map(|(_, id)| id) != Some(set_id) {
            self.close_set();
            self.open_set = Some((self.buf.len(), set_id));
            self.buf.extend_from_slice(&set_id.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        self.buf.extend_from_slice(&self.scratch);
        self.records_in_message += 1;
        self.records += 1;
        Ok(())
    }

    /// Finish the open message, if it holds any record.
    pub fn flush(&mut self, now_ns: u64, out: &mut Vec<Vec<u8>>) {
        if self.records_in_message > 0 {
            self.finish(now_ns, out);
        }
    }

    /// With nothing pending and the templates due, a message of templates
    /// only (a collector that restarted learns them without waiting for
    /// traffic).
    pub fn refresh_if_due(&mut self, now_ns: u64, out: &mut Vec<Vec<u8>>) {
        if self.buf.is_empty() && self.templates_due(now_ns) {
            self.start(now_ns);
            self.finish(now_ns, out);
        }
    }

    fn templates_due(&self, now_ns: u64) -> bool {
        match self.templates_sent_at {
            None => true,
            Some(t) => {
                now_ns.saturating_sub(t) >= self.s.template_refresh_ns
                    || (self.s.template_refresh_messages > 0
                        && self.messages_since_templates >= self.s.template_refresh_messages)
            }
        }
    }

    fn fits(&self, set_id: u16) -> bool {
        let set = if self.open_set.map(|(_, id)| id) == Some(set_id) {
            0
        } else {
            SET_HEADER
        };
        self.buf.len() + set + self.scratch.len() <= self.s.max_message
    }

    fn start(&mut self, now_ns: u64) {
        self.open(now_ns, true);
    }

    /// A new message, led by the templates when `templates` and they are due.
    fn open(&mut self, now_ns: u64, templates: bool) {
        self.buf.clear();
        self.buf.resize(HEADER, 0);
        self.records_in_message = 0;
        self.open_set = None;
        if templates && self.templates_due(now_ns) {
            let at = self.buf.len();
            self.buf.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
            elements::write_template(false, &mut self.buf);
            elements::write_template(true, &mut self.buf);
            let len = (self.buf.len() - at) as u16;
            self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
            self.templates_sent_at = Some(now_ns);
            self.messages_since_templates = 0;
            self.template_messages += 1;
        }
    }

    fn close_set(&mut self) {
        if let Some((at, _)) = self.open_set.take() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at + 2..at + 4].copy_from_slice(&len.to_be_bytes());
        }
    }

    fn finish(&mut self, now_ns: u64, out: &mut Vec<Vec<u8>>) {
        self.close_set();
        let len = self.buf.len() as u16;
        let export_secs = (now_ns / 1_000_000_000).min(u32::MAX as u64) as u32;
        let h = &mut self.buf[..HEADER];
        h[0..2].copy_from_slice(&VERSION.to_be_bytes());
        h[2..4].copy_from_slice(&len.to_be_bytes());
        h[4..8].copy_from_slice(&export_secs.to_be_bytes());
        h[8..12].copy_from_slice(&self.seq.to_be_bytes());
        h[12..16].copy_from_slice(&self.s.observation_domain.to_be_bytes());
        self.seq = self.seq.wrapping_add(self.records_in_message);
        self.records_in_message = 0;
        self.messages += 1;
        self.messages_since_templates += 1;
        out.push(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(self.s.max_message),
        ));
    }
}
