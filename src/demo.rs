//! `rtnode demo`: the main job end to end on embedded defaults, with nothing
//! but this binary: synthesise a CT series, start a node on a free loopback
//! port with a temporary data directory, send the series with the built-in
//! SCU, and print what the node then reports.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::config::{Config, Peer, PeersFile};
use crate::scu::{self, Target};
use crate::synth::{self, SynthOptions};

pub struct DemoOptions {
    pub slices: u32,
    pub rows: u16,
    /// Keep the data directory (it is printed) instead of removing it.
    pub keep: bool,
}

const DEMO_CALLING_AE: &str = "RTNODE_DEMO";

pub async fn run(opts: DemoOptions) -> Result<()> {
    let t0 = Instant::now();
    let work = tempdir()?;
    let data_dir = work.join("data");
    let series_dir = work.join("ct");
    std::fs::create_dir_all(&series_dir)?;

    let synth_opts = SynthOptions::default().with_rows(opts.rows);
    let synth_opts = SynthOptions {
        slices: opts.slices,
        ..synth_opts
    };
    let series = {
        let dir = series_dir.clone();
        tokio::task::spawn_blocking(move || synth::write_ct_series(&dir, &synth_opts)).await??
    };
    println!(
        "synthesised CT series {} ({} slices of {}x{}) in {:.2} s",
        series.series_instance_uid,
        series.files.len(),
        opts.rows,
        opts.rows,
        t0.elapsed().as_secs_f64()
    );

    let mut cfg = Config::default();
    cfg.node.bind = "127.0.0.1".into();
    cfg.node.port = 0;
    cfg.node.data_dir = data_dir.clone();
    // Temporary directories often live on small tmpfs mounts.
    cfg.storage.min_free_bytes = 64 * 1024 * 1024;
    let peers = PeersFile {
        peers: vec![Peer {
            ae_title: DEMO_CALLING_AE.into(),
            host: "127.0.0.1".into(),
            port: 104,
            may_store: true,
            receives_results: false,
            description: Some("rtnode demo sender".into()),
            sop_classes: Vec::new(),
            results_to_sender: false,
        }],
    };
    let running = crate::node::start(&cfg, peers).await?;
    println!(
        "node {} listening on {}, data dir {}",
        cfg.node.ae_title,
        running.addr,
        data_dir.display()
    );

    let target = Target {
        called_ae: cfg.node.ae_title.clone(),
        host: running.addr.ip().to_string(),
        port: running.addr.port(),
    };
    let echo = scu::echo(&target, DEMO_CALLING_AE).await?;
    println!("C-ECHO: status {echo:04X}");
    let t_send = Instant::now();
    let outcomes = scu::send(&target, DEMO_CALLING_AE, &series.files, 262_144).await;
    let secs = t_send.elapsed().as_secs_f64();
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.ok()).collect();
    println!(
        "C-STORE: {} of {} instances stored durably in {:.2} s ({:.0} instances/s)",
        outcomes.len() - failed.len(),
        outcomes.len(),
        secs,
        outcomes.len() as f64 / secs.max(1e-9)
    );
    for f in &failed {
        println!(
            "  failed: {} {:?} {:?}",
            f.path.display(),
            f.status,
            f.error
        );
    }
    // The association log is written as each association ends; give the
    // server a moment to record the one that just released.
    for _ in 0..100 {
        if running.node.active_associations() == 0
            && running.node.state.association_count().unwrap_or(0) >= 2
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let report = {
        let node = running.node.clone();
        let addr = running.addr.to_string();
        tokio::task::spawn_blocking(move || crate::status::live_report(&node, &addr)).await??
    };
    running.stop().await?;
    print!("{}", crate::status::render_text(&report));
    println!("demo finished in {:.2} s", t0.elapsed().as_secs_f64());
    if opts.keep {
        println!("kept {}", work.display());
    } else {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    if !failed.is_empty() {
        bail!("{} instance(s) were not stored", failed.len());
    }
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("rtnode-demo-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
