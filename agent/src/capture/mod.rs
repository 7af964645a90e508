//! Where frames come from: pcap/pcapng files (replay) and live interfaces.

pub mod fanout;
pub mod file;
pub mod live;
pub mod name_lane;
pub mod ring;
