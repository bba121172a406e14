//! The SCP against real peers: dcmtk's echoscu, storescu and storescp, and
//! rtnode's own `send`, over loopback, with the server as a real process.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::open_file;

fn port_s(s: &Server) -> String {
    s.port.to_string()
}

fn storescu(s: &Server, files: &[PathBuf], extra: &[&str]) -> std::process::Output {
    let port = port_s(s);
    let mut args: Vec<String> = vec!["-aec".into(), "RTNODE".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    args.push("127.0.0.1".into());
    args.push(port);
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_dcmtk("storescu", &args)
}

fn rtnode_send(s: &Server, files: &[PathBuf]) -> std::process::Output {
    Command::new(BIN)
        .arg("send")
        .arg("--to")
        .arg(format!("RTNODE@127.0.0.1:{}", s.port))
        .args(files)
        .output()
        .unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The data set bytes of a Part 10 file (everything after its meta group).
fn dataset_bytes(path: &Path) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    let meta = rtnode::dicom::part10::read_file_meta(&mut f)
        .unwrap()
        .unwrap();
    let all = std::fs::read(path).unwrap();
    all[meta.dataset_offset as usize..].to_vec()
}

fn sop_uid(path: &Path) -> String {
    let obj = open_file(path).unwrap();
    obj.element(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

/// Rewrites a file with some data set elements replaced (and the meta group
/// kept consistent), as a sender with bad data would produce it.
fn rewrite(src: &Path, dst: &Path, changes: &[(dicom_core::Tag, &str)]) {
    let mut obj = open_file(src).unwrap();
    for (tag, value) in changes {
        obj.put(DataElement::new(*tag, VR::UI, PrimitiveValue::from(*value)));
        if *tag == tags::SOP_INSTANCE_UID {
            obj.meta_mut().media_storage_sop_instance_uid = value.to_string();
        }
    }
    obj.meta_mut().update_information_group_length();
    obj.write_to_file(dst).unwrap();
}

fn counts(v: &serde_json::Value) -> (u64, u64, u64, u64) {
    (
        v["patients"].as_u64().unwrap(),
        v["studies"].as_u64().unwrap(),
        v["series"].as_u64().unwrap(),
        v["instances"].as_u64().unwrap(),
    )
}

#[test]
fn echoscu_and_storescu_store_byte_identical_data_sets() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 12, 64);
    let s = Server::start(dir.path(), &ServerOptions::default());

    let echo = run_dcmtk("echoscu", &["-aec", "RTNODE", "127.0.0.1", &port_s(&s)]);
    assert!(echo.status.success(), "{}", text(&echo));

    let out = storescu(&s, &files, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(counts(&s.status_json()), (1, 1, 1, 12));

    let stored = stored_files(&s.data_dir);
    assert_eq!(stored.len(), 12);
    for f in &files {
        let uid = sop_uid(f);
        let mine = stored
            .iter()
            .find(|p| p.file_name().unwrap().to_str().unwrap() == format!("{uid}.dcm"))
            .unwrap_or_else(|| panic!("{uid} not stored"));
        assert_eq!(dataset_bytes(f), dataset_bytes(mine), "{uid} differs");
        // Stored under store/<study>/<series>/<sop>.dcm and readable by dcmtk.
        let dump = run_dcmtk("dcmdump", &[mine.to_str().unwrap()]);
        assert!(dump.status.success(), "{}", text(&dump));
    }
    let status = s.status_json();
    assert_eq!(status["server_state"], "running");
    let recent = status["recent_associations"].as_array().unwrap();
    assert!(recent
        .iter()
        .any(|a| a["calling_ae"] == "STORESCU" && a["instances"] == 12));
    s.stop();
}

#[test]
fn four_concurrent_storescu_processes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &ServerOptions::default());
    let mut series = Vec::new();
    for k in 0..4 {
        series.push(synth(&dir.path().join(format!("ct{k}")), 15, 64));
    }
    let children: Vec<_> = series
        .iter()
        .map(|files| {
            Command::new(dcmtk("storescu"))
                .env("TCP_NODELAY", "1")
                .args(["-aec", "RTNODE", "127.0.0.1", &port_s(&s)])
                .args(files)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
    }
    // Four synth runs: four patients' worth of studies (same patient ID).
    let (_, studies, series_n, instances) = counts(&s.status_json());
    assert_eq!((studies, series_n, instances), (4, 4, 60));
    assert_eq!(stored_files(&s.data_dir).len(), 60);
    s.stop();
}

#[test]
fn unknown_or_unauthorised_callers_and_wrong_called_ae_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &ServerOptions::default());
    let p = port_s(&s);
    let unknown = run_dcmtk(
        "echoscu",
        &["-aet", "NOBODY", "-aec", "RTNODE", "127.0.0.1", &p],
    );
    assert!(!unknown.status.success());
    assert!(
        text(&unknown).contains("Calling AE Title Not Recognized"),
        "{}",
        text(&unknown)
    );
    let no_store = run_dcmtk(
        "echoscu",
        &["-aet", "NOT_ALLOWED", "-aec", "RTNODE", "127.0.0.1", &p],
    );
    assert!(!no_store.status.success());
    assert!(text(&no_store).contains("Calling AE Title Not Recognized"));
    let wrong_called = run_dcmtk("echoscu", &["-aec", "SOMEONE_ELSE", "127.0.0.1", &p]);
    assert!(!wrong_called.status.success());
    assert!(
        text(&wrong_called).contains("Called AE Title Not Recognized"),
        "{}",
        text(&wrong_called)
    );
    // The association log is written as each association ends, after the
    // peer already has its A-ASSOCIATE-RJ: wait for all three records.
    let rejected = |v: &serde_json::Value| {
        v["recent_associations"].as_array().is_some_and(|a| {
            a.iter()
                .filter(|a| a["outcome"].as_str().unwrap_or("").starts_with("rejected"))
                .count()
                >= 3
        })
    };
    let status = wait_status(
        &s.data_dir,
        20,
        "three rejected associations logged",
        rejected,
    );
    let outcomes: Vec<String> = status["recent_associations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.starts_with("rejected"))
            .count(),
        3,
        "{outcomes:?}"
    );
    assert!(s.log_text().contains("association rejected"));
    s.stop();
}

