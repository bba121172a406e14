//! The node's HTTP server against a running `rtnode serve`, over TCP with a
//! plain HTTP/1.1 client written here (and Python's urllib for HTTPS):
//! health and readiness, metrics, the course API after a real course,
//! dead-letter retry through the API, tokens and roles, the body and head
//! limits, and the refusal to listen off loopback without TLS or a proxy;
//! the operator's actions on a course in `http_actions.rs`.

use crate::common;

#[path = "http_actions.rs"]
mod actions;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// One request on its own connection (`Connection: close`).
fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: rtnode\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body and close.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Resp { status, head, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("chunk size");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

/// The status line of the answer to raw request bytes.
fn raw_status_line(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(bytes);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

fn get(addr: &str, path: &str, token: Option<&str>) -> Resp {
    request(addr, "GET", path, token, b"")
}

fn node_json(s: &Server) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(s.data_dir.join("node.json")).unwrap()).unwrap()
}

fn http_addr(s: &Server) -> String {
    node_json(s)["http"]
        .as_str()
        .expect("node.json names the HTTP address")
        .to_string()
}

fn audit_events(data_dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(data_dir.join("audit")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
    }
    out
}

fn synth_course(dir: &Path) -> Vec<PathBuf> {
    synth_course_of(dir, 24, 96)
}

#[test]
fn health_metrics_and_a_sent_course_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth_course(&dir.path().join("course"));
    let opts = ServerOptions {
        extra_yaml: "pipeline:\n  stable_age_s: 1\n  trigger: full\n".into(),
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    let addr = http_addr(&s);

    let h = get(&addr, "/healthz", None);
    assert_eq!(h.status, 200, "{}", h.body);
    let r = get(&addr, "/readyz", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ready"], true);
    assert_eq!(r.json()["checks"].as_array().unwrap().len(), 5);

    send_ok(s.port, &files);
    let v = wait_status(&s.data_dir, 180, "course done", |v| {
        v["courses"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["state"] == "done"))
    });
    let id = v["courses"][0]["id"].as_str().unwrap().to_string();
    let patient = v["courses"][0]["patient_id"].as_str().unwrap().to_string();

    // Metrics: today's exposition, on http.address and on the legacy
    // network.metrics_address (which closes each connection, as before).
    let m = get(&addr, "/metrics", None);
    assert_eq!(m.status, 200);
    assert!(m.head.contains("content-type: text/plain; version=0.0.4"));
    let n = files.len();
    assert!(
        m.body
            .contains(&format!("\nrtnode_instances_received_total {n}\n")),
        "{}",
        m.body
    );
    let legacy = node_json(&s)["metrics"].as_str().unwrap().to_string();
    let mut c = TcpStream::connect(&legacy).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains(&format!("\nrtnode_instances_received_total {n}\n")));

    // The course list, its filters and paging.
    let l = get(&addr, "/api/v1/courses", None).json();
    assert_eq!(l["total"], 1, "{l}");
    assert_eq!(l["courses"][0]["id"], id.as_str());
    assert_eq!(l["courses"][0]["stages"]["dvh"], "done");
    assert_eq!(
        get(&addr, "/api/v1/courses?state=done", None).json()["total"],
        1
    );
    assert_eq!(
        get(&addr, "/api/v1/courses?state=failed", None).json()["total"],
        0
    );
    let p = get(&addr, &format!("/api/v1/courses?patient={patient}"), None).json();
    assert_eq!(p["total"], 1);
    assert_eq!(
        get(&addr, "/api/v1/courses?patient=nobody", None).json()["total"],
        0
    );
    let page = get(&addr, "/api/v1/courses?limit=0&offset=0", None).json();
    assert_eq!(
        (
            page["total"].as_u64(),
            page["courses"].as_array().map(Vec::len)
        ),
        (Some(1), Some(0))
    );
    assert_eq!(get(&addr, "/api/v1/courses?limit=x", None).status, 400);

    // One course: stages with timings, and the DVH metrics of its result
    // folder.
    let c = get(&addr, &format!("/api/v1/courses/{id}"), None);
    assert_eq!(c.status, 200, "{}", c.body);
    let c = c.json();
    let stages = c["course"]["stage_details"].as_array().unwrap();
    let dvh_stage = stages
        .iter()
        .find(|s| s["stage"] == "dvh")
        .expect("dvh stage");
    assert_eq!(dvh_stage["state"], "done");
    assert!(dvh_stage["duration_ms"].as_u64().is_some(), "{dvh_stage}");
    assert_eq!(c["versions"], serde_json::json!([1]));
    assert!(c["result_files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "dvh/dvh.json"));
    let on_disk: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.data_dir.join("courses").join(&id).join("v1/dvh/dvh.json")).unwrap(),
    )
    .unwrap();
    let rois = c["dvh"]["rois"].as_array().expect("DVH ROIs");
    assert_eq!(rois.len(), on_disk["rois"].as_array().unwrap().len());
    for (api, disk) in rois.iter().zip(on_disk["rois"].as_array().unwrap()) {
        assert_eq!(api["name"], disk["name"]);
        assert_eq!(api["metrics"], disk["metrics"]);
        assert!(api.get("dvh").is_none(), "histograms stay in the file");
    }
    assert!(rois
        .iter()
        .any(|r| r["metrics"]["Dmean"].as_f64().is_some()));
    assert!(c["qc"].is_object(), "{}", c["qc"]);
    assert_eq!(
        get(&addr, "/api/v1/courses/no-such-course", None).status,
        404
    );

    // Status, associations, peers, the OpenAPI document.
    let st = get(&addr, "/api/v1/status", None).json();
    assert_eq!(st["server_state"], "running");
    assert_eq!(st["courses"][0]["id"], id.as_str());
    let a = get(&addr, "/api/v1/associations", None).json();
    assert!(a
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["calling_ae"] == "RTNODE_SCU"));
    let peers = get(&addr, "/api/v1/peers", None).json();
    assert!(peers
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["ae_title"] == "STORESCU"));
    let doc = get(&addr, "/api/v1/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");

    // Reads of patient data are in the audit trail, with who.
    let events = audit_events(&s.data_dir);
    let read = events
        .iter()
        .find(|e| e["action"] == "course-read")
        .expect("course read audited");
    assert_eq!(read["user"], "loopback");
    assert_eq!(read["patient_id"], patient.as_str());
    assert_eq!(read["object"], format!("GET /api/v1/courses/{id}"));
    assert!(events.iter().any(|e| e["action"] == "courses-listed"));
    s.stop();
}

