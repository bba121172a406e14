//! Courses and what follows them over a live node: course assembly and
//! re-runs, operations (cohort export, retention, backup), the Slurm
//! executor, the outbound queue and how it judges a destination's answer.

#[path = "../common/mod.rs"]
mod common;

mod courses;
mod export;
mod export_statuses;
mod operations;
mod slurm;
