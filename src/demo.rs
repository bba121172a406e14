//! `rtnode demo`: the main job end to end on embedded defaults, with nothing
//! but this binary. It starts a node on a free loopback port with a
//! temporary data directory, and a second node standing in for the
//! treatment planning system; synthesises a full course (CT, RTSTRUCT,
//! RTPLAN, RTDOSE); sends it from the "TPS"; lets the stage DAG run; waits
//! until the results (auto contours and the report) are back at the "TPS";
//! and prints what happened, with where the report is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::peers::{Peer, PeersFile};
use crate::scu::{self, Target};
use crate::stages::{report, StageId};
use crate::synth::{self, SynthOptions};

/// Options of `rtnode demo`.
pub struct DemoOptions {
    /// Number of CT slices in the synthetic course.
    pub slices: u32,
    /// Rows (and columns) of each synthetic CT slice, in pixels; the field of view stays fixed, so pixel spacing follows.
    pub rows: u16,
    /// Keep the temporary data directories (they are printed).
    pub keep: bool,
}

const TPS_AE: &str = "DEMO_TPS";

fn peer(ae: &str, port: u16, receives_results: bool) -> Peer {
    Peer {
        ae_title: ae.into(),
        host: "127.0.0.1".into(),
        port,
        may_store: true,
        receives_results,
        description: Some("rtnode demo".into()),
        sop_classes: Vec::new(),
        results_to_sender: false,
        tls: false,
        tls_ca: None,
        tls_server_name: None,
    }
}

fn demo_config(ae: &str, data_dir: &Path) -> Config {
    let mut cfg = Config::default();
    cfg.node.ae_title = ae.into();
    cfg.node.bind = "127.0.0.1".into();
    cfg.node.port = 0;
    cfg.node.data_dir = data_dir.to_path_buf();
    // Temporary directories often live on small tmpfs mounts.
    cfg.storage.min_free_bytes = 64 * 1024 * 1024;
    cfg.network.metrics_address = String::new();
    cfg.http.address = String::new();
    cfg.pipeline.trigger = crate::pipeline::TriggerRule::Full;
    cfg.pipeline.stable_age_s = 1;
    cfg.export.retry_base_s = 1;
    cfg.export.retry_max_s = 5;
    cfg
}