#[test]
fn hostile_uids_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 2, 64);
    let bad = dir.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let traversal = bad.join("traversal.dcm");
    rewrite(
        &files[0],
        &traversal,
        &[(tags::SOP_INSTANCE_UID, "../../etc/x")],
    );
    let bad_study = bad.join("study.dcm");
    rewrite(
        &files[0],
        &bad_study,
        &[(tags::STUDY_INSTANCE_UID, "1.2..3")],
    );
    let bad_series = bad.join("series.dcm");
    rewrite(
        &files[0],
        &bad_series,
        &[(tags::SERIES_INSTANCE_UID, "1.2.3/../../../x")],
    );
    let too_long = bad.join("long.dcm");
    rewrite(
        &files[0],
        &too_long,
        &[(tags::SOP_INSTANCE_UID, &"1.2".repeat(30))],
    );
    let leading_zero = bad.join("leading_zero.dcm");
    rewrite(
        &files[1],
        &leading_zero,
        &[(tags::SOP_INSTANCE_UID, "1.2.826.0.1.3680043.2.0123.7")],
    );

    let s = Server::start(dir.path(), &ServerOptions::default());
    let before: HashSet<PathBuf> = walk_all(dir.path());
    let out = rtnode_send(
        &s,
        &[
            traversal.clone(),
            bad_study.clone(),
            bad_series.clone(),
            too_long.clone(),
        ],
    );
    assert!(
        !out.status.success(),
        "send must report failures: {}",
        text(&out)
    );
    let report = text(&out);
    assert_eq!(report.matches("C001").count(), 4, "{report}");
    assert!(report.contains("0 sent, 4 failed"), "{report}");
    // The same through dcmtk: the refusal is a DIMSE status, not a dropped link.
    let out = storescu(&s, std::slice::from_ref(&traversal), &[]);
    assert!(
        text(&out).contains("Store Response") || !out.status.success(),
        "{}",
        text(&out)
    );
    let after: HashSet<PathBuf> = walk_all(dir.path());
    let new: Vec<_> = after
        .difference(&before)
        .filter(|p| !p.starts_with(&s.data_dir) || p.starts_with(s.data_dir.join("store")))
        .collect();
    assert!(new.is_empty(), "files appeared: {new:?}");
    assert!(stored_files(&s.data_dir).is_empty());
    assert!(!dir.path().join("etc").exists() && !s.data_dir.join("etc").exists());

    // A UID with a leading-zero component is stored, with a warning.
    let out = rtnode_send(&s, &[leading_zero]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stored_files(&s.data_dir).len(), 1);
    assert!(s.log_text().contains("leading zero"));
    assert!(s.log_text().contains("C-STORE refused"));
    s.stop();
}

