//! The operator's actions on a course through the API, against a running
//! `rtnode serve`: hold (durable across a restart, blocking the trigger
//! until released), process-now on a course waiting for its stable age,
//! re-run with every stage run again, and the refusals (403 for a read
//! token, 404 for an unknown course, 409 with the reason), each in the
//! audit trail with the token's name; then the same actions from the
//! command line through the admin socket.

use super::common::*;
use super::{audit_events, get, http_addr, request, token_line, Resp};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A complete synthetic course of its own patient.
fn course_of_patient(dir: &Path, patient: &str) -> Vec<PathBuf> {
    let out = Command::new(BIN)
        .args(["synth", "--out"])
        .arg(dir)
        .args([
            "--slices",
            "12",
            "--rows",
            "64",
            "--rt",
            "--patient-id",
            patient,
        ])
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

fn post(addr: &str, path: &str, token: &str, body: &str) -> Resp {
    request(addr, "POST", path, Some(token), body.as_bytes())
}

fn course_of<'a>(v: &'a serde_json::Value, patient: &str) -> Option<&'a serde_json::Value> {
    v["courses"]
        .as_array()?
        .iter()
        .find(|c| c["patient_id"] == patient)
}

fn course_state(v: &serde_json::Value, patient: &str) -> (String, u64) {
    course_of(v, patient)
        .map(|c| {
            (
                c["state"].as_str().unwrap_or("").to_string(),
                c["version"].as_u64().unwrap_or(0),
            )
        })
        .unwrap_or_default()
}

