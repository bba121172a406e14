//! The outbound queue and auto-routing against real receivers: dcmtk's
//! storescp standing in for a PACS or TPS, and a pynetdicom SCP that answers
//! a chosen failure status.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Receiver {
    child: Child,
    dir: PathBuf,
}

impl Receiver {
    fn storescp(port: u16, dir: &Path) -> Receiver {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new(dcmtk("storescp"))
            .env("TCP_NODELAY", "1")
            .args(["-aet", "PACS_OUT", "-od"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        Receiver {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn files(&self) -> usize {
        std::fs::read_dir(&self.dir).map(|d| d.count()).unwrap_or(0)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, out_port: u16, routing: &str, out_classes: &str) -> PathBuf {
    let opts = ServerOptions {
        extra_yaml: format!(
            "export:\n  retry_base_s: 1\n  retry_max_s: 2\n  max_attempts: 20\nrouting:\n{routing}"
        ),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir, &opts);
    std::fs::write(
        dir.join("peers.yaml"),
        format!(
            "peers:\n- {{ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: ECHOSCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: PACS_OUT, host: 127.0.0.1, port: {out_port}, may_store: false{out_classes}}}\n"
        ),
    )
    .unwrap();
    cfg
}

fn outbound(s: &Server) -> serde_json::Value {
    s.status_json()["outbound"].clone()
}

fn wait_outbound(
    s: &Server,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = outbound(s);
        if pred(&o) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {o}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_routing_rule_forwards_only_what_it_matches() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 4, 64);
    let ss = dir.path().join("ss.dcm");
    write_rtstruct(&ss, &ct, "1.2.826.0.1.3680043.10.41", None);
    let port = free_port();
    let rx = Receiver::storescp(port, &dir.path().join("received"));
    let rules = "- {name: planning-ct, modality: [CT], tags: {SeriesDescription: \"(?i)phantom\"}, to: [PACS_OUT]}\n\
                 - {name: everything-else-nowhere, modality: [MR], to: [PACS_OUT]}\n";
    let cfg = config(dir.path(), port, rules, "");
    let s = Server::start_with_config(dir.path(), &cfg);
    let mut all = ct.clone();
    all.push(ss);
    send_ok(s.port, &all);
    let o = wait_outbound(&s, "4 sent", |o| o["sent"] == 4);
    assert_eq!(o["pending"], 0);
    assert_eq!(o["dead"], 0);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.files(), 4, "only the CT slices, not the RTSTRUCT");
    s.stop();
}

#[test]
fn a_destination_down_at_first_gets_everything_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 3, 64);
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        "- {name: all-ct, modality: [CT], to: [PACS_OUT]}\n",
        "",
    );
    let s = Server::start_with_config(dir.path(), &cfg);
    send_ok(s.port, &ct);
    let o = wait_outbound(&s, "failed attempts", |o| o["pending"] == 3);
    assert_eq!(o["sent"], 0);
    std::thread::sleep(Duration::from_secs(2));
    assert!(s.log_text().contains("send failed; will retry"));
    s.stop();