fn walk_all(d: &Path) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    fn go(d: &Path, out: &mut HashSet<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    go(&p, out);
                } else if !p.to_string_lossy().ends_with(".log") {
                    out.insert(p);
                }
            }
        }
    }
    go(d, &mut out);
    out
}

#[test]
fn truncated_data_set_fails_alone_and_the_association_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 3, 64);
    let truncated = dir.path().join("truncated.dcm");
    let bytes = std::fs::read(&files[1]).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 1000]).unwrap();
    let s = Server::start(dir.path(), &ServerOptions::default());
    let out = rtnode_send(&s, &[files[0].clone(), truncated, files[2].clone()]);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("C000"), "{report}");
    assert!(report.contains("2 sent, 1 failed"), "{report}");
    assert_eq!(stored_files(&s.data_dir).len(), 2);
    assert!(std::fs::read_dir(s.data_dir.join("tmp"))
        .unwrap()
        .next()
        .is_none());
    let echo = run_dcmtk("echoscu", &["-aec", "RTNODE", "127.0.0.1", &port_s(&s)]);
    assert!(echo.status.success());
    assert!(
        s.log_text().contains("RTNODE_SCU"),
        "the refusal names the calling AE"
    );
    s.stop();
}

#[test]
fn restart_keeps_the_index_and_rebuild_recreates_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 10, 64);
    let s = Server::start(dir.path(), &ServerOptions::default());
    assert!(storescu(&s, &files, &[]).status.success());
    let data_dir = s.data_dir.clone();
    s.stop();
    assert!(
        data_dir.join("index.clean").exists(),
        "clean stop leaves its marker"
    );
    // Status works with no server running, straight from the index.
    let v = status_json(&data_dir);
    assert_eq!(v["server_state"], "stopped");
    assert_eq!(counts(&v), (1, 1, 1, 10));

    let s = Server::start(dir.path(), &ServerOptions::default());
    assert_eq!(counts(&s.status_json()), (1, 1, 1, 10));
    s.stop();

    std::fs::remove_file(data_dir.join("index.redb")).unwrap();
    let out = Command::new(BIN)
        .args(["rebuild-index", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(counts(&status_json(&data_dir)), (1, 1, 1, 10));
}

#[test]
fn rtnode_send_reaches_dcmtk_storescp_intact() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 6, 64);
    let out_dir = dir.path().join("received");
    std::fs::create_dir_all(&out_dir).unwrap();
    let port = free_port();
    let mut scp = Command::new(dcmtk("storescp"))
        .env("TCP_NODELAY", "1")
        .args(["-aet", "STORESCP", "-od"])
        .arg(&out_dir)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    let out = Command::new(BIN)
        .args(["send", "--to", &format!("STORESCP@127.0.0.1:{port}")])
        .arg(dir.path().join("ct"))
        .output()
        .unwrap();
    let _ = scp.kill();
    let _ = scp.wait();
    assert!(out.status.success(), "{}", text(&out));
    let received: Vec<PathBuf> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(received.len(), files.len());
    for f in &files {
        let uid = sop_uid(f);
        let r = received
            .iter()
            .find(|p| sop_uid(p) == uid)
            .expect("received");
        let a = open_file(f).unwrap();
        let b = open_file(r).unwrap();
        for tag in [
            tags::PIXEL_DATA,
            tags::PATIENT_NAME,
            tags::IMAGE_POSITION_PATIENT,
            tags::SERIES_INSTANCE_UID,
        ] {
            assert_eq!(
                a.element(tag).unwrap().to_bytes().unwrap(),
                b.element(tag).unwrap().to_bytes().unwrap(),
                "{uid} {tag}"
            );
        }
    }
}

