//! Shared by the radiomics tests: the fixtures and pyradiomics' baseline
//! CSVs (feature name → value per configuration column).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `fixtures/pyradiomics`.
pub fn pyradiomics_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pyradiomics")
}

/// The records of a CSV text, in rtnode's CSV dialect (fields may be
/// quoted: pyradiomics writes tuples and dicts).
pub fn read_csv(text: &str) -> Vec<Vec<String>> {
    rtnode::csv_format::records(text).unwrap()
}

/// One of pyradiomics' baseline CSVs.
pub struct Baseline {
    pub columns: Vec<String>,
    pub rows: HashMap<String, Vec<String>>,
}

impl Baseline {
    /// `baseline_<class>.csv`.
    pub fn load(class: &str) -> Baseline {
        let path = pyradiomics_fixtures().join(format!("baseline/baseline_{class}.csv"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut records = read_csv(&text).into_iter();
        let header = records.next().unwrap();
        let mut rows = HashMap::new();
        for f in records {
            rows.insert(f[0].clone(), f[1..].to_vec());
        }
        Baseline {
            columns: header[1..].to_vec(),
            rows,
        }
    }

    pub fn get(&self, feature: &str, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.get(feature)?.get(i).map(|s| s.as_str())
    }
}

/// The entries of a Python dict's text (`{'binWidth': 25, 'force2D': False,
/// 'resampledPixelSpacing': [2, 2, 2]}`), keys and values as written, quotes
/// removed.
pub fn python_dict(text: &str) -> Vec<(String, String)> {
    let inner = text.trim().trim_start_matches('{').trim_end_matches('}');
    let mut parts = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in inner.chars() {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth -= 1,
            _ => {}
        }
        if c == ',' && depth == 0 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
        .iter()
        .filter_map(|p| p.split_once(':'))
        .map(|(k, v)| {
            (
                k.trim().trim_matches('\'').to_string(),
                v.trim().trim_matches('\'').to_string(),
            )
        })
        .collect()
}
