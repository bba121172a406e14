//! DICOMweb against a running `rtnode serve`: dicomweb-client (the Python
//! reference client) stores a synthetic course by STOW-RS, finds it by
//! QIDO-RS and retrieves every instance by WADO-RS, compared element by
//! element with pydicom (`tests/peers/dicomweb_roundtrip.py`); the course is
//! then processed as a C-STORE one is. Refusals over raw HTTP: an unknown
//! token, the read role storing, an oversize body, hostile UIDs, and a disk
//! below the free-space watermark, with nothing written under `store/`.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// `rtnode http-token`: the token and its line for the tokens file.
fn token(name: &str, role: &str, ae_title: Option<&str>) -> (String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["http-token", "--name", name, "--role", role]);
    if let Some(ae) = ae_title {
        cmd.args(["--ae-title", ae]);
    }
    let out = cmd.output().unwrap();
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

fn http_addr(s: &Server) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.data_dir.join("node.json")).unwrap()).unwrap();
    v["http"]
        .as_str()
        .expect("node.json names the HTTP address")
        .to_string()
}

/// A STOW-RS request of `parts` (Part 10 bytes) with `token`: status and body.
fn stow(addr: &str, token: &str, body: &[u8], boundary: &str) -> (u16, String) {
    stow_to(addr, "/dicom-web/studies", token, body, boundary)
}

/// A STOW-RS request to `path`.
fn stow_to(addr: &str, path: &str, token: &str, body: &[u8], boundary: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: rtnode\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n\
         Content-Type: multipart/related; type=\"application/dicom\"; boundary={boundary}\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) before reading a large body and close.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The status and lower-cased head of the answer to a raw request.
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head)
}

fn multipart(parts: &[Vec<u8>]) -> (Vec<u8>, String) {
    let boundary = format!("b{}", rand_suffix());
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(p);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (body, boundary)
}

/// A copy of `file` with `uid` as its StudyInstanceUID (and, with
/// `sop`, as its SOPInstanceUID too, in the meta group as well).
fn with_uids(file: &Path, study: &str, sop: Option<&str>, out: &Path) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let mut obj = dicom_object::open_file(file).unwrap();
    obj.put(DataElement::new(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from(study),
    ));
    if let Some(sop) = sop {
        obj.put(DataElement::new(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(sop),
        ));
        obj.meta_mut().media_storage_sop_instance_uid = sop.to_string();
        obj.meta_mut().update_information_group_length();
    }
    obj.write_to_file(out).unwrap();
    std::fs::read(out).unwrap()
}

fn stored(data_dir: &Path) -> Vec<PathBuf> {
    stored_files(data_dir)
}

