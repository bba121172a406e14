//! rtnode's radiomics in `pyradiomics` mode against pyradiomics' own test
//! cases and baselines (fixtures/pyradiomics, BSD-3): every feature of every
//! class, in every baseline configuration (default, 2D, fixed bin count,
//! weighting, flat region, normalisation, resegmentation, resampling), run
//! through the product's parameter-file parser and engine. Each baseline
//! column's settings (its `diagnostics_Configuration_Settings` row) become
//! a pyradiomics parameter file.
//!
//! Tolerance: 1e-4 relative (absolute 1e-9 where pyradiomics' value is
//! within 1e-9 of zero: entropies of one zone are ±3e-16 by its eps).

use std::collections::HashMap;
use std::path::PathBuf;

use rtnode::radiomics::{extract, io, Params, Task};

const REL_TOL: f64 = 1e-4;
const ZERO_TOL: f64 = 1e-9;

use crate::radiomics_support;
use radiomics_support::{pyradiomics_fixtures as fixtures, python_dict, Baseline};

fn baseline(class: &str) -> Baseline {
    Baseline::load(class)
}

/// A Python dict's text (`{'binWidth': 25, 'force2D': False, …}`) as a
/// pyradiomics parameter file.
fn settings_yaml(dict: &str) -> String {
    let mut yaml = String::from("setting:\n");
    for (k, v) in python_dict(dict) {
        let v = v.replace('\'', "").replace('(', "[").replace(')', "]");
        let v = match v.as_str() {
            "None" => continue,
            "True" => "true".to_string(),
            "False" => "false".to_string(),
            _ => v,
        };
        yaml.push_str(&format!("  {k}: {v}\n"));
    }
    yaml
}

fn case_files(column: &str) -> (PathBuf, PathBuf) {
    let case = column.split('_').next().unwrap();
    (
        fixtures().join(format!("{case}_image.nrrd")),
        fixtures().join(format!("{case}_label.nrrd")),
    )
}

/// Columns whose configuration rtnode does not compute yet, and why. A
/// column not listed here must be compared.
const NOT_YET: &[(&str, &str)] = &[];

/// pyradiomics' brain1 baseline rows for SurfaceArea and MeshVolume (and the
/// features made of them) were written by a development build
/// (`2.0.1b1.post11+g127d134`, in no release) whose marching-cubes table
/// lacked the last triangle of case 62, a cube configuration only brain1 has
/// among the test cases. pyradiomics 3.1.0 itself, run on brain1 with
/// default settings, gives the values below (`benches/radiomics_vs_pyradiomics.sh`
/// compares every feature with the installed release); its own tests accept
/// 3 % here. brain1 is compared with the release, at the same tolerance.
const BRAIN1_RELEASED: &[(&str, f64)] = &[
    ("original_shape_SurfaceArea", 6438.821603779402),
    ("original_shape_MeshVolume", 16147.51180013021),
    ("original_shape_Sphericity", 0.4798234536231475),
    (
        "original_shape_SurfaceVolumeRatio",
        6438.821603779402 / 16147.51180013021,
    ),
];

fn compare_class(class: &str) {
    let b = baseline(class);
    let prefix = format!("original_{class}_");
    let features: Vec<&String> = b.rows.keys().filter(|k| k.starts_with(&prefix)).collect();
    assert!(!features.is_empty());
    let mut mismatches = Vec::new();
    let mut compared = 0;
    let mut columns_done = 0;
    let mut skipped = 0;
    let mut cache: HashMap<String, (io::ImageFile, io::ImageFile)> = HashMap::new();
    for (ci, column) in b.columns.iter().enumerate() {
        let dict = &b.rows["diagnostics_Configuration_Settings"][ci];
        let yaml = format!("{}featureClass:\n  {class}:\n", settings_yaml(dict));
        let params = match Params::from_yaml(&yaml) {
            Ok(p) => p,
            Err(e) => {
                let why = NOT_YET.iter().find(|(suffix, _)| column.ends_with(suffix));
                assert!(why.is_some(), "{column}: {e:#}\n{yaml}");
                println!("{column}: not compared: {}", why.unwrap().1);
                skipped += 1;
                continue;
            }
        };
        let (img_path, mask_path) = case_files(column);
        let (img, mask) = cache
            .entry(img_path.display().to_string())
            .or_insert_with(|| (io::read(&img_path).unwrap(), io::read(&mask_path).unwrap()));
        let label = params.settings.label as f64;
        let mut task = Task::whole(
            column,
            img.data.mapv(|v| v as f32),
            mask.data.mapv(|v| v == label),
            img.spacing,
            &yaml,
        );
        task.integer_range = img.integer_range;
        let out = extract(&task, &params).unwrap_or_else(|e| panic!("{column}: {e:#}"));
        let ours: HashMap<&str, f64> = out.features.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        columns_done += 1;
        for f in &features {
            let Ok(mut theirs) = b.rows[*f][ci].parse::<f64>() else {
                continue;
            };
            if column == "brain1" {
                if let Some((_, released)) = BRAIN1_RELEASED.iter().find(|(n, _)| n == f) {
                    println!("brain1 {f}: baseline {theirs} (development build), pyradiomics 3.1.0 {released}");
                    theirs = *released;
                }
            }
            let Some(mine) = ours.get(f.as_str()).copied() else {
                mismatches.push(format!("{column} {f}: not computed"));
                continue;
            };
            compared += 1;
            let ok = if theirs.is_nan() {
                mine.is_nan()
            } else if theirs.abs() <= ZERO_TOL {
                (mine - theirs).abs() <= ZERO_TOL
            } else {
                ((mine - theirs) / theirs).abs() <= REL_TOL
            };
            if !ok {
                mismatches.push(format!("{column} {f}: rtnode {mine} pyradiomics {theirs}"));
            }
        }
    }
    println!(
        "{class}: {compared} values in {columns_done} columns compared, {} mismatches",
        mismatches.len()
    );
    for m in &mismatches {
        println!("  {m}");
    }
    assert_eq!(columns_done + skipped, b.columns.len());
    assert!(columns_done >= 5, "only {columns_done} columns compared");
    assert!(mismatches.is_empty(), "{} mismatches", mismatches.len());
}

#[test]
fn firstorder_matches_pyradiomics() {
    compare_class("firstorder");
}

#[test]
fn shape_matches_pyradiomics() {
    compare_class("shape");
}

#[test]
fn glcm_matches_pyradiomics() {
    compare_class("glcm");
}

#[test]
fn glrlm_matches_pyradiomics() {
    compare_class("glrlm");
}

#[test]
fn glszm_matches_pyradiomics() {
    compare_class("glszm");
}

#[test]
fn gldm_matches_pyradiomics() {
    compare_class("gldm");
}

#[test]
fn ngtdm_matches_pyradiomics() {
    compare_class("ngtdm");
}
