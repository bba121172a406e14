//! `rtnode process DIR --out OUT`: the same course assembly and stage DAG
//! as the live node, over a folder of files, with no network. OUT becomes a
//! data directory (store, index, state, `courses/…`), so a later `rtnode
//! status --data-dir OUT` or `serve` sees the same results.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use rayon::prelude::*;

use crate::config::Config;
use crate::import;
use crate::pipeline::{Pipeline, PipelineOptions, PipelineStatus};
use crate::state::StateDb;
use crate::store::{Store, StoreOptions};

/// What `rtnode process` did.
pub struct Summary {
    /// Files imported into the store.
    pub imported: usize,
    /// Files that could not be imported, each as `path: reason`.
    pub import_failures: Vec<String>,
    /// The pipeline's state after the run: courses and their stages.
    pub status: PipelineStatus,
    /// Failed stages and held courses; non-empty means a non-zero exit.
    pub problems: Vec<String>,
}

/// Imports every DICOM file under `dir` into a data directory at `out`, runs course assembly and the stage DAG to completion with `cfg`, and returns what happened.
pub fn run(dir: &Path, out: &Path, cfg: &Config) -> Result<Summary> {
    let t0 = Instant::now();
    let store = Store::open(StoreOptions {
        data_dir: out.to_path_buf(),
        fsync: cfg.storage.fsync,
        min_free_bytes: cfg.storage.min_free_bytes,
        index_cache_bytes: cfg.storage.index_cache_bytes(),
    })?;
    let files = import::collect_files(&[dir.to_path_buf()])?;
    eprintln!("importing {} files from {}", files.len(), dir.display());
    let done = AtomicU64::new(0);
    let total = files.len() as u64;
    let results: Vec<Result<(), String>> = files
        .par_iter()
        .map(|path| {
            let r = import_one(&store, path).map_err(|e| format!("{}: {e}", path.display()));
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if d.is_multiple_of(200) || d == total {
                eprintln!("  imported {d}/{total}");
            }
            r
        })
        .collect();
    let import_failures: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    for f in &import_failures {
        eprintln!("  not imported: {f}");
    }
    let imported = files.len() - import_failures.len();

    let state = std::sync::Arc::new(StateDb::open(out)?);
    let pipeline = Pipeline::with_registry(
        out,
        state.clone(),
        PipelineOptions::new(&cfg.pipeline, cfg.source_and_text(), true),
        cfg.stages(None)?,
    )?;
    pipeline.load_index(store.index().clone());
    eprintln!("running the stages");
    pipeline.run_until_idle()?;
    let status = pipeline.status()?;
    let problems = pipeline.any_failed_or_held();
    state.flush()?;
    store.close()?;
    eprintln!("done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(Summary {
        imported,
        import_failures,
        status,
        problems,
    })
}

fn import_one(store: &Store, path: &Path) -> Result<()> {
    let item = import::prepare(path).map_err(anyhow::Error::msg)?;
    let mut pending = store
        .begin(&item.sop_class, &item.sop_instance, &item.ts, "")
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    item.for_each_chunk(1 << 20, |c| {
        pending.write(c);
        Ok(())
    })
    .context("reading")?;
    let prepared = pending.finish().map_err(|f| anyhow::anyhow!("{f}"))?;
    store
        .commit_blocking(prepared)
        .map_err(|f| anyhow::anyhow!("{f}"))
}
