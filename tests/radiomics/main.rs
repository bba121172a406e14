//! Radiomics against references we did not write (pyradiomics' baselines and
//! output, the IBSI 1 phantom, SimpleITK's resampling, PyWavelets), and its
//! worker processes under failure.

#[path = "../radiomics_support/mod.rs"]
mod radiomics_support;

mod filters;
mod ibsi;
mod pyradiomics;
mod resample;
mod wavelet;
mod workers;
