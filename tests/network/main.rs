//! The network side against real peers and hostile input: the SCP with
//! dcmtk, hostile bytes, the fuzz corpus replayed, DICOM over TLS, running
//! as a service, the HTTP server. One test binary (one link of the crate)
//! for the area; each module was a test binary of its own before.

#[path = "../common/mod.rs"]
mod common;

mod dicomweb;
mod fuzz_corpus;
mod hostile;
mod http;
mod scp_dcmtk;
mod service;
mod tls;
