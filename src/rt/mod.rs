//! RT geometry: structure sets, dose grids and plans read into forms the
//! DVH engine (and later stages) compute on, plus the rasterisation that
//! turns contours into sampled volumes.
//!
//! Coordinates are DICOM patient coordinates in millimetres throughout.

mod dose_pixels;
pub mod edt;
pub mod plan;
pub mod raster;
pub mod rtdose;
pub mod rtstruct;
pub mod shape;

pub use plan::{Plan, Prescription};
pub use rtdose::{DoseGrid, DoseHeader, DoseProvenance, DoseScope, GridGeometry};
pub use rtstruct::{ContourPlane, Roi, RoiSource, RtStruct};
pub use shape::{EndCap, Shape, ShapeOptions};
