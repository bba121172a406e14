//! `rtnode export` on the command line: the key, the data directory and
//! the summary printed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// What `rtnode export` was asked for, with the config's defaults already
/// filled in by the caller (`cohort.pseudonym_key_file`, `node.data_dir`).
pub struct CohortArgs {
    /// `--out`: the folder the tables are written to.
    pub out: PathBuf,
    /// `--format`: CSV or Parquet.
    pub format: super::Format,
    /// `--pseudonymise`: replace identifiers with keyed pseudonyms; needs
    /// a key.
    pub pseudonymise: bool,
    /// `--pseudonym-key`.
    pub pseudonym_key: Option<PathBuf>,
    /// The config's `cohort.pseudonym_key_file`, used when
    /// `pseudonym_key` is not given.
    pub configured_key: Option<PathBuf>,
    /// `--data-dir`, else the config's `node.data_dir`.
    pub data_dir: PathBuf,
}

/// `rtnode export`; `Ok(false)` when some outputs could not be read (the
/// rest is written). `load_source` reads the records of a data directory
/// (`admin::client::cohort_source`: the running node's, else the
/// database's).
pub fn run(
    a: CohortArgs,
    load_source: impl FnOnce(&Path) -> Result<super::Source>,
) -> Result<bool> {
    let data_dir = a.data_dir;
    let pseudonymiser = if a.pseudonymise {
        let key = a
            .pseudonym_key
            .or(a.configured_key)
            .context("--pseudonymise needs a key: --pseudonym-key FILE or cohort.pseudonym_key_file in the config")?;
        Some(super::pseudonym::Pseudonymiser::from_key_file(&key)?)
    } else {
        anyhow::ensure!(
            a.pseudonym_key.is_none(),
            "--pseudonym-key is only used with --pseudonymise"
        );
        None
    };
    let source = load_source(&data_dir)?;
    let summary = super::export(
        &data_dir,
        &source,
        &super::ExportOptions {
            out: a.out,
            format: a.format,
            pseudonymiser,
        },
    )?;
    for t in &summary.tables {
        println!(
            "{}\t{} rows\t{} columns\t{}",
            t.name,
            t.rows,
            t.columns,
            t.path.display()
        );
    }
    println!(
        "{} course(s) exported{}",
        summary.courses,
        if summary.pseudonymised {
            format!(
                ", pseudonymised ({} cell(s) blanked for still naming a patient)",
                summary.blanked_cells
            )
        } else {
            String::new()
        }
    );
    for p in &summary.problems {
        eprintln!("problem: {p}");
    }
    Ok(summary.problems.is_empty())
}
