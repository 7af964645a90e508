//! Per-second counters per (unit, scope): what the NOC charts live.
//!
//! Slots are resolved once per flow, so the per-packet cost is an array add.

use simpul_proto::{CounterSample, TrafficScope};

use crate::agency::{AgencyMap, UnitId};

/// Index of a (unit, scope) pair.
pub type Slot = u32;

pub fn slot(unit: UnitId, scope: TrafficScope) -> Slot {
    unit * 2 + u32::from(scope == TrafficScope::Intranet)
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    bytes_in: u64,
    bytes_out: u64,
    packets_in: u64,
    packets_out: u64,
}

pub struct SecondCounters {
    cells: Vec<Cell>,
    dirty: Vec<Slot>,
    second: Option<u64>,
}

impl SecondCounters {
    pub fn new(units: usize) -> Self {
        Self {
            cells: vec![Cell::default(); units * 2],
            dirty: Vec::new(),
            second: None,
        }
    }

    /// Move to second `sec`, emitting the previous one when time has moved on.
    /// Packets slightly out of order stay in the current second.
    #[inline]
    pub fn roll<F: FnMut(CounterSample)>(&mut self, sec: u64, map: &AgencyMap, emit: &mut F) {
        match self.second {
            Some(s) if sec > s => {
                self.flush(map, emit);
                self.second = Some(sec);
            }
            Some(_) => {}
            None => self.second = Some(sec),
        }
    }

    /// Count traffic in the current second (call [`Self::roll`] first).
    #[inline]
    pub fn add(&mut self, slot: Slot, outbound: bool, bytes: u64, packets: u64) {
        let Some(cell) = self.cells.get_mut(slot as usize) else {
            return;
        };
        if cell.packets_in == 0 && cell.packets_out == 0 {
            self.dirty.push(slot);
        }
        if outbound {
            cell.bytes_out += bytes;
            cell.packets_out += packets;
        } else {
            cell.bytes_in += bytes;
            cell.packets_in += packets;
        }
    }

    /// Emit the current second if time has moved past it (live capture with no traffic).
    pub fn tick<F: FnMut(CounterSample)>(&mut self, sec: u64, map: &AgencyMap, emit: &mut F) {
        if self.second.is_some_and(|s| sec > s) {
            self.flush(map, emit);
            self.second = None;
        }
    }

    /// Emit whatever has been counted.
    pub fn flush<F: FnMut(CounterSample)>(&mut self, map: &AgencyMap, emit: &mut F) {
        let Some(ts) = self.second else { return };
        self.dirty.sort_unstable();
        for slot in self.dirty.drain(..) {
            let Some(cell) = self.cells.get_mut(slot as usize) else {
                continue;
            };
            let c = std::mem::take(cell);
            let label = map.label(slot / 2);
            emit(CounterSample {
                ts,
                agency: label.agency.clone(),
                unit: label.unit.clone(),
                scope: if slot % 2 == 1 {
                    TrafficScope::Intranet
                } else {
                    TrafficScope::Internet
                },
                bytes_in: c.bytes_in,
                bytes_out: c.bytes_out,
                packets_in: c.packets_in,
                packets_out: c.packets_out,
            });
        }
    }
}
