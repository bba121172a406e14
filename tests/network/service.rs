//! Running as a service: the peers file and the routing rules reload on
//! SIGHUP and on change without dropping an open association; systemd hears
//! READY=1 and a STATUS= with the outbound queue depth.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn echo_as(port: u16, ae: &str) -> bool {
    run_dcmtk(
        "echoscu",
        &["-aet", ae, "-aec", "RTNODE", "127.0.0.1", &port.to_string()],
    )
    .status
    .success()
}

/// Replaces a file the way editors and deployment tools do: write aside,
/// then rename over it.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_log(s: &Server, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.log_text().matches(needle).count() < count {
        assert!(
            Instant::now() < deadline,
            "log never said {needle:?} {count}x:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An association held open by hand, to show a reload leaves it alone.
struct RawAssociation(TcpStream);

impl RawAssociation {
    fn open(port: u16, calling: &str) -> RawAssociation {
        let rq = dicom_ul::pdu::AssociationRQ {
            protocol_version: 1,
            calling_ae_title: calling.into(),
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
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&bytes).unwrap();
        let (ty, _) = read_pdu(&mut s);
        assert_eq!(ty, 0x02, "association accepted");
        RawAssociation(s)
    }

    /// C-ECHO over the open association; returns the DIMSE status.
    fn echo(&mut self, id: u16) -> u16 {
        let cmd = rtnode::dimse::encode_command(&rtnode::dimse::c_echo_rq(id));
        let mut pdu = vec![0x04, 0];
        pdu.extend_from_slice(&((cmd.len() + 6) as u32).to_be_bytes());
        pdu.extend_from_slice(&((cmd.len() + 2) as u32).to_be_bytes());
        pdu.extend_from_slice(&[1, 0x03]);
        pdu.extend_from_slice(&cmd);
        self.0.write_all(&pdu).unwrap();
        let (ty, body) = read_pdu(&mut self.0);
        assert_eq!(ty, 0x04);
        let rsp = rtnode::dimse::decode_command(&body[6..]).unwrap();
        rsp.status.unwrap().code()
    }
}

fn read_pdu(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 6];
    s.read_exact(&mut h).unwrap();
    let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (h[0], body)
}

#[test]
fn peers_reload_on_sighup_and_on_change_without_dropping_associations() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &ServerOptions::default());
    let peers = dir.path().join("peers.yaml");
    let original = std::fs::read_to_string(&peers).unwrap();
    assert!(!echo_as(s.port, "LATECOMER"));
    let mut open = RawAssociation::open(s.port, "ECHOSCU");
    assert_eq!(open.echo(1), 0);

    // An edit is picked up by the file watch, no signal needed.
    replace_file(
        &peers,
        &format!("{original}- {{ae_title: LATECOMER, host: 127.0.0.1, port: 104}}\n"),
    );
    wait_log(&s, "peers reloaded", 1);
    assert!(echo_as(s.port, "LATECOMER"));
    assert_eq!(open.echo(2), 0, "the open association survives the reload");

    // SIGHUP alone reloads too.
    Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .unwrap();
    wait_log(&s, "trigger=\"SIGHUP\"", 1);
    // An invalid file is refused and the previous peers stay.
    let reloads = s.log_text().matches("peers reloaded").count();
    replace_file(&peers, "peers:\n  - ae_title: THIS_TITLE_IS_FAR_TOO_LONG\n");
    wait_log(&s, "peers file invalid", 1);
    assert!(echo_as(s.port, "LATECOMER"));

    // Fixed again: LATECOMER is replaced by WATCHED.
    replace_file(
        &peers,
        &format!("{original}- {{ae_title: WATCHED, host: 127.0.0.1, port: 104}}\n"),
    );
    wait_log(&s, "peers reloaded", reloads + 1);
    // A late event from an earlier edit may account for that reload under
    // load; what matters is that the new file takes effect.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !echo_as(s.port, "WATCHED") {
        assert!(
            Instant::now() < deadline,
            "WATCHED never accepted:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !echo_as(s.port, "LATECOMER"),
        "LATECOMER is gone from the file now"
    );
    assert_eq!(open.echo(3), 0);
    s.stop();
}

