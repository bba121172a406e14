//! Operations over a live node: the research cohort export (CSV and Parquet,
//! pseudonymised or not), retention purges, and backup/restore of the state
//! database — each driven through the command line as an operator would.

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;

const PATIENT_ID: &str = "RTNODE-PHANTOM-001";
const PATIENT_NAME: &str = "Phantom^Water";

/// A node whose peers include SENDER_A, which wants its results back on a
/// port where nothing listens: its courses keep an outbound item pending.
fn start_node(dir: &Path) -> Server {
    Server::start_with_config(dir, &node_config(dir))
}

fn node_config(dir: &Path) -> PathBuf {
    let opts = ServerOptions {
        extra_yaml: "pipeline:\n  stable_age_s: 1\n  trigger: full\n\
                     export:\n  retry_base_s: 3600\n  retry_max_s: 3600\n"
            .into(),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir, &opts);
    std::fs::write(
        dir.join("peers.yaml"),
        format!(
            "peers:\n\
             - {{ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: SENDER_A, host: 127.0.0.1, port: {}, results_to_sender: true}}\n",
            free_port()
        ),
    )
    .unwrap();
    cfg
}

fn synth_course(dir: &Path) -> Vec<PathBuf> {
    synth_course_of(dir, 16, 64)
}

fn send_as(port: u16, calling_ae: &str, files: &[PathBuf]) {
    let out = Command::new(BIN)
        .args(["send", "--calling-ae", calling_ae, "--to"])
        .arg(format!("RTNODE@127.0.0.1:{port}"))
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn rtnode(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn courses(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["courses"].as_array().cloned().unwrap_or_default()
}

fn course_ids(v: &serde_json::Value) -> Vec<String> {
    let mut ids: Vec<String> = courses(v)
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Sends a course and waits until every stage of it is final; returns its id.
fn deliver(s: &Server, dir: &Path, calling_ae: &str) -> String {
    let before = course_ids(&s.status_json());
    send_as(s.port, calling_ae, &synth_course(dir));
    let v = wait_status(&s.data_dir, 180, "the new course done", |v| {
        courses(v).iter().any(|c| {
            !before.contains(&c["id"].as_str().unwrap().to_string()) && c["state"] == "done"
        })
    });
    courses(&v)
        .iter()
        .find(|c| !before.contains(&c["id"].as_str().unwrap().to_string()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    rtnode::cohort::csv::read(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// A Parquet table read back with the parquet crate's reader, every value
/// rendered as the CSV writes it.
fn read_parquet(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let header: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        rows.push(
            row.get_column_iter()
                .map(|(_, f)| match f {
                    Field::Null => String::new(),
                    Field::Str(s) => s.clone(),
                    Field::Long(v) => v.to_string(),
                    Field::Double(v) => v.to_string(),
                    other => panic!("unexpected parquet field {other:?}"),
                })
                .collect(),
        );
    }
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name} in {header:?}"))
}

fn all_bytes_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn cohort_export_in_csv_and_parquet_matches_the_stage_outputs_and_pseudonymises() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_node(dir.path());
    let id = deliver(&s, &dir.path().join("course"), "RTNODE_SCU");
    let v1 = s.data_dir.join("courses").join(&id).join("v1");
    // The embedded defaults (no cohort.pseudonym_key_file), not the repo's
    // conf/rtnode.yaml: an empty config file.
    let defaults = dir.path().join("defaults.yaml");
    std::fs::write(&defaults, "").unwrap();
    // The radiomics stage is another branch's; its documented output is
    // read when present. Its diagnostics carry a path naming the patient.
    std::fs::create_dir_all(v1.join("radiomics")).unwrap();
    std::fs::write(
        v1.join("radiomics/radiomics.csv"),
        format!(
            "roi,roi_source,diagnostics_Image-original_Path,original_shape_MeshVolume,original_firstorder_Mean\n\
             PTV,rtstruct,/data/{PATIENT_ID}/ct.nrrd,22426.5,20.25\n\
             BODY,rtstruct,/data/{PATIENT_ID}/ct.nrrd,4124250,-3.5\n"
        ),
    )
    .unwrap();

    // Exported while the node serves (the records come over the admin socket).
    let csv_dir = dir.path().join("export-csv");
    let pq_dir = dir.path().join("export-parquet");
    for (out, format) in [(&csv_dir, "csv"), (&pq_dir, "parquet")] {
        ok(rtnode(&[
            "export",
            "--data-dir",
            p(&s.data_dir),
            "--config",
            p(&defaults),
            "--format",
            format,
            "--out",
            p(out),
        ]));
    }

    // dvh_metrics: one row per ROI, every value of the stage's own CSV.
    let (sh, srows) = read_csv(&v1.join("dvh/dvh_metrics.csv"));
    let (h, rows) = read_csv(&csv_dir.join("dvh_metrics.csv"));
    let (roi, metric, value) = (
        column(&sh, "roi"),
        column(&sh, "metric"),
        column(&sh, "value"),
    );
    let mut rois: Vec<&str> = srows.iter().map(|r| r[roi].as_str()).collect();
    rois.dedup();
    assert_eq!(rows.len(), rois.len());
    assert!(rois.len() >= 4, "{rois:?}");
    for r in &srows {
        let row = rows
            .iter()
            .find(|x| x[column(&h, "roi")] == r[roi])
            .unwrap();
        let got = &row[column(&h, &r[metric])];
        if r[value].is_empty() {
            assert!(got.is_empty(), "{} {}: {got}", r[roi], r[metric]);
        } else {
            assert_eq!(
                got.parse::<f64>().unwrap(),
                r[value].parse::<f64>().unwrap(),
                "{} {}",
                r[roi],
                r[metric]
            );
        }
        assert_eq!(row[column(&h, "course_id")], id);
        assert_eq!(row[column(&h, "course_version")], "1");
        assert_eq!(row[column(&h, "stage")], "dvh");
    }
    let dvh: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v1.join("dvh/dvh.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v1.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        rows[0][column(&h, "stage_fingerprint")],
        manifest["stages"]["dvh"]["fingerprint"].as_str().unwrap()
    );
    let sources = &rows[0][column(&h, "source_sop_instance_uids")];
    assert!(sources.contains(dvh["structure_set"]["sop_instance_uid"].as_str().unwrap()));
    assert!(sources.contains(dvh["dose"]["dose_uids"][0].as_str().unwrap()));

    // courses: the plan, prescription, fractions and the dose grid.
    let (ch, crows) = read_csv(&csv_dir.join("courses.csv"));
    assert_eq!(crows.len(), 1);
    let c = &crows[0];
    assert_eq!(c[column(&ch, "patient_id")], PATIENT_ID);
    assert_eq!(c[column(&ch, "patient_name")], PATIENT_NAME);
    assert_eq!(c[column(&ch, "fractions")], "25");
    assert_eq!(c[column(&ch, "prescription_gy")], "50");
    assert_eq!(c[column(&ch, "plan_approval")], "APPROVED");
    assert_eq!(
        c[column(&ch, "dose_uids")],
        dvh["dose"]["dose_uids"][0].as_str().unwrap()
    );
    for (i, axis) in ["x", "y", "z"].iter().enumerate() {
        assert_eq!(
            c[column(&ch, &format!("dose_grid_n{axis}"))],
            dvh["dose"]["grid_size"][i].to_string()
        );
        assert_eq!(
            c[column(&ch, &format!("dose_grid_d{axis}_mm"))]
                .parse::<f64>()
                .unwrap(),
            dvh["dose"]["grid_spacing_mm"][i].as_f64().unwrap()
        );
    }
    assert!(!c[column(&ch, "completed_at")].is_empty());

    // qc: the verdict of qc.json.
    let qc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v1.join("qc/qc.json")).unwrap()).unwrap();
    let (qh, qrows) = read_csv(&csv_dir.join("qc.csv"));
    assert_eq!(qrows.len(), 1);
    assert_eq!(
        qrows[0][column(&qh, "verdict")],
        qc["verdict"].as_str().unwrap()
    );
    assert_eq!(
        qrows[0][column(&qh, "checks")],
        qc["checks"].as_array().unwrap().len().to_string()
    );

    // radiomics: the stage's rows, with provenance in front.
    let (rh, rrows) = read_csv(&csv_dir.join("radiomics.csv"));
    assert_eq!(rrows.len(), 2);
    assert_eq!(rrows[1][column(&rh, "roi")], "BODY");
    assert_eq!(rrows[1][column(&rh, "original_firstorder_Mean")], "-3.5");
    assert_eq!(rrows[1][column(&rh, "course_id")], id);

    // Parquet holds exactly what the CSV holds, table by table.
    for t in ["dvh_metrics", "radiomics", "qc", "courses"] {
        let csv = read_csv(&csv_dir.join(format!("{t}.csv")));
        let pq = read_parquet(&pq_dir.join(format!("{t}.parquet")));
        assert_eq!(csv.0, pq.0, "{t} columns");
        assert_eq!(csv.1.len(), pq.1.len(), "{t} rows");
        for (a, b) in csv.1.iter().zip(&pq.1) {
            for ((x, y), name) in a.iter().zip(b).zip(&csv.0) {
                match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => assert_eq!(x, y, "{t}.{name}"),
                    _ => assert_eq!(x, y, "{t}.{name}"),
                }
            }
        }
    }

    // Pseudonymised: no PatientID or name anywhere, same pseudonym with the
    // same key, another with another key.
    let key = dir.path().join("key");
    std::fs::write(&key, "a secret of at least sixteen bytes\n").unwrap();
    let other_key = dir.path().join("other-key");
    std::fs::write(&other_key, "another secret, also long enough\n").unwrap();
    let mut pseudonyms = Vec::new();
    for (name, format, k) in [
        ("pseudo-csv", "csv", &key),
        ("pseudo-parquet", "parquet", &key),
        ("pseudo-csv-again", "csv", &key),
        ("pseudo-csv-other", "csv", &other_key),
    ] {
        let out = dir.path().join(name);
        ok(rtnode(&[
            "export",
            "--data-dir",
            p(&s.data_dir),
            "--config",
            p(&defaults),
            "--format",
            format,
            "--pseudonymise",
            "--pseudonym-key",
            p(k),
            "--out",
            p(&out),
        ]));
        let files = all_bytes_under(&out);
        assert_eq!(files.len(), 4, "{files:?}");
        for (path, bytes) in &files {
            for secret in [PATIENT_ID, PATIENT_NAME, "Phantom", &id] {
                assert!(
                    !contains(bytes, secret),
                    "{} contains {secret}",
                    path.display()
                );
            }
        }
        if format == "csv" {
            let (h, rows) = read_csv(&out.join("courses.csv"));
            assert!(!h.contains(&"study_date".to_string()), "{h:?}");
            assert!(!h.contains(&"patient_birth_date".to_string()), "{h:?}");
            assert!(!h.contains(&"plan_names".to_string()), "{h:?}");
            assert_eq!(rows[0][column(&h, "fractions")], "25");
            pseudonyms.push(rows[0][column(&h, "patient_id")].clone());
            let (rh, rrows) = read_csv(&out.join("radiomics.csv"));
            assert!(!rh.iter().any(|c| c.starts_with("diagnostics_")), "{rh:?}");
            assert_eq!(
                rrows[0][column(&rh, "original_shape_MeshVolume")],
                "22426.5"
            );
        } else {
            let (_, rows) = read_parquet(&out.join("dvh_metrics.parquet"));
            assert_eq!(rows.len(), rois.len());
        }
    }
    assert!(pseudonyms[0].starts_with("P-"), "{pseudonyms:?}");
    assert_eq!(pseudonyms[0], pseudonyms[1]);
    assert_ne!(pseudonyms[0], pseudonyms[2]);

    // Without a key, --pseudonymise refuses rather than exporting in clear.
    let out = rtnode(&[
        "export",
        "--data-dir",
        p(&s.data_dir),
        "--config",
        p(&defaults),
        "--pseudonymise",
        "--out",
        p(&dir.path().join("refused")),
    ]);
    assert!(!out.status.success());
    assert!(!dir.path().join("refused").exists());
    s.stop();
}

#[test]
fn purge_removes_old_courses_keeps_recent_and_pending_and_nothing_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_node(dir.path());
    let old = deliver(&s, &dir.path().join("old"), "RTNODE_SCU");
    let pending = deliver(&s, &dir.path().join("pending"), "SENDER_A");
    let v = s.status_json();
    assert!(
        v["outbound"]["pending"].as_u64().unwrap() >= 1,
        "{}",
        v["outbound"]
    );
    std::thread::sleep(Duration::from_secs(3));
    let recent_sent = Instant::now();
    let recent = deliver(&s, &dir.path().join("recent"), "RTNODE_SCU");
    let instances_of = |v: &serde_json::Value, id: &str| -> u64 {
        let c = courses(v).into_iter().find(|c| c["id"] == id).unwrap();
        c["objects"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    let before = s.status_json();
    let old_instances = instances_of(&before, &old);
    assert!(old_instances >= 19, "{old_instances}");

    // Due: what had its last activity more than a second before the recent
    // course was sent.
    let older_than =
        |margin: Duration| format!("{}ms", (recent_sent.elapsed() + margin).as_millis());
    let purge = |extra: &[&str]| -> serde_json::Value {
        let age = older_than(Duration::from_secs(1));
        let mut args = vec![
            "purge",
            "--data-dir",
            p(&s.data_dir),
            "--older-than",
            &age,
            "--json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(rtnode(&args))).unwrap()
    };
    let files_before = stored_files(&s.data_dir).len();
    let dry = purge(&["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    let ids = |r: &serde_json::Value, k: &str| -> Vec<String> {
        r[k].as_array()
            .unwrap()
            .iter()
            .map(|c| c["course_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&dry, "purged"), [old.as_str()], "{dry}");
    assert_eq!(ids(&dry, "kept"), [pending.as_str()], "{dry}");
    assert!(
        dry["kept"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("pending"),
        "{dry}"
    );
    assert_eq!(dry["recent"], 1, "{dry}");
    // A dry run changes nothing.
    let after_dry = s.status_json();
    assert_eq!(course_ids(&after_dry), course_ids(&before));
    assert_eq!(after_dry["instances"], before["instances"]);
    assert_eq!(stored_files(&s.data_dir).len(), files_before);
    assert!(s.data_dir.join("courses").join(&old).exists());

    let done = purge(&[]);
    assert_eq!(ids(&done, "purged"), [old.as_str()], "{done}");
    assert_eq!(ids(&done, "kept"), [pending.as_str()], "{done}");
    assert_eq!(done["purged"][0]["results_removed"], true, "{done}");
    assert_eq!(done["purged"][0]["state_rows"]["course"], true, "{done}");
    let after = s.status_json();
    let mut expected = vec![pending.clone(), recent.clone()];
    expected.sort();
    assert_eq!(course_ids(&after), expected);
    assert_eq!(
        after["instances"].as_u64().unwrap(),
        before["instances"].as_u64().unwrap() - old_instances
    );
    assert_eq!(
        stored_files(&s.data_dir).len(),
        files_before - old_instances as usize
    );
    assert!(!s.data_dir.join("courses").join(&old).exists());
    assert!(s.data_dir.join("courses").join(&pending).exists());
    assert!(s.data_dir.join("courses").join(&recent).exists());
    // One audit line per patient and study purged.
    let audit: String = std::fs::read_dir(s.data_dir.join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let deleted: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["event"] == "DICOMStudyDeleted")
        .collect();
    assert_eq!(deleted.len(), 1, "{audit}");
    assert_eq!(deleted[0]["patient_id"], PATIENT_ID);
    assert!(deleted[0]["outcome"].as_str().unwrap().contains(&old));

    // Neither a restart nor an index rebuild from the files brings it back.
    s.stop();
    ok(rtnode(&[
        "rebuild-index",
        "--data-dir",
        p(&dir.path().join("data")),
    ]));
    let offline = status_json(&dir.path().join("data"));
    assert_eq!(course_ids(&offline), expected);
    assert_eq!(offline["instances"], after["instances"]);
    let s = start_node(dir.path());
    std::thread::sleep(Duration::from_secs(3));
    let v = s.status_json();
    assert_eq!(course_ids(&v), expected, "{}", v["courses"]);
    assert_eq!(v["instances"], after["instances"]);
    s.stop();
}

#[test]
fn the_configured_retention_policy_purges_in_the_running_node() {
    let dir = tempfile::tempdir().unwrap();
    // ServerOptions writes its own storage section; retention joins it.
    let cfg = node_config(dir.path());
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "storage:\n",
        "storage:\n  retention:\n    older_than: 4s\n    check_every: 1s\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let s = Server::start_with_config(dir.path(), &cfg);
    let id = deliver(&s, &dir.path().join("course"), "RTNODE_SCU");
    assert!(s.data_dir.join("courses").join(&id).exists());
    // Status stops showing the course as soon as the scheduler forgets it,
    // a moment before its instances are gone: wait for both.
    let v = wait_status(&s.data_dir, 60, "the course purged by the policy", |v| {
        courses(v).is_empty() && v["instances"] == 0
    });
    assert_eq!(v["patients"], 0);
    // The purge's last steps (state rows, audit, log) follow the files.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.log_text().contains("retention policy applied") {
        assert!(Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.log_text().contains("course purged"), "{}", s.log_text());
    assert!(!s.data_dir.join("courses").join(&id).exists());
    s.stop();
    // Its state rows went too: the stopped node's status has no course.
    assert!(courses(&status_json(&dir.path().join("data"))).is_empty());
}

/// What `status --json` says of courses, jobs and the outbound queue.
fn state_view(v: &serde_json::Value) -> serde_json::Value {
    let courses: Vec<serde_json::Value> = courses(v)
        .iter()
        .map(|c| {
            let stages: HashMap<String, String> = c["stage_details"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["stage"].as_str().unwrap().to_string(),
                        format!("{} {}", s["state"], s["attempts"]),
                    )
                })
                .collect();
            serde_json::json!({
                "id": c["id"], "state": c["state"], "version": c["version"],
                "objects": c["objects"], "stages": stages,
            })
        })
        .collect();
    let q = &v["outbound"];
    serde_json::json!({
        "courses": courses,
        "outbound": [q["pending"], q["sent"], q["dead"]],
        "stage_runs": v["stage_runs"],
        "instances": v["instances"],
    })
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn state_backup_while_serving_restores_into_a_fresh_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_node(dir.path());
    deliver(&s, &dir.path().join("a"), "RTNODE_SCU");
    deliver(&s, &dir.path().join("b"), "SENDER_A");
    let live = s.status_json();
    assert!(live["outbound"]["pending"].as_u64().unwrap() >= 1);

    let backup = dir.path().join("state-backup.redb");
    let out = ok(rtnode(&[
        "backup",
        "--data-dir",
        p(&s.data_dir),
        "--out",
        p(&backup),
    ]));
    assert!(out.contains("2 courses"), "{out}");
    // The node's temporary copy is gone; the node still serves.
    let leftovers: Vec<_> = std::fs::read_dir(s.data_dir.join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(s.status_json()["server_state"], "running");

    // Restoring onto the running node's directory is refused.
    let refused = rtnode(&["restore", p(&backup), "--data-dir", p(&s.data_dir)]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("running"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // The procedure: state from the backup, the store as files, the index
    // rebuilt from them.
    let fresh = dir.path().join("fresh");
    copy_tree(&s.data_dir.join("store"), &fresh.join("store"));
    ok(rtnode(&["restore", p(&backup), "--data-dir", p(&fresh)]));
    ok(rtnode(&["rebuild-index", "--data-dir", p(&fresh)]));
    let restored = status_json(&fresh);
    assert_eq!(restored["server_state"], "stopped");
    assert_eq!(state_view(&restored), state_view(&live));
    s.stop();
}

/// A `--config` that names a missing file is an error for every command
/// that takes one, never a silent run on the embedded defaults (`process`
/// and `export` used to fall back to them while `serve` refused).
#[test]
fn a_named_config_that_does_not_exist_is_an_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-rtnode.yaml");
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let out = dir.path().join("out");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "process",
            vec![
                "process",
                p(&input),
                "--out",
                p(&out),
                "--config",
                p(&missing),
            ],
        ),
        (
            "export",
            vec![
                "export",
                "--out",
                p(&out),
                "--data-dir",
                p(&data),
                "--config",
                p(&missing),
            ],
        ),
        (
            "serve",
            vec!["serve", "--config", p(&missing), "--port", "0"],
        ),
    ];
    for (what, args) in runs {
        let o = rtnode(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{what} ran on defaults: {stderr}");
        assert!(
            stderr.contains("no-such-rtnode.yaml") && stderr.contains("not found"),
            "{what}: {stderr}"
        );
    }
    // Nothing was written: the commands stopped before doing any work.
    assert!(!out.exists());
}
