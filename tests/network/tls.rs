//! DICOM over TLS against dcmtk built with OpenSSL: its `echoscu +tls` and
//! `storescu +tls` towards our TLS port, our `send` and outbound queue
//! towards its `storescp +tls`, and what the TLS port must refuse. The
//! certificates are made here by the `openssl` command: a test CA, a node
//! certificate for 127.0.0.1/localhost, client certificates, and a second
//! CA nobody trusts.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// PEM files of the test PKI, made once per test binary.
struct Pki {
    ca: PathBuf,
    /// The node: server and client certificate (it also connects out).
    node_crt: PathBuf,
    node_key: PathBuf,
    /// dcmtk's SCUs.
    scu_crt: PathBuf,
    scu_key: PathBuf,
    /// dcmtk's storescp.
    peer_crt: PathBuf,
    peer_key: PathBuf,
    /// Issued by a CA that nobody trusts.
    rogue_crt: PathBuf,
    rogue_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl not found: install it (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[node]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectAltName = DNS:storescu.test
";

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ]
        .iter()
        .copied()
        .chain(["-out", &format!("{name}.key")])
        .collect::<Vec<_>>(),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-config",
            "openssl.cnf",
            "-extensions",
            "ca",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN=rtnode test {name}"),
            "-days",
            "3",
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn make_leaf(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &format!("{name}.key"),
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-config",
            "openssl.cnf",
            "-key",
            &format!("{name}.key"),
            "-subj",
            &format!("/CN={cn}"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "openssl.cnf",
            "-extensions",
            ext,
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        // Kept for the life of the test process: every test uses it.
        let dir = tempfile::tempdir().unwrap().keep();
        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).unwrap();
        make_ca(&dir, "ca");
        make_ca(&dir, "rogue-ca");
        make_leaf(&dir, "ca", "node", "rtnode", "node");
        make_leaf(&dir, "ca", "peer", "storescp", "node");
        make_leaf(&dir, "ca", "scu", "storescu", "client");
        make_leaf(&dir, "rogue-ca", "rogue", "storescu", "client");
        Pki {
            ca: dir.join("ca.crt"),
            node_crt: dir.join("node.crt"),
            node_key: dir.join("node.key"),
            scu_crt: dir.join("scu.crt"),
            scu_key: dir.join("scu.key"),
            peer_crt: dir.join("peer.crt"),
            peer_key: dir.join("peer.key"),
            rogue_crt: dir.join("rogue.crt"),
            rogue_key: dir.join("rogue.key"),
        }
    })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A node config with a TLS listener on a free port (plaintext too unless
/// `plaintext` is false) and a peers file with `extra_peers`.
fn tls_config(dir: &Path, plaintext: bool, extra_yaml: &str, extra_peers: &str) -> PathBuf {
    let pki = pki();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("peers.yaml"),
        format!(
            "peers:\n\
             - {{ae_title: STORESCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: ECHOSCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}}\n{extra_peers}"
        ),
    )
    .unwrap();
    let cfg = dir.join("rtnode.yaml");
    std::fs::write(
        &cfg,
        format!(
            "node:\n  ae_title: RTNODE\n  bind: 127.0.0.1\n  port: 0\n  data_dir: {data}\n  peers_file: peers.yaml\n\
             network:\n  idle_timeout_s: 20\n  metrics_address: 127.0.0.1:0\n\
             \x20 tls:\n    port: 0\n    certificate: {crt}\n    private_key: {key}\n    ca: {ca}\n    plaintext: {plaintext}\n    handshake_timeout_s: 2\n\
             storage:\n  fsync: false\n  min_free_bytes: 1048576\n\
             logging:\n  level: debug\n{extra_yaml}",
            data = dir.join("data").display(),
            crt = s(&pki.node_crt),
            key = s(&pki.node_key),
            ca = s(&pki.ca),
        ),
    )
    .unwrap();
    cfg
}

