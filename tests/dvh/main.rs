//! The DVH engine and `rtnode dvh`: accuracy against analytic values and
//! dicompyler-core, metrics, dose selection, reading RT objects, two plans of
//! one course end to end.

mod analytic;
mod boost;
mod cli;
mod dicompyler;
mod metrics;
mod rt_reading;
mod select;
