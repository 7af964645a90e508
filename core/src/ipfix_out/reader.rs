//! A strict reader of IPFIX messages (RFC 7011): templates learned per
//! observation domain, data records decoded field by field. It knows nothing
//! of Simpul's templates beyond what the messages say, so the tests use it
//! as the check that what [`super::encode`] writes parses back.

use std::collections::HashMap;

use super::elements::{Field, VARLEN};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("message shorter than its 16-byte header ({0} bytes)")]
    Short(usize),
    #[error("version {0}, not 10")]
    Version(u16),
    #[error("header length {header} but {got} bytes")]
    Length { header: usize, got: usize },
    #[error("at byte {at}: set of length {len} overruns the message or is below 4")]
    SetLength { at: usize, len: usize },
    #[error("at byte {at}: template record overruns its set")]
    Template { at: usize },
    #[error("at byte {at}: template {id} is reserved (below 256)")]
    TemplateId { at: usize, id: u16 },
    #[error("at byte {at}: data set {id} has no template")]
    UnknownTemplate { at: usize, id: u16 },
    #[error("at byte {at}: data record overruns its set")]
    Record { at: usize },
    #[error("at byte {at}: set id {id} is reserved")]
    SetId { at: usize, id: u16 },
}

/// One data record: each field with its value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRecord {
    pub template: u16,
    pub values: Vec<(Field, Vec<u8>)>,
}

impl DataRecord {
    pub fn get(&self, pen: u32, id: u16) -> Option<&[u8]> {
        self.values
            .iter()
            .find(|(f, _)| f.pen == pen && f.id == id)
            .map(|(_, v)| v.as_slice())
    }

    /// An unsigned field of any length up to 8 bytes.
    pub fn uint(&self, pen: u32, id: u16) -> Option<u64> {
        let v = self.get(pen, id)?;
        (v.len() <= 8).then(|| v.iter().fold(0u64, |a, b| a << 8 | u64::from(*b)))
    }

    pub fn text(&self, pen: u32, id: u16) -> Option<&str> {
        std::str::from_utf8(self.get(pen, id)?).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub length: usize,
    pub export_time: u32,
    pub sequence: u32,
    pub domain: u32,
    /// Template ids this message (re)defined.
    pub templates: Vec<u16>,
    pub records: Vec<DataRecord>,
}

/// Templates by (observation domain, template id).
#[derive(Debug, Default)]
pub struct Reader {
    templates: HashMap<(u32, u16), Vec<Field>>,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Reader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn template(&self, domain: u32, id: u16) -> Option<&[Field]> {
        self.templates.get(&(domain, id)).map(Vec::as_slice)
    }

    pub fn read(&mut self, b: &[u8]) -> Result<Message, ReadError> {
        if b.len() < 16 {
            return Err(ReadError::Short(b.len()));
        }
        let version = u16_at(b, 0);
        if version != 10 {
            return Err(ReadError::Version(version));
        }
        let length = u16_at(b, 2) as usize;
        if length != b.len() {
            return Err(ReadError::Length {
                header: length,
                got: b.len(),
            });
        }
        let mut m = Message {
            length,
            export_time: u32_at(b, 4),
            sequence: u32_at(b, 8),
            domain: u32_at(b, 12),
            templates: Vec::new(),
            records: Vec::new(),
        };
        let mut at = 16;
        while at < length {
            if length - at < 4 {
                return Err(ReadError::SetLength {
                    at,
                    len: length - at,
                });
            }
            let id = u16_at(b, at);
            let len = u16_at(b, at + 2) as usize;
            if len < 4 || at + len > length {
                return Err(ReadError::SetLength { at, len });
            }
            let set = &b[at + 4..at + len];
            match id {
                2 => self.templates_in(set, at + 4, m.domain, &mut m.templates)?,
                3 => {} // options templates: none of ours
                256.. => self.records_in(set, at + 4, m.domain, id, &mut m.records)?,
                _ => return Err(ReadError::SetId { at, id }),
            }
            at += len;
        }
        Ok(m)
    }

    fn templates_in(
        &mut self,
        set: &[u8],
        base: usize,
        domain: u32,
        ids: &mut Vec<u16>,
    ) -> Result<(), ReadError> {
        let mut i = 0;
        // Fewer than 4 bytes left is padding (RFC 7011 §3.3.1).
        while set.len() - i >= 4 {
            let id = u16_at(set, i);
            let count = u16_at(set, i + 2) as usize;
            if id < 256 {
                return Err(ReadError::TemplateId { at: base + i, id });
            }
            i += 4;
            let mut fields = Vec::with_capacity(count);
            for _ in 0..count {
                if set.len() - i < 4 {
                    return Err(ReadError::Template { at: base + i });
                }
                let raw = u16_at(set, i);
                let len = u16_at(set, i + 2);
                i += 4;
                let pen = if raw & 0x8000 != 0 {
                    if set.len() - i < 4 {
                        return Err(ReadError::Template { at: base + i });
                    }
                    i += 4;
                    u32_at(set, i - 4)
                } else {
                    0
                };
                fields.push(Field {
                    id: raw & 0x7fff,
                    pen,
                    len,
                });
            }
            self.templates.insert((domain, id), fields);
            ids.push(id);
        }
        Ok(())
    }

    fn records_in(
        &self,
        set: &[u8],
        base: usize,
        domain: u32,
        id: u16,
        out: &mut Vec<DataRecord>,
    ) -> Result<(), ReadError> {
        let fields = self
            .templates
            .get(&(domain, id))
            .ok_or(ReadError::UnknownTemplate { at: base - 4, id })?;
        // The shortest record: fixed fields, and one length byte per
        // variable one; anything shorter at the end is padding.
        let min: usize = fields
            .iter()
            .map(|f| if f.len == VARLEN { 1 } else { f.len as usize })
            .sum();
        let mut i = 0;
        while set.len() - i >= min.max(1) {
            let mut values = Vec::with_capacity(fields.len());
            for f in fields {
                let len = if f.len == VARLEN {
                    let short = *set.get(i).ok_or(ReadError::Record { at: base + i })?;
                    i += 1;
                    if short < 255 {
                        short as usize
                    } else {
                        if set.len() - i < 2 {
                            return Err(ReadError::Record { at: base + i });
                        }
                        i += 2;
                        u16_at(set, i - 2) as usize
                    }
                } else {
                    f.len as usize
                };
                if set.len() - i < len {
                    return Err(ReadError::Record { at: base + i });
                }
                values.push((*f, set[i..i + len].to_vec()));
                i += len;
            }
            out.push(DataRecord {
                template: id,
                values,
            });
        }
        Ok(())
    }
}