fn node_json(s: &Server) -> serde_json::Value {
    let text = std::fs::read_to_string(s.data_dir.join("node.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tls_port(s: &Server) -> u16 {
    node_json(s)["tls_port"]
        .as_u64()
        .expect("node.json names the TLS port") as u16
}

fn metrics(s: &Server) -> String {
    let addr = node_json(s)["metrics"].as_str().unwrap().to_string();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

fn failures(s: &Server, reason: &str) -> u64 {
    let key = format!("rtnode_failures_total{{reason=\"{reason}\"}} ");
    metrics(s)
        .lines()
        .find_map(|l| l.strip_prefix(&key))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// dcmtk's TLS client options with a key and certificate.
fn tls_args<'a>(key: &'a Path, crt: &'a Path) -> Vec<&'a str> {
    vec!["+tls", s(key), s(crt), "+cf", s(&pki().ca)]
}

fn storescu(extra: &[&str], port: u16, file: &Path) -> std::process::Output {
    let port = port.to_string();
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["-aet", "STORESCU", "-aec", "RTNODE", "127.0.0.1", &port]);
    args.push(s(file));
    run_dcmtk("storescu", &args)
}

fn wait_stored(data_dir: &Path, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let files = stored_files(data_dir);
        if files.len() >= n {
            return files;
        }
        assert!(
            Instant::now() < deadline,
            "{n} instance(s) expected in the store, found {files:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sop_instance_uid(file: &Path) -> String {
    use dicom_dictionary_std::tags;
    dicom_object::open_file(file)
        .unwrap()
        .element(tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

fn stored_uids(data_dir: &Path) -> Vec<String> {
    stored_files(data_dir)
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn dcmtk_echo_and_store_over_tls_and_plaintext_alongside() {
    let dir = tempfile::tempdir().unwrap();
    // 128 KiB data sets: many P-DATA PDUs across many TLS records.
    let ct = synth(&dir.path().join("ct"), 2, 256);
    let cfg = tls_config(&dir.path().join("node"), true, "", "");
    let server = Server::start_with_config(&dir.path().join("node"), &cfg);
    let port = tls_port(&server);
    assert_ne!(port, server.port);
    let pki = pki();

    let port_s = port.to_string();
    let mut echo = tls_args(&pki.scu_key, &pki.scu_crt);
    echo.extend(["-aet", "ECHOSCU", "-aec", "RTNODE", "127.0.0.1", &port_s]);
    let out = run_dcmtk("echoscu", &echo);
    assert!(
        out.status.success(),
        "echoscu +tls: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let out = storescu(&tls_args(&pki.scu_key, &pki.scu_crt), port, &ct[0]);
    assert!(
        out.status.success(),
        "storescu +tls: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    wait_stored(&server.data_dir, 1);
    assert_eq!(
        stored_uids(&server.data_dir),
        vec![sop_instance_uid(&ct[0])]
    );

    // The plaintext port serves as before.
    let out = storescu(&[], server.port, &ct[1]);
    assert!(
        out.status.success(),
        "plaintext storescu: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_stored(&server.data_dir, 2);
    let mut want = vec![sop_instance_uid(&ct[0]), sop_instance_uid(&ct[1])];
    want.sort();
    let mut got = stored_uids(&server.data_dir);
    got.sort();
    assert_eq!(got, want);
    server.stop();
}

#[test]
fn tls_port_refuses_plaintext_untrusted_and_anonymous_clients() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 1, 32);
    // Plaintext off: the TLS port is the node's only port.
    let cfg = tls_config(&dir.path().join("node"), false, "", "");
    let server = Server::start_with_config(&dir.path().join("node"), &cfg);
    let port = tls_port(&server);
    assert_eq!(server.port, port, "node.json's port is the TLS port");
    let pki = pki();

    // A plaintext A-ASSOCIATE-RQ on the TLS port.
    let out = storescu(&[], port, &ct[0]);
    assert!(!out.status.success(), "plaintext storescu was accepted");
    // A certificate from a CA we do not trust.
    let rogue = tls_args(&pki.rogue_key, &pki.rogue_crt);
    let out = storescu(&rogue, port, &ct[0]);
    assert!(
        !out.status.success(),
        "untrusted client certificate was accepted"
    );
    // No certificate at all: client certificates are required by default.
    let out = storescu(&["+tla", "+cf", s(&pki.ca)], port, &ct[0]);
    assert!(!out.status.success(), "anonymous TLS client was accepted");
    assert!(stored_files(&server.data_dir).is_empty());

    // A client that connects and says nothing is dropped after the
    // handshake timeout (2 s here), freeing its slot.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf);
    // Closed (EOF or reset), not our read timeout.
    let closed = match &n {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        closed && started.elapsed() < Duration::from_secs(9),
        "silent client not dropped: {n:?} after {:?}",
        started.elapsed()
    );

    // The node kept serving.
    let out = storescu(&tls_args(&pki.scu_key, &pki.scu_crt), port, &ct[0]);
    assert!(
        out.status.success(),
        "storescu +tls after the refusals: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_stored(&server.data_dir, 1);

    // Each refusal is logged with the peer address and counted.
    let log = server.log_text();
    let refusals = log
        .lines()
        .filter(|l| l.contains("TLS handshake failed") && l.contains("127.0.0.1:"))
        .count();
    assert!(refusals >= 3, "expected 3 logged refusals:\n{log}");
    assert!(
        failures(&server, "tls_handshake") >= 3,
        "{}",
        metrics(&server)
    );
    assert_eq!(failures(&server, "tls_handshake_timeout"), 1);
    server.stop();
}

/// dcmtk's storescp over TLS with the given server key and certificate.
struct TlsReceiver {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl TlsReceiver {
    fn start(dir: &Path, key: &Path, crt: &Path) -> TlsReceiver {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let child = Command::new(dcmtk("storescp"))
            .env("TCP_NODELAY", "1")
            .args(["-aet", "TLS_PACS", "-od"])
            .arg(dir)
            .args(tls_args(key, crt))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        TlsReceiver {
            child,
            dir: dir.to_path_buf(),
            port,
        }
    }

    fn received(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|d| d.flatten().map(|e| sop_instance_uid(&e.path())).collect())
            .unwrap_or_default();
        out.sort();
        out
    }
}

impl Drop for TlsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(cfg: &Path, port: u16, file: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(["send", "--config"])
        .arg(cfg)
        .args(["--to", &format!("TLS_PACS@127.0.0.1:{port}")])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn rtnode_send_over_tls_to_dcmtk_storescp() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 1, 32);
    let pki = pki();
    let rx = TlsReceiver::start(&dir.path().join("rx"), &pki.peer_key, &pki.peer_crt);
    let peer = format!(
        "- {{ae_title: TLS_PACS, host: 127.0.0.1, port: {}, may_store: false, tls: true}}\n",
        rx.port
    );
    let cfg = tls_config(&dir.path().join("node"), true, "", &peer);

    let out = send(&cfg, rx.port, &ct[0]);
    assert!(
        out.status.success(),
        "rtnode send over TLS: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.received().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rx.received(), vec![sop_instance_uid(&ct[0])]);

    // A server whose certificate our CA did not issue is refused by us.
    let rogue_rx = TlsReceiver::start(&dir.path().join("rogue-rx"), &pki.rogue_key, &pki.rogue_crt);
    let peer = format!(
        "- {{ae_title: TLS_PACS, host: 127.0.0.1, port: {}, may_store: false, tls: true}}\n",
        rogue_rx.port
    );
    let cfg = tls_config(&dir.path().join("node2"), true, "", &peer);
    let out = send(&cfg, rogue_rx.port, &ct[0]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "sent to an untrusted server: {stdout}"
    );
    assert!(stdout.contains("TLS"), "{stdout}");
    assert!(rogue_rx.received().is_empty());
}

#[test]
fn outbound_queue_delivers_to_a_tls_peer() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 2, 32);
    let pki = pki();
    let rx = TlsReceiver::start(&dir.path().join("rx"), &pki.peer_key, &pki.peer_crt);
    let peer = format!(
        "- {{ae_title: TLS_PACS, host: 127.0.0.1, port: {}, may_store: false, tls: true}}\n",
        rx.port
    );
    let routing = "export:\n  retry_base_s: 1\n  retry_max_s: 2\nrouting:\n- {name: all-ct, modality: [CT], to: [TLS_PACS]}\n";
    let cfg = tls_config(&dir.path().join("node"), true, routing, &peer);
    let server = Server::start_with_config(&dir.path().join("node"), &cfg);
    send_ok(server.port, &ct);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = server.status_json()["outbound"].clone();
        if o["sent"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outbound queue did not deliver over TLS: {o}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut want: Vec<String> = ct.iter().map(|f| sop_instance_uid(f)).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.received() != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(rx.received(), want);
    server.stop();
}

#[test]
fn validate_names_missing_and_mismatched_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let cfg = tls_config(dir.path(), true, "", "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    // A key that belongs to another certificate, and a CA file that is gone.
    let broken = text
        .replace(s(&pki.node_key), s(&pki.scu_key))
        .replace(s(&pki.ca), "/nonexistent/ca.pem");
    std::fs::write(&cfg, broken).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    assert!(
        text.contains("rtnode.yaml:"),
        "errors carry file:line: {text}"
    );

    // With the CA back, what is left is the key that does not fit.
    let fixed = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("/nonexistent/ca.pem", s(&pki.ca));
    std::fs::write(&cfg, fixed).unwrap();
    let out = Command::new(BIN)
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("do not make a certificate and its key"),
        "{text}"
    );
}

#[test]
fn doctor_echoes_a_tls_peer_and_reads_certificate_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let rx = TlsReceiver::start(&dir.path().join("rx"), &pki.peer_key, &pki.peer_crt);
    let peer = format!(
        "- {{ae_title: TLS_PACS, host: 127.0.0.1, port: {}, may_store: false, receives_results: true, tls: true}}\n",
        rx.port
    );
    let cfg = tls_config(&dir.path().join("node"), true, "", &peer);
    let out = Command::new(BIN)
        .args(["doctor", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "OK    peer          TLS_PACS@127.0.0.1:{} answers C-ECHO",
            rx.port
        )),
        "{text}"
    );
    // The test certificates are valid for 2 (leaf) and 3 (CA) days.
    let cert_line = text
        .lines()
        .find(|l| l.contains("certificate") && l.contains("node.crt"))
        .unwrap_or_else(|| panic!("no certificate line: {text}"));
    // Within a month of expiry: a warning (1 or 2 whole days left,
    // depending on the second the certificate was made in).
    assert!(
        cert_line.starts_with("WARN")
            && (cert_line.contains("expires in 1 days") || cert_line.contains("expires in 2 days")),
        "{text}"
    );
    assert!(text.contains("OK    tls_port"), "{text}");
}

#[test]
fn client_certificates_optional_still_refuses_untrusted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ct = synth(&dir.path().join("ct"), 1, 32);
    let cfg = tls_config(&dir.path().join("node"), true, "", "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "    plaintext: true\n",
        "    plaintext: true\n    require_client_certificate: false\n",
    );
    assert!(text.contains("require_client_certificate: false"));
    std::fs::write(&cfg, text).unwrap();
    let server = Server::start_with_config(&dir.path().join("node"), &cfg);
    let port = tls_port(&server);
    let pki = pki();

    // A certificate that is presented is still verified.
    let out = storescu(&tls_args(&pki.rogue_key, &pki.rogue_crt), port, &ct[0]);
    assert!(
        !out.status.success(),
        "untrusted client certificate was accepted"
    );
    assert!(stored_files(&server.data_dir).is_empty());
    // Without one, the client only verifies us.
    let out = storescu(&["+tla", "+cf", s(&pki.ca)], port, &ct[0]);
    assert!(
        out.status.success(),
        "anonymous TLS client refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_stored(&server.data_dir, 1);
    server.stop();
}