#[test]
fn systemd_hears_ready() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 2, 64);
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // A destination nobody listens on keeps what is routed to it queued,
    // so STATUS= has a non-zero outbound depth to report.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = ServerOptions {
        env: vec![
            ("NOTIFY_SOCKET".into(), sock_path.display().to_string()),
            ("WATCHDOG_USEC".into(), "2000000".into()),
        ],
        extra_yaml: "export:\n  retry_base_s: 30\n  retry_max_s: 60\n\
                     routing:\n- {name: all-ct, modality: [CT], to: [DOWN]}\n"
            .into(),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir.path(), &opts);
    let peers = dir.path().join("peers.yaml");
    let mut text = std::fs::read_to_string(&peers).unwrap();
    text.push_str(&format!(
        "- {{ae_title: DOWN, host: 127.0.0.1, port: {down}, may_store: false}}\n"
    ));
    std::fs::write(&peers, text).unwrap();
    let s = Server::start_with_config_env(dir.path(), &cfg, &opts.env);
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1\n");
    let n = sock.recv(&mut buf).unwrap();
    let status = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(
        status.starts_with("STATUS=0 association(s) open"),
        "{status}"
    );
    assert!(status.contains(", 0 outbound queued"), "{status}");
    assert!(status.ends_with("\nWATCHDOG=1\n"), "{status}");
    send_ok(s.port, &ct);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = sock.recv(&mut buf).unwrap();
        let status = String::from_utf8_lossy(&buf[..n]).to_string();
        if status.contains(", 2 outbound queued") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "last: {status}\n{}",
            s.log_text()
        );
    }
    s.stop();
}

/// A storescp standing in for PACS_OUT; how many files it has received.
struct Pacs(std::process::Child, std::path::PathBuf);

