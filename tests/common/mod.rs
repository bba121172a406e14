//! Shared by the integration tests: start `rtnode serve` as a real process on
//! a free loopback port, find dcmtk, synthesise data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rtnode");

/// dcmtk is a hard requirement of the interoperability tests: `.ci/run`
/// installs it, and a missing tool must fail the test, not skip it.
pub fn dcmtk(tool: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} not found: install dcmtk (apt-get install -y dcmtk)");
}

pub struct Server {
    pub child: Child,
    pub data_dir: PathBuf,
    pub port: u16,
    pub ae_title: String,
    pub log: PathBuf,
}

pub struct ServerOptions {
    pub fsync: bool,
    pub min_free_bytes: u64,
    pub max_associations: u32,
    pub extra_yaml: String,
    /// Environment of the server process (e.g. RTNODE_FAULTS).
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            fsync: true,
            min_free_bytes: 1024 * 1024,
            max_associations: 16,
            extra_yaml: String::new(),
            env: Vec::new(),
        }
    }
}

/// Writes a config and a peers file for a test node under `dir`.
pub fn write_config(dir: &Path, opts: &ServerOptions) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let peers = dir.join("peers.yaml");
    std::fs::write(
        &peers,
        "peers:\n\
         - {ae_title: STORESCU, host: 127.0.0.1, port: 104}\n\
         - {ae_title: ECHOSCU, host: 127.0.0.1, port: 104}\n\
         - {ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}\n\
         - {ae_title: NOT_ALLOWED, host: 127.0.0.1, port: 104, may_store: false}\n",
    )
    .unwrap();
    let cfg = dir.join("rtnode.yaml");
    // The HTTP server on a free port, unless the test configures it.
    let http = if opts.extra_yaml.starts_with("http:") || opts.extra_yaml.contains("\nhttp:") {
        ""
    } else {
        "http:\n  address: 127.0.0.1:0\n"
    };
    std::fs::write(
        &cfg,
        format!(
            "node:\n  ae_title: RTNODE\n  bind: 127.0.0.1\n  port: 0\n  data_dir: {data}\n  peers_file: peers.yaml\n\
             network:\n  max_associations: {max}\n  idle_timeout_s: 20\n  metrics_address: 127.0.0.1:0\n\
             storage:\n  fsync: {fsync}\n  min_free_bytes: {free}\n\
             logging:\n  level: debug\n{http}{extra}",
            data = dir.join("data").display(),
            max = opts.max_associations,
            fsync = opts.fsync,
            free = opts.min_free_bytes,
            extra = opts.extra_yaml,
        ),
    )
    .unwrap();
    cfg
}

impl Server {
    pub fn start(dir: &Path, opts: &ServerOptions) -> Server {
        let cfg = write_config(dir, opts);
        Server::start_with_config_env(dir, &cfg, &opts.env)
    }

    /// Starts `rtnode serve --config CFG` and waits until it listens.
    pub fn start_with_config(dir: &Path, cfg: &Path) -> Server {
        Server::start_with_config_env(dir, cfg, &[])
    }