/// Which instances storescu -v saw acknowledged with Success: it logs
/// "Sending file: X" then, for that file, "Received Store Response (Success)".
fn acknowledged(log: &str) -> Vec<PathBuf> {
    let mut current: Option<PathBuf> = None;
    let mut out = Vec::new();
    for line in log.lines() {
        if let Some(f) = line.strip_prefix("I: Sending file: ") {
            current = Some(PathBuf::from(f.trim()));
        } else if line.contains("Received Store Response (Success)") {
            if let Some(f) = current.take() {
                out.push(f);
            }
        }
    }
    out
}

#[test]
fn kill_9_during_four_transfers_loses_no_acknowledged_instance() {
    let dir = tempfile::tempdir().unwrap();
    let mut series = Vec::new();
    for k in 0..4 {
        series.push(synth(&dir.path().join(format!("ct{k}")), 150, 128));
    }
    let s = Server::start(dir.path(), &ServerOptions::default());
    let port = port_s(&s);
    let logs: Vec<PathBuf> = (0..4)
        .map(|k| dir.path().join(format!("storescu{k}.log")))
        .collect();
    let children: Vec<_> = series
        .iter()
        .zip(&logs)
        .map(|(files, log)| {
            Command::new(dcmtk("storescu"))
                .env("TCP_NODELAY", "1")
                .args(["-v", "-aec", "RTNODE", "127.0.0.1", &port])
                .args(files)
                .stdout(std::fs::File::create(log).unwrap())
                .stderr(std::fs::File::options().append(true).open(log).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill while all four are mid-stream.
    let deadline = Instant::now() + Duration::from_secs(120);
    while stored_files(&s.data_dir).len() < 100 {
        assert!(Instant::now() < deadline, "transfers never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    let data_dir = s.data_dir.clone();
    s.kill9();
    for mut c in children {
        let _ = c.wait();
    }
    let acked: Vec<PathBuf> = logs
        .iter()
        .flat_map(|l| acknowledged(&std::fs::read_to_string(l).unwrap()))
        .collect();
    assert!(acked.len() >= 50, "only {} acknowledged", acked.len());
    let total: usize = series.iter().map(Vec::len).sum();
    assert!(
        acked.len() < total,
        "the kill came too late to test anything"
    );
    eprintln!(
        "{} of {total} instances acknowledged before kill -9",
        acked.len()
    );

    // Restart: recovery must index every acknowledged instance.
    let s = Server::start(dir.path(), &ServerOptions::default());
    assert!(s.log_text().contains("recovery scan"), "{}", s.log_text());
    let v = s.status_json();
    assert!(v["instances"].as_u64().unwrap() >= acked.len() as u64);
    s.stop();
    let index = rtnode::store::Index::open(&data_dir.join("index.redb")).unwrap();
    for f in &acked {
        let uid = sop_uid(f);
        let rec = index
            .get(&uid)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged {uid} not indexed"));
        let stored = data_dir.join(&rec.path);
        assert_eq!(dataset_bytes(f), dataset_bytes(&stored), "{uid} differs");
    }
    // No partial file is visible: everything in the store parses whole.
    for p in stored_files(&data_dir) {
        let obj = open_file(&p).unwrap_or_else(|e| panic!("{} unreadable: {e}", p.display()));
        assert_eq!(
            obj.element(tags::PIXEL_DATA)
                .unwrap()
                .to_bytes()
                .unwrap()
                .len(),
            128 * 128 * 2
        );
    }
    assert!(std::fs::read_dir(data_dir.join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn low_watermark_answers_out_of_resources_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 2, 64);
    let opts = ServerOptions {
        // Far above any real free space: the disk counts as full.
        min_free_bytes: 1 << 60,
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    let out = storescu(&s, &files[..1], &["-v"]);
    let t = text(&out);
    assert!(
        t.contains("Received Store Response (Refused: OutOfResources)"),
        "{t}"
    );
    assert!(!out.status.success());
    let out = rtnode_send(&s, &files);
    assert!(!out.status.success());
    assert!(text(&out).contains("A700"), "{}", text(&out));
    assert!(stored_files(&s.data_dir).is_empty());
    assert!(std::fs::read_dir(s.data_dir.join("tmp"))
        .unwrap()
        .next()
        .is_none());
    // The node stays up and says why.
    assert!(
        run_dcmtk("echoscu", &["-aec", "RTNODE", "127.0.0.1", &port_s(&s)])
            .status
            .success()
    );
    assert!(s.log_text().contains("low-watermark"));
    s.stop();
}

#[test]
fn admin_socket_is_private_to_the_service_user() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &ServerOptions::default());
    let meta = std::fs::metadata(s.data_dir.join("admin.sock")).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(s.status_json()["server_state"], "running");
    let data_dir = s.data_dir.clone();
    s.stop();
    assert!(!data_dir.join("admin.sock").exists());
}

#[test]
fn duplicate_under_another_study_moves_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 1, 64);
    let moved = dir.path().join("moved.dcm");
    rewrite(
        &files[0],
        &moved,
        &[(tags::STUDY_INSTANCE_UID, "1.2.3.4.5.6.7")],
    );
    let s = Server::start(dir.path(), &ServerOptions::default());
    assert!(rtnode_send(&s, &files).status.success());
    assert!(rtnode_send(&s, &[moved]).status.success());
    let stored = stored_files(&s.data_dir);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0]
        .to_string_lossy()
        .contains("/store/1.2.3.4.5.6.7/"));
    assert_eq!(counts(&s.status_json()), (1, 1, 1, 1));
    s.stop();
}

#[test]
fn validate_reports_errors_with_file_and_line() {
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/rtnode.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(&cfg, "node:\n  ae_title: THIS_TITLE_IS_WAY_TOO_LONG\n  port: 0\nnetwork:\n  max_asociations: 3\n").unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("bad.yaml:5"), "{t}");
}