#[test]
fn readyz_is_503_below_the_free_space_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ServerOptions {
        min_free_bytes: u64::MAX / 2,
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    let addr = http_addr(&s);
    assert_eq!(get(&addr, "/healthz", None).status, 200);
    let r = get(&addr, "/readyz", None);
    assert_eq!(r.status, 503, "{}", r.body);
    let v = r.json();
    assert_eq!(v["ready"], false);
    assert_eq!(v["failing"], serde_json::json!(["free_space"]));
    let free = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "free_space")
        .unwrap();
    assert!(
        free["detail"]
            .as_str()
            .unwrap()
            .contains("below the low-watermark"),
        "{free}"
    );
    s.stop();
}

fn token_line(name: &str, role: &str) -> (String, String) {
    let out = Command::new(BIN)
        .args(["http-token", "--name", name, "--role", role])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .expect("the token")
        .to_string();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("- {name:"))
        .expect("the line for the tokens file")
        .to_string();
    (token, line)
}

#[test]
fn tokens_roles_body_limit_and_dead_letter_retry() {
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
    let (reader, reader_line) = token_line("dashboard", "read");
    let (operator, operator_line) = token_line("ops", "operator");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("tokens:\n{reader_line}\n{operator_line}\n"),
    )
    .unwrap();
    let opts = ServerOptions {
        extra_yaml: format!(
            "http:\n  address: 127.0.0.1:0\n  tokens_file: {}\n  max_body_bytes: 1024\n\
             export:\n  retry_base_s: 1\n  retry_max_s: 2\n  max_attempts: 20\n\
             routing:\n- {{name: all, to: [PACS_OUT]}}\n",
            tokens.display()
        ),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir.path(), &opts);
    std::fs::write(
        dir.path().join("peers.yaml"),
        format!(
            "peers:\n- {{ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: PACS_OUT, host: 127.0.0.1, port: {port}, may_store: false}}\n"
        ),
    )
    .unwrap();
    let s = Server::start_with_config(dir.path(), &cfg);
    let addr = http_addr(&s);

    // Request heads are bounded: size and number of headers.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(
        raw_status_line(&addr, big.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let many: String = (0..80).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    assert_eq!(
        raw_status_line(&addr, many.as_bytes()),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // No cookies, ever.
    assert!(!get(&addr, "/healthz", None).head.contains("set-cookie"));

    // Health needs no token; everything else does.
    assert_eq!(get(&addr, "/healthz", None).status, 200);
    assert_eq!(get(&addr, "/readyz", None).status, 200);
    let none = get(&addr, "/api/v1/courses", None);
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(
        none.head.contains("www-authenticate: bearer"),
        "{}",
        none.head
    );
    assert_eq!(get(&addr, "/metrics", None).status, 401);
    let unknown = get(&addr, "/api/v1/outbound", Some("rtn_0123456789abcdef"));
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.json()["error"], "unknown token");
    assert_eq!(get(&addr, "/metrics", Some(&reader)).status, 200);
    assert!(!reader.is_empty() && reader != operator);

    send_ok(s.port, &ct);
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let o = get(&addr, "/api/v1/outbound?state=dead", Some(&reader));
        assert_eq!(o.status, 200, "{}", o.body);
        let o = o.json();
        if o["dead"] == 1 {
            break o;
        }
        assert!(Instant::now() < deadline, "no dead letter: {o}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let item = &dead["items"][0];
    assert_eq!(item["state"], "dead");
    assert_eq!(item["destination"], "PACS_OUT");
    assert!(
        item["last_error"].as_str().unwrap().starts_with("A900"),
        "{item}"
    );
    let id = item["id"].as_u64().unwrap();

    // A read token may not act; an oversize body is refused before it is
    // read; the operator's retry requeues the dead letter.
    let body = format!("{{\"ids\": [{id}]}}");
    let forbidden = request(
        &addr,
        "POST",
        "/api/v1/outbound/retry",
        Some(&reader),
        body.as_bytes(),
    );
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    let big = format!("{{\"ids\": [{id}], \"pad\": \"{}\"}}", "x".repeat(4096));
    let too_big = request(
        &addr,
        "POST",
        "/api/v1/outbound/retry",
        Some(&operator),
        big.as_bytes(),
    );
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    assert_eq!(
        get(&addr, "/api/v1/outbound?state=dead", Some(&reader)).json()["dead"],
        1,
        "nothing was requeued by the refused requests"
    );
    let ok = request(
        &addr,
        "POST",
        "/api/v1/outbound/retry",
        Some(&operator),
        body.as_bytes(),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["requeued"], 1);
    // It goes out again and is refused again by the receiver.
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.log_text().matches("dead letter").count() < 2 {
        assert!(Instant::now() < deadline, "{}", s.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let data_dir = s.data_dir.clone();
    s.stop();
    let _ = scp.kill();
    let out = scp.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("-> A900")
            .count(),
        2,
        "sent twice: before and after the retry"
    );

    let events = audit_events(&data_dir);
    let retried = events
        .iter()
        .find(|e| e["action"] == "dead-letters-retried")
        .expect("the retry is audited");
    assert_eq!(retried["user"], "ops");
    let forbidden = events
        .iter()
        .find(|e| e["action"] == "http-forbidden")
        .expect("the refused action is audited");
    assert_eq!(forbidden["user"], "dashboard");
    assert!(events
        .iter()
        .any(|e| e["action"] == "http-unauthenticated" && e["outcome"] == "unknown token"));
    assert!(events
        .iter()
        .any(|e| e["action"] == "outbound-listed" && e["user"] == "dashboard"));
}

/// `serve` with `extra` in the config and `args`; its exit and stderr.
fn serve_refused(dir: &Path, extra: &str, args: &[&str]) -> String {
    let opts = ServerOptions {
        extra_yaml: extra.into(),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir, &opts);
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&cfg)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started off loopback without TLS or behind_proxy");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn off_loopback_needs_tls_or_a_proxy_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    // --http over a loopback config.
    let err = serve_refused(dir.path(), "", &["--http", "0.0.0.0:0"]);
    assert!(
        err.contains("--http: http.address: 0.0.0.0:0 is not a loopback address")
            && err.contains("http.tls")
            && err.contains("behind_proxy"),
        "{err}"
    );
    // In the config: every problem, with file and line.
    let err = serve_refused(dir.path(), "http:\n  address: 0.0.0.0:0\n", &[]);
    let cfg = dir.path().join("rtnode.yaml").display().to_string();
    assert!(err.contains(&format!("{cfg}:")), "{err}");
    assert!(
        err.contains("http.address: 0.0.0.0:0 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("http.tokens_file:"), "{err}");
    // Behind a proxy, tokens are still required.
    let err = serve_refused(
        dir.path(),
        "http:\n  address: 0.0.0.0:0\n  behind_proxy: true\n",
        &[],
    );
    assert!(err.contains("bearer tokens are required"), "{err}");
    assert!(!err.contains("http.address"), "{err}");

    // With TLS and tokens it listens on every interface, and answers HTTPS.
    let (token, line) = token_line("monitor", "read");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("tokens:\n{line}\n")).unwrap();
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
        ])
        .arg(dir.path().join("http.key"))
        .arg("-out")
        .arg(dir.path().join("http.crt"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opts = ServerOptions {
        extra_yaml: format!(
            "http:\n  address: 0.0.0.0:0\n  tokens_file: {}\n  tls:\n    certificate: http.crt\n    private_key: http.key\n",
            tokens.display()
        ),
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    let addr = http_addr(&s);
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    let port = addr.rsplit(':').next().unwrap();
    let script = format!(
        "import ssl, urllib.request, sys\n\
         ctx = ssl.create_default_context(cafile={ca:?})\n\
         req = urllib.request.Request('https://127.0.0.1:{port}/api/v1/peers', headers={{'Authorization': 'Bearer {token}'}})\n\
         print(urllib.request.urlopen(req, context=ctx).status)\n\
         try:\n    urllib.request.urlopen('https://127.0.0.1:{port}/api/v1/peers', context=ctx)\n\
         except urllib.error.HTTPError as e:\n    print(e.code)\n",
        ca = dir.path().join("http.crt").display().to_string(),
    );
    let out = Command::new(venv_python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["200", "401"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain HTTP to the HTTPS port gets no answer.
    let mut c = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("alive"));
    s.stop();
}