impl Pacs {
    fn start(port: u16, dir: &std::path::Path) -> Pacs {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new(dcmtk("storescp"))
            .env("TCP_NODELAY", "1")
            .args(["-aet", "PACS_OUT", "-od"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        Pacs(child, dir.to_path_buf())
    }

    fn received(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.1)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

impl Drop for Pacs {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn routing_config(data_dir: &std::path::Path, peers: &std::path::Path, modality: &str) -> String {
    format!(
        "node:\n  ae_title: RTNODE\n  bind: 127.0.0.1\n  port: 0\n  data_dir: {}\n  peers_file: {}\n\
         network:\n  metrics_address: 127.0.0.1:0\n\
         storage:\n  min_free_bytes: 1048576\n\
         logging:\n  level: debug\n\
         export:\n  retry_base_s: 1\n  retry_max_s: 2\n\
         routing:\n- {{name: forward, modality: [{modality}], to: [PACS_OUT]}}\n",
        data_dir.display(),
        peers.display()
    )
}

fn sop_uid(path: &std::path::Path) -> String {
    dicom_object::open_file(path)
        .unwrap()
        .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

fn wait_sent(s: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = s.status_json()["outbound"].clone();
        if o["sent"] == n && o["pending"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{o}\n{}", s.log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn log_line_with(s: &Server, a: &str, b: &str) -> bool {
    s.log_text().lines().any(|l| l.contains(a) && l.contains(b))
}

/// Runs the same story for both reload paths: a rule for MR forwards no
/// CT; the rule is edited to CT and reloaded; the next CT is forwarded,
/// the earlier one (routed on arrival) is not.
fn routing_edit_changes_what_is_forwarded(via_sighup: bool) {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 2, 64);
    let pacs_port = free_port();
    let pacs = Pacs::start(pacs_port, &dir.path().join("pacs"));
    let peers = dir.path().join("peers.yaml");
    std::fs::write(
        &peers,
        format!(
            "peers:\n- {{ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: PACS_OUT, host: 127.0.0.1, port: {pacs_port}, may_store: false}}\n"
        ),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let cfg = dir.path().join("rtnode.yaml");
    // For SIGHUP, the config is a symlink to a file elsewhere, as deployment
    // tools often leave it: the watch on the link's directory does not see
    // the target change today, so the signal is what reloads it.
    let edited = if via_sighup {
        let real = dir.path().join("real");
        std::fs::create_dir_all(&real).unwrap();
        let target = real.join("rtnode.yaml");
        std::os::unix::fs::symlink(&target, &cfg).unwrap();
        target
    } else {
        cfg.clone()
    };
    std::fs::write(&edited, routing_config(&data_dir, &peers, "MR")).unwrap();
    let s = Server::start_with_config(dir.path(), &cfg);
    send_ok(s.port, &ct[..1]);
    std::thread::sleep(Duration::from_millis(1500));
    let o = s.status_json()["outbound"].clone();
    assert_eq!(
        (o["sent"].as_u64(), o["pending"].as_u64()),
        (Some(0), Some(0)),
        "{o}"
    );

    replace_file(&edited, &routing_config(&data_dir, &peers, "CT"));
    let trigger = if via_sighup {
        Command::new("kill")
            .args(["-HUP", &s.pid().to_string()])
            .status()
            .unwrap();
        "trigger=\"SIGHUP\""
    } else {
        "trigger=\"file change\""
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log_line_with(&s, "routing rules reloaded", trigger) {
        assert!(
            Instant::now() < deadline,
            "no reload by {trigger}:\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    send_ok(s.port, &ct[1..]);
    wait_sent(&s, 1);
    std::thread::sleep(Duration::from_millis(500));
    let got = pacs.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].ends_with(&sop_uid(&ct[1])), "{got:?}");
    s.stop();
}

#[test]
fn routing_rules_reload_on_sighup() {
    routing_edit_changes_what_is_forwarded(true);
}

#[test]
fn routing_rules_reload_when_the_config_file_changes() {
    routing_edit_changes_what_is_forwarded(false);
}

#[test]
fn doctor_checks_data_dir_port_and_peers() {
    let dir = tempfile::tempdir().unwrap();
    let listening = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let scp_port = listening.local_addr().unwrap().port();
    drop(listening);
    let mut scp = Command::new(dcmtk("storescp"))
        .args(["--ignore", "-aet", "TPS", &scp_port.to_string()])
        .spawn()
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let write = |results_to_closed: bool| {
        std::fs::write(
            dir.path().join("peers.yaml"),
            format!(
                "peers:\n- {{ae_title: TPS, host: 127.0.0.1, port: {scp_port}, receives_results: true}}\n\
                 - {{ae_title: SENDER, host: 127.0.0.1, port: {closed}, receives_results: {results_to_closed}}}\n"
            ),
        )
        .unwrap();
        let cfg = dir.path().join("rtnode.yaml");
        std::fs::write(
            &cfg,
            format!(
                "node: {{bind: 127.0.0.1, port: 0, data_dir: {}, peers_file: peers.yaml}}\nstorage: {{min_free_bytes: 1048576}}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        cfg
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", scp_port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let cfg = write(false);
    let out = Command::new(BIN)
        .args(["doctor", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK    data_dir"), "{text}");
    assert!(
        text.contains(&format!(
            "OK    peer          TPS@127.0.0.1:{scp_port} answers C-ECHO"
        )),
        "{text}"
    );
    assert!(text.contains("WARN  peer          SENDER@"), "{text}");
    // A peer that should receive results but does not answer is a failure.
    let cfg = write(true);
    let out = Command::new(BIN)
        .args(["doctor", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL  peer          SENDER@"));
    let _ = scp.kill();
    let _ = scp.wait();
}

#[test]
fn metrics_count_instances_and_failures_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 3, 64);
    let s = Server::start(dir.path(), &ServerOptions::default());
    let node: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.data_dir.join("node.json")).unwrap()).unwrap();
    let addr = node["metrics"]
        .as_str()
        .expect("metrics address in node.json")
        .to_string();
    send_ok(s.port, &files);
    assert!(!echo_as(s.port, "NOBODY"));
    let mut conn = TcpStream::connect(&addr).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"));
    assert!(
        body.contains("\nrtnode_instances_received_total 3\n"),
        "{body}"
    );
    assert!(
        body.contains("rtnode_failures_total{reason=\"rejected_calling_ae\"} 1"),
        "{body}"
    );
    assert!(body.contains("rtnode_outbound{state=\"pending\"} 0"));
    s.stop();
}

#[test]
fn audit_trail_names_who_sent_which_patient() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 2, 64);
    let s = Server::start(dir.path(), &ServerOptions::default());
    send_ok(s.port, &files);
    assert!(!echo_as(s.port, "NOBODY"));
    let data_dir = s.data_dir.clone();
    s.stop();
    let audit = data_dir.join("audit");
    let file = std::fs::read_dir(&audit)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        kinds.first().unwrap(),
        &("ApplicationActivity".into(), "started".into())
    );
    assert_eq!(
        kinds.last().unwrap(),
        &("ApplicationActivity".into(), "stopped".into())
    );
    let received: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["action"] == "received")
        .collect();
    assert_eq!(received.len(), 2);
    for e in &received {
        assert_eq!(e["calling_ae"], "RTNODE_SCU");
        assert_eq!(e["patient_id"], "RTNODE-PHANTOM-001");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    let alert = events
        .iter()
        .find(|e| e["event"] == "SecurityAlert")
        .unwrap();
    assert_eq!(alert["calling_ae"], "NOBODY");
    assert_eq!(
        file.file_name().unwrap().to_str().unwrap().len(),
        "2026-01-01.jsonl".len()
    );
}
