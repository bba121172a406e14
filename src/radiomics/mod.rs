//! Radiomics: IBSI-defined features of CT regions of interest, with
//! pyradiomics' names, settings and (by default) its processing, so that
//! research groups can bring their parameter files and compare numbers.
//!
//! The engine (`extract`) is pure computation on one ROI. It runs inside
//! worker processes (`worker`, `pool`): a texture computation on a hostile
//! mask can exhaust memory or time, and must cost only that ROI. `rois`
//! prepares a structure set's ROIs and collects their rows, for the course
//! stage (`stages::radiomics`, outside this engine) and the command line
//! (`cli`).

pub mod cli;
pub mod discretise;
pub mod engine;
pub mod firstorder;
pub mod glcm;
pub mod gldm;
pub mod gldzm;
pub mod glrlm;
pub mod glszm;
pub mod image;
pub mod io;
pub mod log_filter;
pub mod ngtdm;
pub mod params;
pub mod pool;
pub mod protocol;
pub mod resample;
pub mod rois;
pub mod settings;
pub mod shape;
pub mod voxelise;
pub mod wavelet;
pub mod worker;

pub use engine::{extract, Extraction, Task};
pub use params::Params;
pub use rois::{CSV_FILE, JSON_FILE};
pub use settings::RadiomicsSection;

/// Whether a parameter file may name `feature` in `class`: pyradiomics'
/// features, its deprecated ones (computed only when named) and the IBSI
/// features rtnode adds in `ibsi` mode.
pub fn is_feature(class: &str, feature: &str) -> bool {
    let extra: &[&str] = match class {
        "gldm" => &gldm::IBSI_EXTRA,
        _ => &[],
    };
    feature_names(class).contains(&feature) || extra.contains(&feature)
}

/// The features of a class, pyradiomics' names (its deprecated ones
/// included), in rtnode's output order.
pub fn feature_names(class: &str) -> &'static [&'static str] {
    match class {
        "firstorder" => &firstorder::NAMES,
        "shape" => &shape::NAMES,
        "glcm" => &glcm::NAMES,
        "glrlm" => &glrlm::NAMES,
        "glszm" => &glszm::NAMES,
        "gldm" => &gldm::NAMES,
        "ngtdm" => &ngtdm::NAMES,
        "gldzm" => &gldzm::NAMES,
        _ => &[],
    }
}