/// Every transfer syntax we accept is stored exactly as received and decodes
/// afterwards to the original pixels (all of these are lossless). dcmtk's own
/// converters make the inputs.
#[test]
fn encoded_transfer_syntaxes_are_stored_as_received_and_decode() {
    use dicom_pixeldata::PixelDecoder;
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 6, 64);
    let conv = dir.path().join("conv");
    std::fs::create_dir_all(&conv).unwrap();
    let cases: [(&str, &[&str], &str); 6] = [
        ("dcmconv", &["+ti"], rtnode::dicom::uids::IMPLICIT_VR_LE),
        (
            "dcmconv",
            &["+td"],
            rtnode::dicom::uids::DEFLATED_EXPLICIT_VR_LE,
        ),
        ("dcmconv", &["+tb"], rtnode::dicom::uids::EXPLICIT_VR_BE),
        ("dcmcrle", &[], "1.2.840.10008.1.2.5"),
        ("dcmcjpeg", &[], "1.2.840.10008.1.2.4.70"),
        ("dcmcjpls", &[], "1.2.840.10008.1.2.4.80"),
    ];
    let mut converted = Vec::new();
    for (k, (tool, args, ts)) in cases.iter().enumerate() {
        let out = conv.join(format!("{k}.dcm"));
        let mut a: Vec<&str> = args.to_vec();
        a.push(files[k].to_str().unwrap());
        a.push(out.to_str().unwrap());
        let o = run_dcmtk(tool, &a);
        assert!(o.status.success(), "{tool}: {}", text(&o));
        let meta = rtnode::dicom::part10::read_file_meta(&mut std::fs::File::open(&out).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            meta.transfer_syntax_uid, *ts,
            "{tool} made {}",
            meta.transfer_syntax_uid
        );
        converted.push((files[k].clone(), out, *ts));
    }
    let s = Server::start(dir.path(), &ServerOptions::default());
    let paths: Vec<PathBuf> = converted.iter().map(|c| c.1.clone()).collect();
    // dcmtk's storescu first (it re-encodes what it sends, and cannot send
    // RLE or JPEG-LS from a file as is), then rtnode's send, whose copies
    // replace those and must be kept exactly as they arrived.
    let o = storescu(&s, &paths[..3], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = rtnode_send(&s, &paths);
    assert!(out.status.success(), "{}", text(&out));
    let index = {
        let data_dir = s.data_dir.clone();
        s.stop();
        rtnode::store::Index::open(&data_dir.join("index.redb"))
            .map(|i| (i, data_dir))
            .unwrap()
    };
    for (original, sent, ts) in &converted {
        let uid = sop_uid(sent);
        let rec = index.0.get(&uid).unwrap().unwrap();
        assert_eq!(rec.transfer_syntax_uid, *ts);
        let stored = index.1.join(&rec.path);
        if *ts != rtnode::dicom::uids::DEFLATED_EXPLICIT_VR_LE {
            assert_eq!(
                dataset_bytes(sent),
                dataset_bytes(&stored),
                "{ts} not stored as received"
            );
        }
        let want = open_file(original)
            .unwrap()
            .decode_pixel_data()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let got = open_file(&stored)
            .unwrap()
            .decode_pixel_data()
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(want, got, "{ts} does not decode to the original pixels");
    }
}

