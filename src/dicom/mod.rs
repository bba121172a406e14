//! The DICOM vocabulary every other module speaks: UIDs (the classes and
//! transfer syntaxes rtnode acts on, checking and generating them), value
//! formatting for the VRs written by hand (DS, DA, TM), attribute access
//! that tolerates real RT files, Part 10 file meta reading and checking,
//! the header of objects derived from a CT, and DIMSE status codes.
//!
//! Nothing here knows about stages, courses or the store; production code
//! and the synthetic test data (`synth`) both build on it, never on each
//! other.

pub mod attrs;
pub mod derived;
pub mod part10;
pub mod status;
pub mod uids;
pub mod values;
