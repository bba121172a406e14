//! Fuzzes the upper-layer framing as the SCP reads it: PDU headers, control
//! PDUs (through dicom-ul, under the size limit) and PDV items inside
//! P-DATA-TF, checking that item lengths are accounted for exactly.
//!
//! Run from the repository root (stable toolchain, see dimse_command.rs):
//!
//!     RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz pdv_stream -- -max_total_time=120
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = properties::pdv_stream(data) {
        panic!("{e}");
    }
});