/// Runs the demo end to end (two loopback nodes, a synthetic course sent and processed) and prints what happened.
pub async fn run(opts: DemoOptions) -> Result<()> {
    let t0 = Instant::now();
    let work = tempdir()?;
    let course_dir = work.join("course");
    std::fs::create_dir_all(&course_dir)?;

    let synth_opts = SynthOptions {
        slices: opts.slices,
        ..SynthOptions::default().with_rows(opts.rows)
    };
    let (series, rt) = {
        let dir = course_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<_> {
            let series = synth::write_ct_series(&dir, &synth_opts)?;
            let rt = synth::rt::write_rt_objects(&dir, &series, &synth_opts)?;
            Ok((series, rt))
        })
        .await??
    };
    println!(
        "synthesised a course: CT {} ({} slices of {}x{}), RTSTRUCT, RTPLAN, RTDOSE  [{:.2} s]",
        series.series_instance_uid,
        series.files.len(),
        opts.rows,
        opts.rows,
        t0.elapsed().as_secs_f64()
    );

    // The stand-in TPS first: rtnode must know its port to send results.
    let tps_cfg = demo_config(TPS_AE, &work.join("tps"));
    let tps = crate::server::start(
        &tps_cfg,
        PeersFile {
            peers: vec![peer("RTNODE", 104, false)],
        },
    )
    .await?;
    let cfg = demo_config("RTNODE", &work.join("node"));
    let node = crate::server::start(
        &cfg,
        PeersFile {
            peers: vec![peer(TPS_AE, tps.addr.port(), true)],
        },
    )
    .await?;
    println!(
        "node RTNODE on {}, stand-in TPS {TPS_AE} on {}",
        node.addr, tps.addr
    );

    let target = Target {
        called_ae: "RTNODE".into(),
        host: node.addr.ip().to_string(),
        port: node.addr.port(),
        tls: None,
    };
    let mut files = series.files.clone();
    files.extend([rt.rtstruct.clone(), rt.rtplan.clone(), rt.rtdose.clone()]);
    let t_send = Instant::now();
    let outcomes = scu::send(&target, TPS_AE, &files, 262_144).await;
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.ok()).collect();
    println!(
        "TPS → RTNODE: {} of {} instances stored durably in {:.2} s",
        outcomes.len() - failed.len(),
        outcomes.len(),
        t_send.elapsed().as_secs_f64()
    );
    for f in &failed {
        println!(
            "  failed: {} {:?} {:?}",
            f.path.display(),
            f.status,
            f.error
        );
    }
    if !failed.is_empty() {
        bail!("{} instance(s) were not stored", failed.len());
    }

    // Wait for the course to be processed and its results to reach the TPS.
    let deadline = Instant::now() + Duration::from_secs(300);
    let report = loop {
        let r = {
            let n = node.node.clone();
            let a = node.addr.to_string();
            tokio::task::spawn_blocking(move || crate::status::live_report(&n, &a)).await??
        };
        let settled = r
            .courses
            .iter()
            .any(|c| c.state == "done" || c.state == "failed")
            && r.outbound.pending == 0;
        if settled {
            break r;
        }
        if Instant::now() > deadline {
            bail!("the course did not finish within 300 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let received = tps.node.store.index().counts()?.instances;

    for c in &report.courses {
        println!(
            "course {} ({}): {} v{}",
            c.id, c.patient_name, c.state, c.version
        );
        for s in &c.stage_details {
            let time = s
                .duration_ms
                .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
                .unwrap_or_default();
            let why = s
                .skip_reason
                .as_deref()
                .or(s.error.as_deref())
                .unwrap_or("");
            println!("  {:<13} {:<8} {:>8}  {}", s.stage, s.state, time, why);
        }
        print_dvh(&cfg.node.data_dir, &c.id, c.version);
        print_radiomics(&cfg.node.data_dir, &c.id, c.version);
        let results = cfg
            .node
            .data_dir
            .join("courses")
            .join(&c.id)
            .join(format!("v{}", c.version));
        println!("  results: {}", results.display());
        let report = results.join(StageId::Report.as_str());
        if report.join(report::PDF_FILE).is_file() {
            println!(
                "  report:  {} (also {}, and {} sent as Encapsulated PDF){}",
                report.join(report::PDF_FILE).display(),
                report::HTML_FILE,
                report::DICOM_FILE,
                if opts.keep {
                    ""
                } else {
                    "; removed at exit unless --keep"
                }
            );
        }
    }
    println!(
        "outbound: {} sent, {} dead; the TPS holds {} instance(s) from RTNODE",
        report.outbound.sent, report.outbound.dead, received
    );
    node.stop().await?;
    tps.stop().await?;
    println!("demo finished in {:.1} s", t0.elapsed().as_secs_f64());
    if opts.keep {
        println!("kept {}", work.display());
    } else {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    if report.courses.iter().any(|c| c.state != "done") || report.outbound.dead > 0 || received == 0
    {
        bail!("the course did not complete cleanly");
    }
    Ok(())
}

/// What the radiomics stage did per ROI, with a few features.
fn print_radiomics(data_dir: &Path, course: &str, version: u32) {
    let p = data_dir
        .join("courses")
        .join(course)
        .join(format!("v{version}"))
        .join(StageId::Radiomics.as_str())
        .join(crate::radiomics::JSON_FILE);
    let Ok(bytes) = std::fs::read(&p) else { return };
    let Ok(serde_json::Value::Object(rois)) = serde_json::from_slice::<serde_json::Value>(&bytes)
    else {
        return;
    };
    println!("  radiomics (pyradiomics defaults, in worker processes):");
    for (name, r) in &rois {
        let f = &r["features"];
        let n = f.as_object().map_or(0, |m| m.len());
        let show = |k: &str| f[k].as_f64().map(|v| format!("{v:.3}")).unwrap_or_default();
        match r["status"].as_str() {
            Some("done") => println!(
                "    {name:<16} {n} features  MeshVolume {:>10} mm3  Sphericity {}  Mean {} HU  GLCM Contrast {}",
                show("original_shape_MeshVolume"),
                show("original_shape_Sphericity"),
                show("original_firstorder_Mean"),
                show("original_glcm_Contrast"),
            ),
            status => println!(
                "    {name:<16} {}: {}",
                status.unwrap_or("?"),
                r["reason"].as_str().unwrap_or("")
            ),
        }
    }
}

/// The main DVH metrics, when the build has the DVH stage and it ran.
fn print_dvh(data_dir: &Path, course: &str, version: u32) {
    let p = data_dir
        .join("courses")
        .join(course)
        .join(format!("v{version}"))
        .join(StageId::Dvh.as_str())
        .join("dvh.json");
    let Ok(bytes) = std::fs::read(&p) else { return };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return;
    };
    let Some(rois) = v.get("rois").and_then(|r| r.as_array()) else {
        return;
    };
    if let Some(d) = v["dose"]["description"].as_str() {
        println!("  DVH on the {d} (Gy, cc):");
    }
    for roi in rois {
        let name = roi["name"].as_str().unwrap_or("?");
        let m = &roi["metrics"];
        let get = |k: &str| {
            m.get(k)
                .and_then(|x| x.as_f64())
                .map(|x| format!("{x:.2}"))
                .unwrap_or("-".into())
        };
        println!(
            "    {:<16} volume {:>9}  Dmean {:>7}  D95 {:>7}  D2 {:>7}  Dmax {:>7}",
            name,
            get("volume_cc"),
            get("Dmean"),
            get("D95"),
            get("D2"),
            get("Dmax")
        );
    }
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("rtnode-demo-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
