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
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            fsync: true,
            min_free_bytes: 1024 * 1024,
            max_associations: 16,
            extra_yaml: String::new(),
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
    std::fs::write(
        &cfg,
        format!(
            "node:\n  ae_title: RTNODE\n  bind: 127.0.0.1\n  port: 0\n  data_dir: {data}\n  peers_file: peers.yaml\n\
             network:\n  max_associations: {max}\n  idle_timeout_s: 20\n\
             storage:\n  fsync: {fsync}\n  min_free_bytes: {free}\n\
             logging:\n  level: debug\n{extra}",
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
        Server::start_with_config(dir, &cfg)
    }

    /// Starts `rtnode serve --config CFG` and waits until it listens.
    pub fn start_with_config(dir: &Path, cfg: &Path) -> Server {
        let data_dir = dir.join("data");
        let node_file = data_dir.join("node.json");
        let _ = std::fs::remove_file(&node_file);
        let log = dir.join(format!("serve-{}.log", rand_suffix()));
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(cfg)
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
    let out = Command::new(BIN)
        .args(["synth", "--out"])
        .arg(dir)
        .args(["--slices", &slices.to_string(), "--rows", &rows.to_string()])
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