#[test]
fn stow_qido_wado_with_dicomweb_client_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth_course_of(&dir.path().join("course"), 24, 96);
    let (op, op_line) = token("pacs", "operator", Some("WEBPACS"));
    let (reader, reader_line) = token("viewer", "read", None);
    // An operator token whose AE title the peers file forbids to store.
    let (barred, barred_line) = token("barred", "operator", Some("NOT_ALLOWED"));
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("tokens:\n{op_line}\n{reader_line}\n{barred_line}\n"),
    )
    .unwrap();
    let max_body = 4 * 1024 * 1024;
    let opts = ServerOptions {
        extra_yaml: format!(
            "http:\n  address: 127.0.0.1:0\n  tokens_file: {}\n  max_body_bytes: {max_body}\n  \
             cors_origins: [\"http://viewer.test:3000\"]\n\
             pipeline:\n  stable_age_s: 1\n  trigger: full\n",
            tokens.display()
        ),
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    let addr = http_addr(&s);

    // Refusals first, while the store is empty: nothing may be written.
    let one = std::fs::read(&files[0]).unwrap();
    let (body, b) = multipart(std::slice::from_ref(&one));
    let (st, text) = stow(&addr, "not-a-token", &body, &b);
    assert_eq!(st, 401, "{text}");
    let (st, text) = stow(&addr, &reader, &body, &b);
    assert_eq!(st, 403, "{text}");
    let (st, text) = stow(&addr, &barred, &body, &b);
    assert_eq!(st, 403, "{text}");
    assert!(text.contains("may_store"), "{text}");
    let big = vec![0u8; max_body + 1024];
    let (big_body, b2) = multipart(&[big]);
    let (st, text) = stow(&addr, &op, &big_body, &b2);
    assert_eq!(st, 413, "{text}");
    let hostile = [
        with_uids(
            &files[0],
            "1.2.3/../../../evil",
            None,
            &dir.path().join("h1.dcm"),
        ),
        with_uids(
            &files[1],
            "1.2.3",
            Some("../../../../tmp/evil"),
            &dir.path().join("h2.dcm"),
        ),
    ];
    let (body, b) = multipart(&hostile);
    let (st, text) = stow(&addr, &op, &body, &b);
    assert_eq!(st, 409, "all failed: {text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let failed = v["00081198"]["Value"]
        .as_array()
        .expect("FailedSOPSequence");
    assert_eq!(failed.len(), 2, "{v}");
    for f in failed {
        // 0xC001: a UID that cannot be filed (PS3.4's C000 class).
        assert_eq!(f["00081197"]["Value"][0], 0xC001, "{f}");
    }
    assert!(v.get("00081199").is_none(), "{v}");
    // To a study the instance is not in: refused (A900), nothing kept.
    let (body, b) = multipart(std::slice::from_ref(&one));
    let (st, text) = stow_to(&addr, "/dicom-web/studies/1.2.3", &op, &body, &b);
    assert_eq!(st, 409, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["00081198"]["Value"][0]["00081197"]["Value"][0], 0xA900,
        "{v}"
    );
    assert!(
        stored(&s.data_dir).is_empty(),
        "nothing written under store/"
    );
    assert!(std::fs::read_dir(s.data_dir.join("tmp"))
        .unwrap()
        .next()
        .is_none());

    // CORS: a preflight from the configured origin (answered before
    // authentication), one from elsewhere, and a refusal the page can read.
    let pre = |origin: &str| {
        raw(
            &addr,
            &format!(
                "OPTIONS /dicom-web/studies HTTP/1.1\r\nHost: rtnode\r\nConnection: close\r\n\
                 Origin: {origin}\r\nAccess-Control-Request-Method: POST\r\n\
                 Access-Control-Request-Headers: authorization, content-type\r\n\r\n"
            ),
        )
    };
    let (st, head) = pre("http://viewer.test:3000");
    assert_eq!(st, 204, "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://viewer.test:3000"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: authorization"),
        "{head}"
    );
    let (st, head) = pre("http://elsewhere.test");
    assert_eq!(st, 403, "{head}");
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    let (st, head) = raw(
        &addr,
        "GET /dicom-web/studies HTTP/1.1\r\nHost: rtnode\r\nConnection: close\r\n\
         Origin: http://viewer.test:3000\r\n\r\n",
    );
    assert_eq!(st, 401, "{head}");
    assert!(
        head.contains("access-control-allow-origin: http://viewer.test:3000"),
        "{head}"
    );

    // The course through dicomweb-client, judged by pydicom.
    let out = Command::new(venv_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/dicomweb_roundtrip.py"))
        .arg(format!("http://{addr}/dicom-web"))
        .args([&op, &reader])
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let n = files.len() as u64;
    assert_eq!(r["referenced"], n, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["studies"], 1, "{r}");
    assert_eq!(r["studies_by_name_limit_1"], 1, "{r}");
    assert_eq!(r["found"], n, "{r}");
    assert_eq!(r["retrieved_equal"], n, "{r}");
    assert!(r["series_retrieved"].as_u64().unwrap() >= 1, "{r}");
    // The token's AE title is the calling AE the store recorded.
    assert_eq!(r["source_aes"], serde_json::json!(["WEBPACS"]), "{r}");
    assert_eq!(r["metadata_patient_id"], r["patient_id"], "{r}");
    // Half the CT went in Implicit VR Little Endian: those came back as
    // stored with transfer-syntax=*, and transcoded when Explicit VR Little
    // Endian was asked for (both compared above).
    assert_eq!(
        r["stored_syntaxes"],
        serde_json::json!(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]),
        "{r}"
    );
    assert_eq!(stored(&s.data_dir).len() as u64, n);
    // QIDO-RS matching keys, by raw request.
    let qido = |query: &str| {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        c.write_all(
            format!(
                "GET /dicom-web/studies?{query} HTTP/1.1\r\nHost: rtnode\r\n\
                 Connection: close\r\nAuthorization: Bearer {reader}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        let n = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len));
        (status, n)
    };
    let pid = r["patient_id"].as_str().unwrap();
    assert_eq!(qido(&format!("PatientID={pid}")), (200, Some(1)));
    assert_eq!(qido("PatientID=nobody"), (200, Some(0)));
    assert_eq!(qido("00100020=nobody"), (200, Some(0)));
    assert_eq!(qido("StudyDate=19000101-19000102"), (200, Some(0)));
    assert_eq!(qido("ModalitiesInStudy=RTDOSE"), (200, Some(1)));
    assert_eq!(qido("ModalitiesInStudy=MR"), (200, Some(0)));
    assert_eq!(qido("offset=1"), (200, Some(0)));
    assert_eq!(qido("Modality=CT").0, 400, "not a study-level key");
    // A page that leaves results behind says so (PS3.18's Warning 299).
    let page = |q: &str| {
        raw(
            &addr,
            &format!(
                "GET /dicom-web/studies?{q} HTTP/1.1\r\nHost: rtnode\r\nConnection: close\r\n\
                 Authorization: Bearer {reader}\r\n\r\n"
            ),
        )
    };
    let (st, head) = page("limit=0");
    assert_eq!(st, 200);
    assert!(head.contains("warning: 299"), "{head}");
    let (_, head) = page("limit=1");
    assert!(!head.contains("warning:"), "{head}");

    // Each instance stored is in the audit trail with the token's name and
    // AE title, as a C-STORE is with the association's.
    let audit: Vec<serde_json::Value> = std::fs::read_dir(s.data_dir.join("audit"))
        .unwrap()
        .flat_map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let received: Vec<_> = audit
        .iter()
        .filter(|e| e["event"] == "DICOMInstancesTransferred" && e["action"] == "received")
        .collect();
    assert_eq!(received.len() as u64, n);
    assert!(received.iter().all(|e| e["user"] == "pacs"
        && e["calling_ae"] == "WEBPACS"
        && e["patient_id"] == r["patient_id"]));

    // Processed like a C-STORE course.
    let v = wait_status(&s.data_dir, 180, "course done", |v| {
        v["courses"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["state"] == "done"))
    });
    assert_eq!(v["courses"].as_array().unwrap().len(), 1, "{v}");

    // Some stored, some failed: 202, with one sequence each.
    let (body, b) = multipart(&[one, hostile[0].clone()]);
    let (st, text) = stow(&addr, &op, &body, &b);
    assert_eq!(st, 202, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["00081199"]["Value"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert_eq!(
        v["00081198"]["Value"].as_array().map(Vec::len),
        Some(1),
        "{v}"
    );
    assert!(v["00081199"]["Value"][0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .starts_with("/dicom-web/studies/"));
    assert_eq!(stored(&s.data_dir).len() as u64, n);
    s.stop();
}

#[test]
fn stow_below_the_free_space_watermark_fails_each_instance() {
    let dir = tempfile::tempdir().unwrap();
    let files = synth(&dir.path().join("ct"), 2, 32);
    let opts = ServerOptions {
        min_free_bytes: u64::MAX / 2,
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    let addr = http_addr(&s);
    let parts: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let (body, b) = multipart(&parts);
    // No tokens file: loopback is the operator.
    let (st, text) = stow(&addr, "", &body, &b);
    assert_eq!(st, 409, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let failed = v["00081198"]["Value"]
        .as_array()
        .expect("FailedSOPSequence");
    assert_eq!(failed.len(), 2, "{v}");
    for f in failed {
        assert_eq!(f["00081197"]["Value"][0], 0xA700, "{f}");
    }
    assert!(stored(&s.data_dir).is_empty());
    s.stop();
}
