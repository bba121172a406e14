//! rtnode: a DICOM network node for radiotherapy.
//!
//! Data flows one way: [`scp`] (associations, C-ECHO/C-STORE) → [`store`]
//! (durable files + redb index) → later stages. [`ul`] and [`dimse`] are the
//! protocol layers under both [`scp`] and [`scu`]; [`config`], [`status`] and
//! the CLI sit at the edge. See ARCHITECTURE.md.

pub mod admin;
pub mod audit;
pub mod backup;
pub mod cohort;
pub mod config;
pub mod course;
pub mod csv_format;
pub mod demo;
pub mod dicom;
pub mod dimse;
pub mod doctor;
pub mod dvh;
pub mod export;
pub mod http;
pub mod import;
pub mod metrics;
pub mod node;
pub mod peers;
pub mod pipeline;
pub mod process;
pub mod radiomics;
pub mod report;
pub mod retention;
pub mod rt;
pub mod scp;
pub mod scu;
pub mod segmentation;
pub mod series;
pub mod server;
pub mod service;
pub mod stages;
pub mod state;
pub mod status;
pub mod store;
pub mod synth;
pub mod time;
pub mod tls;
pub mod ul;
pub mod volume;
