//! Segmentation and the objects a course produces: the body contour, masks to
//! RTSTRUCT and back, the stage through `rtnode process`, real RT objects
//! through the node, and the course report.

#[path = "../common/mod.rs"]
mod common;
#[path = "../segmentation_support/mod.rs"]
mod segmentation_support;

mod body;
mod process;
mod report;
mod rt_objects;
mod rtstruct;