#[test]
fn operator_hold_process_now_and_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let held_files = course_of_patient(&dir.path().join("x"), "HOLD1");
    let now_files = course_of_patient(&dir.path().join("y"), "NOW1");
    let (reader, reader_line) = token_line("dashboard", "read");
    let (ops, ops_line) = token_line("ops", "operator");
    let tokens = dir.path().join("tokens.yaml");
    std::fs::write(&tokens, format!("tokens:\n{reader_line}\n{ops_line}\n")).unwrap();
    // A stable age no test waits out: only process-now (or a restart,
    // which forgets arrival times) lets a course go.
    let opts = ServerOptions {
        extra_yaml: format!(
            "http:\n  address: 127.0.0.1:0\n  tokens_file: {}\n\
             pipeline:\n  stable_age_s: 3600\n  trigger: full\n",
            tokens.display()
        ),
        ..ServerOptions::default()
    };
    let s = Server::start(dir.path(), &opts);
    let addr = http_addr(&s);
    send_ok(s.port, &held_files);
    send_ok(s.port, &now_files);
    let v = wait_status(&s.data_dir, 60, "both courses waiting", |v| {
        course_state(v, "HOLD1").0 == "waiting" && course_state(v, "NOW1").0 == "waiting"
    });
    let x = course_of(&v, "HOLD1").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let y = course_of(&v, "NOW1").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Refusals: a read token may not act; an unknown course is 404.
    let r = post(&addr, &format!("/api/v1/courses/{x}/hold"), &reader, "");
    assert_eq!(r.status, 403, "{}", r.body);
    let r = post(&addr, "/api/v1/courses/NOBODY-0000/process-now", &ops, "");
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post(
        &addr,
        &format!("/api/v1/courses/{x}/hold"),
        &ops,
        "{\"why\": 1}",
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // Hold X, with a reason; a second hold, a process-now and a release of
    // a course not held are conflicts.
    let r = post(
        &addr,
        &format!("/api/v1/courses/{x}/hold"),
        &ops,
        "{\"reason\": \"plan under review\"}",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["state"], "held");
    let r = post(&addr, &format!("/api/v1/courses/{x}/hold"), &ops, "");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("already held by ops"));
    let r = post(&addr, &format!("/api/v1/courses/{x}/process-now"), &ops, "");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"].as_str().unwrap().contains("held by ops"));
    let r = post(&addr, &format!("/api/v1/courses/{y}/release"), &ops, "");
    assert_eq!(r.status, 409, "{}", r.body);
    let c = get(&addr, &format!("/api/v1/courses/{x}"), Some(&reader)).json();
    assert_eq!(c["course"]["state"], "held", "{c}");
    assert_eq!(c["course"]["operator_hold"]["by"], "ops");
    assert_eq!(c["course"]["operator_hold"]["reason"], "plan under review");
    assert!(
        c["course"]["held"].is_null(),
        "the automatic hold stays apart"
    );
    let l = get(&addr, "/api/v1/courses?state=held", Some(&reader)).json();
    assert_eq!(l["courses"][0]["operator_hold"]["by"], "ops", "{l}");

    // Process-now on Y, waiting for its stable age: v1 runs at once.
    let r = post(&addr, &format!("/api/v1/courses/{y}/process-now"), &ops, "");
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["version"], 1);
    let v = wait_status(&s.data_dir, 180, "Y v1 done", |v| {
        course_state(v, "NOW1") == ("done".into(), 1)
    });
    let v1 = course_of(&v, "NOW1").unwrap()["stage_details"].clone();
    let r = post(&addr, &format!("/api/v1/courses/{y}/process-now"), &ops, "");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("already processed as v1"));

    // Re-run Y: v2, every stage run again (nothing reused from v1); a
    // second re-run while v2 is under way is a conflict.
    let r = post(
        &addr,
        &format!("/api/v1/courses/{y}/rerun"),
        &ops,
        "{\"reason\": \"model file replaced\"}",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["version"], 2);
    let r = post(&addr, &format!("/api/v1/courses/{y}/rerun"), &ops, "");
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("v2 is running"),
        "{}",
        r.body
    );
    let v = wait_status(&s.data_dir, 180, "Y v2 done", |v| {
        course_state(v, "NOW1") == ("done".into(), 2)
    });
    let v2 = course_of(&v, "NOW1").unwrap()["stage_details"].clone();
    let ran = |d: &serde_json::Value| -> Vec<String> {
        d.as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] == "done")
            .map(|s| s["stage"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!ran(&v1).is_empty(), "{v1}");
    assert_eq!(ran(&v1), ran(&v2), "{v1} {v2}");
    for st in v2
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "done")
    {
        assert!(st["reused_from"].is_null(), "reused: {st}");
        assert_eq!(st["attempts"], 1, "{st}");
        assert!(st["duration_ms"].is_u64(), "{st}");
    }
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(s.data_dir.join(format!("courses/{y}/v2/manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["reason"], "re-run at ops's request: model file replaced",
        "{manifest}"
    );
    // X never started, held.
    assert_eq!(course_state(&s.status_json(), "HOLD1"), ("held".into(), 0));
    s.stop();

    // A restart forgets arrival times, so X would run at once were it not
    // held: the hold is durable and still blocks it.
    let s = Server::start(dir.path(), &opts);
    let addr = http_addr(&s);
    std::thread::sleep(Duration::from_secs(3));
    let v = s.status_json();
    assert_eq!(course_state(&v, "HOLD1"), ("held".into(), 0), "{v}");
    assert_eq!(
        course_of(&v, "HOLD1").unwrap()["operator_hold"]["by"],
        "ops"
    );
    let text = Command::new(BIN)
        .args(["status", "--data-dir"])
        .arg(&s.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("on hold by ops since"), "{text}");
    let r = post(&addr, &format!("/api/v1/courses/{x}/release"), &ops, "");
    assert_eq!(r.status, 202, "{}", r.body);
    wait_status(&s.data_dir, 180, "X v1 done after release", |v| {
        course_state(v, "HOLD1") == ("done".into(), 1)
    });
    let r = post(&addr, &format!("/api/v1/courses/{x}/release"), &ops, "");
    assert_eq!(r.status, 409, "{}", r.body);

    // The same actions from the command line, through the admin socket,
    // audited with the user's name.
    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&s.data_dir)
            .env("USER", "physicist")
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = cli(&["rerun", &x, "--reason", "structure set fixed"]);
    assert!(ok && text.contains("v2 made"), "{text}");
    let (ok, text) = cli(&["rerun", &x]);
    assert!(!ok && text.contains("v2 is running"), "{text}");
    let (ok, text) = cli(&["hold", "NOBODY-0000"]);
    assert!(!ok && text.contains("no course"), "{text}");

    // Every action and refusal is in the audit trail with the token's name.
    let events = audit_events(&s.data_dir);
    let by_ops = |action: &str| {
        events
            .iter()
            .filter(|e| e["action"] == action && e["user"] == "ops")
            .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    let held = by_ops("course-held");
    assert!(
        held.iter()
            .any(|o| o.contains(&x) && o.contains("held by ops")),
        "{held:?}"
    );
    assert!(
        held.iter().any(|o| o.starts_with("refused (409)")),
        "{held:?}"
    );
    assert!(by_ops("course-released")
        .iter()
        .any(|o| o.contains("released by ops")));
    assert!(by_ops("course-processed-now")
        .iter()
        .any(|o| o.contains("v1 triggered")));
    assert!(by_ops("course-processed-now")
        .iter()
        .any(|o| o.starts_with("refused (404)")));
    let reruns = by_ops("course-rerun");
    assert!(reruns.iter().any(|o| o.contains("v2 made")), "{reruns:?}");
    assert!(
        reruns.iter().any(|o| o.starts_with("refused (409)")),
        "{reruns:?}"
    );
    assert!(events
        .iter()
        .any(|e| e["action"] == "http-forbidden" && e["user"] == "dashboard"));
    assert!(events.iter().any(|e| e["action"] == "course-rerun"
        && e["user"] == "physicist"
        && e["outcome"].as_str().unwrap_or("").contains("v2 made")));
    s.stop();
}