/// The association limit and the peer address check, both answered with the
/// A-ASSOCIATE-RJ reason a sender's log will show.
#[test]
fn association_limit_and_address_check() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let opts = ServerOptions {
        max_associations: 1,
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    // Hold the only slot with a raw association that never releases.
    let rq = dicom_ul::pdu::AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "STORESCU".into(),
        called_ae_title: "RTNODE".into(),
        application_context_name: rtnode::dicom::uids::APPLICATION_CONTEXT.into(),
        presentation_contexts: vec![dicom_ul::pdu::PresentationContextProposed {
            id: 1,
            abstract_syntax: rtnode::dicom::uids::VERIFICATION.into(),
            transfer_syntaxes: vec![rtnode::dicom::uids::IMPLICIT_VR_LE.into()],
        }],
        user_variables: vec![dicom_ul::pdu::UserVariableItem::MaxLength(16384)],
    };
    let mut bytes = Vec::new();
    dicom_ul::pdu::write_pdu(&mut bytes, &dicom_ul::pdu::Pdu::AssociationRQ(rq)).unwrap();
    let mut holder = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    holder.write_all(&bytes).unwrap();
    let mut head = [0u8; 1];
    holder.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x02, "first association accepted");
    let busy = run_dcmtk("echoscu", &["-aec", "RTNODE", "127.0.0.1", &port_s(&s)]);
    assert!(!busy.status.success());
    assert!(
        text(&busy).contains("Local Limit Exceeded"),
        "{}",
        text(&busy)
    );
    drop(holder);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        run_dcmtk("echoscu", &["-aec", "RTNODE", "127.0.0.1", &port_s(&s)])
            .status
            .success()
    );
    s.stop();

    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &ServerOptions::default());
    let text_cfg = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("network:\n", "network:\n  check_peer_address: true\n");
    std::fs::write(&cfg, text_cfg).unwrap();
    std::fs::write(
        dir.path().join("peers.yaml"),
        "peers:\n- {ae_title: ECHOSCU, host: 127.0.0.1, port: 104}\n- {ae_title: FARAWAY, host: 192.0.2.7, port: 104}\n",
    )
    .unwrap();
    let s = Server::start_with_config(dir.path(), &cfg);
    assert!(
        run_dcmtk("echoscu", &["-aec", "RTNODE", "127.0.0.1", &port_s(&s)])
            .status
            .success()
    );
    let spoof = run_dcmtk(
        "echoscu",
        &[
            "-aet",
            "FARAWAY",
            "-aec",
            "RTNODE",
            "127.0.0.1",
            &port_s(&s),
        ],
    );
    assert!(!spoof.status.success());
    assert!(text(&spoof).contains("Calling AE Title Not Recognized"));
    assert!(s.log_text().contains("unexpected address"));
    s.stop();
}
