//! rtnode's LoG and Wavelet image types and its resampling against
//! pyradiomics 3.1.0 itself, on two of pyradiomics' test cases (brain1,
//! lung1): every feature of `fixtures/pyradiomics/reference/*.json`
//! (written by pyradiomics, see the README there), through rtnode's
//! parameter-file parser and engine, with the same parameter files.
//! Tolerance: 1e-4 relative (1e-9 absolute where pyradiomics' value is
//! within 1e-9 of zero).

use std::path::{Path, PathBuf};

use rtnode::radiomics::{extract, io, Params, Task};

const REL_TOL: f64 = 1e-4;
const ZERO_TOL: f64 = 1e-9;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pyradiomics")
}

fn compare(case: &str, params_file: &Path, reference: &str, expected_values: usize) {
    let yaml = std::fs::read_to_string(params_file).unwrap();
    let params = Params::from_yaml(&yaml).unwrap();
    let img = io::read(&fixtures().join(format!("{case}_image.nrrd"))).unwrap();
    let mask = io::read(&fixtures().join(format!("{case}_label.nrrd"))).unwrap();
    let mut task = Task::whole(
        case,
        img.data.mapv(|v| v as f32),
        mask.data.mapv(|v| v == 1.0),
        img.spacing,
        &yaml,
    );
    task.integer_range = img.integer_range;
    let out = extract(&task, &params).unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("reference").join(reference)).unwrap(),
    )
    .unwrap();
    let theirs = theirs[case].as_object().unwrap();
    assert_eq!(theirs.len(), expected_values, "{reference}");
    let mut bad = Vec::new();
    let mut worst = 0.0f64;
    for (name, want) in theirs {
        let want = want.as_f64().unwrap_or(f64::NAN);
        let Some((_, got)) = out.features.iter().find(|(k, _)| k == name) else {
            bad.push(format!("{name}: not computed"));
            continue;
        };
        let d = if want.abs() <= ZERO_TOL {
            (got - want).abs()
        } else {
            ((got - want) / want).abs()
        };
        worst = worst.max(d);
        let tol = if want.abs() <= ZERO_TOL {
            ZERO_TOL
        } else {
            REL_TOL
        };
        if d.is_nan() || d > tol {
            bad.push(format!("{name}: rtnode {got} pyradiomics {want}"));
        }
    }
    // rtnode computes nothing pyradiomics did not.
    assert_eq!(
        out.features.len(),
        theirs.len(),
        "{reference}: feature count"
    );
    println!(
        "{case} {reference}: {} values, worst relative difference {worst:.2e}",
        theirs.len()
    );
    for b in &bad {
        println!("  {b}");
    }
    assert!(bad.is_empty(), "{}: {} mismatches", reference, bad.len());
}

#[test]
fn log_and_wavelet_on_the_image_grid_match_pyradiomics() {
    let p = fixtures().join("reference/log_wavelet.yaml");
    compare("brain1", &p, "brain1_log_wavelet.json", 1037);
    compare("lung1", &p, "lung1_log_wavelet.json", 1037);
}

#[test]
fn the_predecessors_ct_parameters_match_pyradiomics() {
    // Resampling to 1 mm (sitkBSpline, int16 output), LoG σ 1–5 mm, Wavelet.
    let p = fixtures().join("exampleCT.yaml");
    compare("brain1", &p, "brain1_exampleCT.json", 1218);
    compare("lung1", &p, "lung1_exampleCT.json", 1218);
}