    let rx = Receiver::storescp(port, &dir.path().join("received"));
    let s = Server::start_with_config(dir.path(), &cfg);
    assert!(s.log_text().contains("outbound queue resumed") || outbound(&s)["sent"] == 3);
    wait_outbound(&s, "3 sent after restart", |o| {
        o["sent"] == 3 && o["pending"] == 0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(rx.files(), 3);
    s.stop();
}

#[test]
fn a9xx_is_a_dead_letter_at_once_and_retry_requeues_it() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 1, 64);
    let port = free_port();
    let mut scp = Command::new(venv_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/status_scp.py"))
        .args([&port.to_string(), "PACS_OUT", "A900"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    let cfg = config(dir.path(), port, "- {name: all, to: [PACS_OUT]}\n", "");
    let s = Server::start_with_config(dir.path(), &cfg);
    send_ok(s.port, &ct);
    let o = wait_outbound(&s, "a dead letter", |o| o["dead"] == 1);
    let dl = &o["dead_letters"][0];
    assert_eq!(dl["attempts"], 1, "permanent: no retries");
    assert!(dl["error"].as_str().unwrap().starts_with("A900"), "{dl}");
    let text = Command::new(BIN)
        .args(["status", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("dead #1 to PACS_OUT"));

    let out = Command::new(BIN)
        .args(["retry", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 dead letter(s) requeued"
    );
    // It goes out again and is refused again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.log_text().matches("dead letter").count() < 2 {
        assert!(Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    s.stop();
    let _ = scp.kill();
    let out = scp.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("-> A900")
            .count(),
        2
    );
}

#[test]
fn destinations_get_only_the_sop_classes_they_take() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 2, 64);
    let ss = dir.path().join("ss.dcm");
    write_rtstruct(&ss, &ct, "1.2.826.0.1.3680043.10.42", None);
    let port = free_port();
    let rx = Receiver::storescp(port, &dir.path().join("received"));
    let cfg = config(
        dir.path(),
        port,
        "- {name: all, to: [PACS_OUT]}\n",
        ", sop_classes: [RTStructureSetStorage]",
    );
    let s = Server::start_with_config(dir.path(), &cfg);
    let mut all = ct.clone();
    all.push(ss);
    send_ok(s.port, &all);
    wait_outbound(&s, "1 sent", |o| o["sent"] == 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(outbound(&s)["sent"], 1);
    assert_eq!(rx.files(), 1);
    assert!(s
        .log_text()
        .contains("destination does not take this SOP class"));
    s.stop();
}

/// The audit events of a stopped node's data dir.
fn audit_events(data_dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in std::fs::read_dir(data_dir.join("audit")).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
    }
    out
}

fn text_of(path: &Path, tag: dicom_core::Tag) -> String {
    dicom_object::open_file(path)
        .unwrap()
        .element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

#[test]
fn sent_audit_events_name_the_patient_and_study() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 2, 64);
    let study = text_of(&ct[0], dicom_dictionary_std::tags::STUDY_INSTANCE_UID);
    let port = free_port();
    let _rx = Receiver::storescp(port, &dir.path().join("received"));
    let cfg = config(
        dir.path(),
        port,
        "- {name: all-ct, modality: [CT], to: [PACS_OUT]}\n",
        "",
    );
    let s = Server::start_with_config(dir.path(), &cfg);
    send_ok(s.port, &ct);
    wait_outbound(&s, "2 sent", |o| o["sent"] == 2);
    let data_dir = s.data_dir.clone();
    s.stop();
    let sent: Vec<serde_json::Value> = audit_events(&data_dir)
        .into_iter()
        .filter(|e| e["action"] == "sent")
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    for e in &sent {
        assert_eq!(e["event"], "DICOMInstancesTransferred");
        assert_eq!(e["called_ae"], "PACS_OUT");
        assert_eq!(e["patient_id"], "RTNODE-PHANTOM-001", "{e}");
        assert_eq!(e["study_instance_uid"], study.as_str(), "{e}");
    }
}

#[test]
fn routing_never_sends_back_to_the_sending_ae() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 2, 64);
    let port = free_port();
    let rx = Receiver::storescp(port, &dir.path().join("received"));
    // RTNODE_SCU (the sender) is a peer with a host and port nothing listens
    // on: had it been queued, it would sit there pending, retrying.
    let cfg = config(
        dir.path(),
        port,
        "- {name: fan-out, to: [RTNODE_SCU, PACS_OUT]}\n",
        "",
    );
    let s = Server::start_with_config(dir.path(), &cfg);
    send_ok(s.port, &ct);
    wait_outbound(&s, "2 sent", |o| o["sent"] == 2);
    std::thread::sleep(Duration::from_millis(1500));
    let o = outbound(&s);
    assert_eq!(o["pending"], 0, "nothing queued for the sender: {o}");
    assert_eq!(o["dead"], 0, "{o}");
    assert_eq!(o["sent"], 2, "{o}");
    assert_eq!(rx.files(), 2);
    s.stop();
}

#[test]
fn results_go_back_to_a_sender_that_asks_for_them() {
    use rtnode::synth::rt::write_rt_objects;
    use rtnode::synth::{write_ct_series, SynthOptions};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let opts = SynthOptions {
        slices: 24,
        ..SynthOptions::default().with_rows(96)
    };
    let series = write_ct_series(&input, &opts).unwrap();
    let rt = write_rt_objects(&input, &series, &opts).unwrap();
    let tps_port = free_port();
    let tps = Receiver::storescp(tps_port, &dir.path().join("tps"));
    let pacs_port = free_port();
    let pacs = Receiver::storescp(pacs_port, &dir.path().join("pacs"));
    let node_opts = ServerOptions {
        extra_yaml: "pipeline:\n  stable_age_s: 1\n  trigger: full\n\
                     export:\n  retry_base_s: 1\n  retry_max_s: 2\n"
            .into(),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir.path(), &node_opts);
    // TPS sends the course and asks for its results; PACS_OUT is a known
    // peer with host and port that neither sent nor asked.
    std::fs::write(
        dir.path().join("peers.yaml"),
        format!(
            "peers:\n- {{ae_title: TPS, host: 127.0.0.1, port: {tps_port}, results_to_sender: true}}\n\
             - {{ae_title: PACS_OUT, host: 127.0.0.1, port: {pacs_port}, results_to_sender: true}}\n"
        ),
    )
    .unwrap();
    let s = Server::start_with_config(dir.path(), &cfg);
    let mut files = series.files.clone();
    files.extend([rt.rtstruct.clone(), rt.rtplan.clone(), rt.rtdose.clone()]);
    let out = Command::new(BIN)
        .args(["send", "--calling-ae", "TPS", "--to"])
        .arg(format!("RTNODE@127.0.0.1:{}", s.port))
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The auto-segmentation RTSTRUCT and the report: two results, to TPS.
    let deadline = Instant::now() + Duration::from_secs(180);
    let o = loop {
        let o = outbound(&s);
        if o["sent"] == 2 && o["pending"] == 0 {
            break o;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {o}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(o["dead"], 0, "{o}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(tps.files(), 2, "RTSTRUCT and report back at the sender");
    assert_eq!(pacs.files(), 0, "not the sender of this course");
    let data_dir = s.data_dir.clone();
    s.stop();
    let study = text_of(
        &series.files[0],
        dicom_dictionary_std::tags::STUDY_INSTANCE_UID,
    );
    let patient = text_of(&series.files[0], dicom_dictionary_std::tags::PATIENT_ID);
    let sent: Vec<serde_json::Value> = audit_events(&data_dir)
        .into_iter()
        .filter(|e| e["action"] == "sent")
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    for e in &sent {
        assert_eq!(e["called_ae"], "TPS");
        assert_eq!(e["patient_id"], patient.as_str(), "{e}");
        assert_eq!(e["study_instance_uid"], study.as_str(), "{e}");
    }
}