    pub fn start_with_config_env(dir: &Path, cfg: &Path, env: &[(String, String)]) -> Server {
        let data_dir = dir.join("data");
        let node_file = data_dir.join("node.json");
        let _ = std::fs::remove_file(&node_file);
        let log = dir.join(format!("serve-{}.log", rand_suffix()));
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(cfg)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn rtnode serve");
        let mut child = child;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "server exited with {status} before listening: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if let Ok(text) = std::fs::read_to_string(&node_file) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    let port = v["port"].as_u64().unwrap() as u16;
                    return Server {
                        child,
                        data_dir,
                        port,
                        ae_title: "RTNODE".into(),
                        log,
                    };
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait: the clean shutdown path.
    pub fn stop(mut self) {
        unsafe_kill(self.child.id(), 15);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the crash path.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn status_json(&self) -> serde_json::Value {
        status_json(&self.data_dir)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn status_json(data_dir: &Path) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["status", "--json", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

pub fn rand_suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// A synthetic CT series written by `rtnode synth`.
pub fn synth(dir: &Path, slices: u32, rows: u16) -> Vec<PathBuf> {
    synth_with(dir, slices, rows, &[])
}

/// A synthetic complete course (CT, RTSTRUCT, RTPLAN, RTDOSE): `rtnode synth --rt`.
pub fn synth_course_of(dir: &Path, slices: u32, rows: u16) -> Vec<PathBuf> {
    synth_with(dir, slices, rows, &["--rt"])
}

fn synth_with(dir: &Path, slices: u32, rows: u16, extra: &[&str]) -> Vec<PathBuf> {
    let out = Command::new(BIN)
        .args(["synth", "--out"])
        .arg(dir)
        .args(["--slices", &slices.to_string(), "--rows", &rows.to_string()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    files
}

/// Runs a dcmtk tool with TCP_NODELAY (dcmtk's Nagle default would throttle
/// loopback transfers) and returns its output.
pub fn run_dcmtk(tool: &str, args: &[&str]) -> Output {
    Command::new(dcmtk(tool))
        .env("TCP_NODELAY", "1")
        .args(args)
        .output()
        .unwrap()
}

/// Every `.dcm` under the store directory.
pub fn stored_files(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
    }
    walk(&data_dir.join("store"), &mut out);
    out.sort();
    out
}

/// Resident memory of a process, in kB.
pub fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Writes a minimal RT Structure Set that references the CT series of
/// `ct_files` (as a planning system would): one ROI "BODY" with a square
/// contour on every slice. `patient_id` overrides the CT's PatientID.
pub fn write_rtstruct(path: &Path, ct_files: &[PathBuf], sop_uid: &str, patient_id: Option<&str>) {
    use dicom_core::value::DataSetSequence;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::{meta::FileMetaTableBuilder, InMemDicomObject};
    let ct = dicom_object::open_file(&ct_files[0]).unwrap();
    let get = |t| {
        ct.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    };
    let mut obj = InMemDicomObject::new_empty();
    let put = |o: &mut InMemDicomObject, t, vr, v: &str| {
        o.put(DataElement::new(t, vr, PrimitiveValue::from(v)));
    };
    put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        rtnode::dicom::uids::RT_STRUCTURE_SET_STORAGE,
    );
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
    put(
        &mut obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &get(tags::STUDY_INSTANCE_UID),
    );
    put(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &format!("{sop_uid}.1"),
    );
    put(&mut obj, tags::MODALITY, VR::CS, "RTSTRUCT");
    put(
        &mut obj,
        tags::PATIENT_NAME,
        VR::PN,
        &get(tags::PATIENT_NAME),
    );
    put(
        &mut obj,
        tags::PATIENT_ID,
        VR::LO,
        patient_id.unwrap_or(&get(tags::PATIENT_ID)),
    );
    put(
        &mut obj,
        tags::PATIENT_BIRTH_DATE,
        VR::DA,
        &get(tags::PATIENT_BIRTH_DATE),
    );
    put(&mut obj, tags::STRUCTURE_SET_LABEL, VR::SH, "TEST");
    let series_uid = get(tags::SERIES_INSTANCE_UID);
    let for_uid = get(tags::FRAME_OF_REFERENCE_UID);
    let mut images = Vec::new();
    let mut contours = Vec::new();
    for f in ct_files {
        let o = dicom_object::open_file(f).unwrap();
        let uid = o
            .element(tags::SOP_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string();
        let z = o
            .element(tags::IMAGE_POSITION_PATIENT)
            .unwrap()
            .to_multi_float64()
            .unwrap()[2];
        let mut img = InMemDicomObject::new_empty();
        put(
            &mut img,
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            rtnode::dicom::uids::CT_IMAGE_STORAGE,
        );
        put(&mut img, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &uid);
        images.push(img.clone());
        let mut c = InMemDicomObject::new_empty();
        c.put(DataElement::new(
            tags::CONTOUR_IMAGE_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![img]),
        ));
        put(
            &mut c,
            tags::CONTOUR_GEOMETRIC_TYPE,
            VR::CS,
            "CLOSED_PLANAR",
        );
        put(&mut c, tags::NUMBER_OF_CONTOUR_POINTS, VR::IS, "4");
        let pts = [-50.0, -50.0, 50.0, -50.0, 50.0, 50.0, -50.0, 50.0];
        let data: Vec<f64> = pts.chunks(2).flat_map(|p| [p[0], p[1], z]).collect();
        c.put(DataElement::new(
            tags::CONTOUR_DATA,
            VR::DS,
            PrimitiveValue::from(
                data.iter()
                    .map(|v| format!("{v}"))
                    .collect::<Vec<_>>()
                    .join("\\"),
            ),
        ));
        contours.push(c);
    }
    let mut series = InMemDicomObject::new_empty();
    put(&mut series, tags::SERIES_INSTANCE_UID, VR::UI, &series_uid);
    series.put(DataElement::new(
        tags::CONTOUR_IMAGE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(images),
    ));
    let mut study = InMemDicomObject::new_empty();
    put(
        &mut study,
        tags::REFERENCED_SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.3.1.2.3.1",
    );
    put(
        &mut study,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        &get(tags::STUDY_INSTANCE_UID),
    );
    study.put(DataElement::new(
        tags::RT_REFERENCED_SERIES_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![series]),
    ));
    let mut frame = InMemDicomObject::new_empty();
    put(&mut frame, tags::FRAME_OF_REFERENCE_UID, VR::UI, &for_uid);
    frame.put(DataElement::new(
        tags::RT_REFERENCED_STUDY_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![study]),
    ));
    obj.put(DataElement::new(
        tags::REFERENCED_FRAME_OF_REFERENCE_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![frame]),
    ));
    let mut roi = InMemDicomObject::new_empty();
    put(&mut roi, tags::ROI_NUMBER, VR::IS, "1");
    put(
        &mut roi,
        tags::REFERENCED_FRAME_OF_REFERENCE_UID,
        VR::UI,
        &for_uid,
    );
    put(&mut roi, tags::ROI_NAME, VR::LO, "BODY");
    obj.put(DataElement::new(
        tags::STRUCTURE_SET_ROI_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![roi]),
    ));
    let mut rc = InMemDicomObject::new_empty();
    put(&mut rc, tags::REFERENCED_ROI_NUMBER, VR::IS, "1");
    rc.put(DataElement::new(
        tags::CONTOUR_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(contours),
    ));
    obj.put(DataElement::new(
        tags::ROI_CONTOUR_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(vec![rc]),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(rtnode::dicom::uids::RT_STRUCTURE_SET_STORAGE)
                .media_storage_sop_instance_uid(sop_uid)
                .transfer_syntax(rtnode::dicom::uids::EXPLICIT_VR_LE),
        )
        .unwrap();
    file.write_to_file(path).unwrap();
}

/// `rtnode send` of files to a test server; panics unless all succeed.
pub fn send_ok(port: u16, files: &[PathBuf]) {
    let out = Command::new(BIN)
        .args(["send", "--to", &format!("RTNODE@127.0.0.1:{port}")])
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Polls `rtnode status --json` until `pred` holds (or panics after `secs`).
pub fn wait_status(
    data_dir: &Path,
    secs: u64,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = status_json(data_dir);
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            serde_json::to_string_pretty(&v["courses"]).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Python of the repo's test venv (tests/setup.sh makes it), with
/// pynetdicom and pydicom. Missing is a failure, not a skip.
pub fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(p.exists(), "{} missing: run tests/setup.sh", p.display());
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}
