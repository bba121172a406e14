//! Fuzzes the DIMSE command-set decoder, the first code to see bytes from the
//! network after PDV reassembly: whatever it accepts must re-encode to the
//! same command (see `properties::dimse_command`), and nothing may panic.
//!
//! Run from the repository root (stable toolchain: RUSTC_BOOTSTRAP lets it
//! take the sanitizer flags cargo-fuzz passes; the corpus defaults to
//! tests/fuzz/corpus/dimse_command):
//!
//!     RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz dimse_command -- -max_total_time=120
//!
//! Keep the committed corpus small afterwards:
//!
//!     RUSTC_BOOTSTRAP=1 cargo fuzz cmin --fuzz-dir tests/fuzz dimse_command
#![no_main]

#[path = "../properties.rs"]
mod properties;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = properties::dimse_command(data) {
        panic!("{e}");
    }
});
