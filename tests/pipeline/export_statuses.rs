//! How the outbound queue judges a destination's answer, against a real
//! pynetdicom SCP (tests/peers/status_scp.py) answering a chosen status:
//! A7xx is retried up to `export.max_attempts`, B-range is a success with a
//! warning, C-range is a dead letter at once; and a destination that takes
//! only implicit VR little endian still gets a readable object.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct StatusScp {
    child: Option<Child>,
}

impl StatusScp {
    fn start(port: u16, status: &str, extra: &[&str]) -> StatusScp {
        let child = Command::new(venv_python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/status_scp.py"))
            .args([&port.to_string(), "PACS_OUT", status])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        StatusScp { child: Some(child) }
    }

    /// Stops it and returns what it printed.
    fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for StatusScp {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A node that forwards everything it receives to PACS_OUT, with short
/// retry waits.
fn start_node(dir: &Path, out_port: u16, max_attempts: u32) -> Server {
    let opts = ServerOptions {
        extra_yaml: format!(
            "export:\n  retry_base_s: 1\n  retry_max_s: 1\n  max_attempts: {max_attempts}\n\
             routing:\n- {{name: all, to: [PACS_OUT]}}\n"
        ),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir, &opts);
    std::fs::write(
        dir.join("peers.yaml"),
        format!(
            "peers:\n- {{ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: PACS_OUT, host: 127.0.0.1, port: {out_port}, may_store: false}}\n"
        ),
    )
    .unwrap();
    Server::start_with_config(dir, &cfg)
}

fn wait_outbound(
    s: &Server,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = s.status_json()["outbound"].clone();
        if pred(&o) {
            return o;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {o}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn one_ct(dir: &Path) -> PathBuf {
    synth(&dir.join("ct"), 1, 64).remove(0)
}

#[test]
fn a700_is_retried_and_dead_lettered_only_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let ct = one_ct(dir.path());
    let port = free_port();
    let scp = StatusScp::start(port, "A700", &[]);
    let s = start_node(dir.path(), port, 3);
    send_ok(s.port, &[ct]);
    let o = wait_outbound(&s, "a dead letter", |o| o["dead"] == 1);
    assert_eq!(o["sent"], 0);
    assert_eq!(o["pending"], 0);
    let dl = &o["dead_letters"][0];
    assert_eq!(dl["attempts"], 3, "retried up to max_attempts: {dl}");
    assert!(dl["error"].as_str().unwrap().starts_with("A700"), "{dl}");
    assert_eq!(
        s.log_text().matches("send failed; will retry").count(),
        2,
        "two retries before the dead letter"
    );
    s.stop();
    assert_eq!(scp.stop().matches("-> A700").count(), 3);
}

#[test]
fn b000_is_a_success_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let ct = one_ct(dir.path());
    let port = free_port();
    let scp = StatusScp::start(port, "B000", &[]);
    let s = start_node(dir.path(), port, 3);
    send_ok(s.port, &[ct]);
    wait_outbound(&s, "sent", |o| o["sent"] == 1);
    // Nothing left to retry: it stays sent.
    std::thread::sleep(Duration::from_millis(1500));
    let o = s.status_json()["outbound"].clone();
    assert_eq!(
        (
            o["sent"].as_u64(),
            o["pending"].as_u64(),
            o["dead"].as_u64()
        ),
        (Some(1), Some(0), Some(0)),
        "{o}"
    );
    assert!(s.log_text().contains("stored with a warning"));
    s.stop();
    assert_eq!(scp.stop().matches("-> B000").count(), 1);
}

#[test]
fn c000_is_a_dead_letter_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ct = one_ct(dir.path());
    let port = free_port();
    let scp = StatusScp::start(port, "C000", &[]);
    let s = start_node(dir.path(), port, 5);
    send_ok(s.port, &[ct]);
    let o = wait_outbound(&s, "a dead letter", |o| o["dead"] == 1);
    let dl = &o["dead_letters"][0];
    assert_eq!(dl["attempts"], 1, "permanent: no retries: {dl}");
    assert!(dl["error"].as_str().unwrap().starts_with("C000"), "{dl}");
    assert!(!s.log_text().contains("send failed; will retry"));
    s.stop();
    assert_eq!(scp.stop().matches("-> C000").count(), 1);
}

#[test]
fn a_destination_taking_only_implicit_vr_gets_a_readable_object() {
    use dicom_dictionary_std::tags;
    let dir = tempfile::tempdir().unwrap();
    let ct = one_ct(dir.path());
    let port = free_port();
    let out = dir.path().join("received");
    std::fs::create_dir_all(&out).unwrap();
    let scp = StatusScp::start(
        port,
        "0000",
        &["--implicit-only", "--out", out.to_str().unwrap()],
    );
    let s = start_node(dir.path(), port, 3);
    send_ok(s.port, std::slice::from_ref(&ct));
    // Without this the test would prove nothing: the stored copy must be in
    // a syntax the destination refuses.
    let stored = stored_files(&s.data_dir);
    assert_eq!(stored.len(), 1, "{stored:?}");
    let stored_obj = dicom_object::open_file(&stored[0]).unwrap();
    assert_ne!(
        stored_obj.meta().transfer_syntax().trim_end_matches('\0'),
        rtnode::dicom::uids::IMPLICIT_VR_LE,
        "the stored copy is already implicit VR"
    );
    let o = wait_outbound(&s, "sent", |o| o["sent"] == 1 || o["dead"] == 1);
    assert_eq!(o["sent"], 1, "{o}");
    s.stop();
    let said = scp.stop();
    let uid = stored_obj
        .element(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    assert!(
        said.contains(&format!(
            "decoded {uid} PatientID=RTNODE-PHANTOM-001 in {}",
            rtnode::dicom::uids::IMPLICIT_VR_LE
        )),
        "{said}"
    );
    let received = dicom_object::open_file(out.join(format!("{uid}.dcm"))).unwrap();
    assert_eq!(
        received.meta().transfer_syntax().trim_end_matches('\0'),
        rtnode::dicom::uids::IMPLICIT_VR_LE
    );
    let text = |o: &dicom_object::DefaultDicomObject, t| {
        o.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(['\0', ' '])
            .to_string()
    };
    for tag in [tags::PATIENT_ID, tags::STUDY_INSTANCE_UID] {
        assert_eq!(text(&received, tag), text(&stored_obj, tag), "{tag}");
    }
    assert_eq!(
        received
            .element(tags::ROWS)
            .unwrap()
            .to_int::<u32>()
            .unwrap(),
        stored_obj
            .element(tags::ROWS)
            .unwrap()
            .to_int::<u32>()
            .unwrap()
    );
    assert_eq!(
        received
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap(),
        stored_obj
            .element(tags::PIXEL_DATA)
            .unwrap()
            .to_bytes()
            .unwrap(),
        "the pixels survive the re-encoding"
    );
}
