//! The capture-file fuzz entry point (the packet parsers' are in
//! `simpul_core::fuzzing`), shared by `fuzz/` and the stable test.

/// A pcap/pcapng file image through the file reader and the processor.
pub fn capture_file(data: &[u8]) {
    let mut p = simpul_core::fuzzing::processor();
    let _ = crate::capture::file::read_bytes(data, std::path::Path::new("fuzz"), |l, ts, f| {
        p.handle_frame(l, ts, f)
    });
    p.finish();
}
