//! rtnode: a DICOM network node for radiotherapy.
//!
//! Data flows one way: [`scp`] (associations, C-ECHO/C-STORE) → [`store`]
//! (durable files + redb index) → [`course`] → [`pipeline`] (durable jobs,
//! the stage DAG, local or Slurm executors) → [`stages`], thin adapters over
//! the engines ([`dvh`], [`radiomics`], [`segmentation`], [`report`], RT
//! geometry in [`rt`]) → [`export`]. [`ul`], [`dimse`] and [`dicom`] are the
//! protocol and vocabulary under [`scp`] and [`scu`]; [`config`],
//! [`admin`], [`http`], [`server`] and the binary's CLI sit at the edge.
//! ARCHITECTURE.md has the code map and the order of the modules.

#![warn(missing_docs)]

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
