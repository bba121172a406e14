//! Prometheus metrics in the text exposition format: instances and bytes
//! received, associations and their failures by reason, stage runs and
//! durations, queue depths. Served as `GET /metrics` by the HTTP server
//! (the `http` module), at `http.address` and at `network.metrics_address`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::node::Node;

fn counter(out: &mut String, name: &str, help: &str, kind: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
    );
}

/// The whole exposition, from the node's counters and state.
pub fn render(node: &Node) -> String {
    let s = &node.stats;
    let mut out = String::new();
    counter(
        &mut out,
        "rtnode_instances_received_total",
        "Instances stored since start.",
        "counter",
        s.instances_stored.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "rtnode_bytes_received_total",
        "Data set bytes stored since start.",
        "counter",
        s.bytes_stored.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "rtnode_associations_total",
        "Associations accepted since start.",
        "counter",
        s.associations.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "rtnode_associations_active",
        "Associations open now.",
        "gauge",
        s.active_associations.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "rtnode_junk_connections_total",
        "Connections without a valid association request.",
        "counter",
        s.junk_connections.load(Ordering::Relaxed),
    );
    let _ = writeln!(out, "# HELP rtnode_failures_total Association rejections and aborts, and C-STORE refusals by status, since start.\n# TYPE rtnode_failures_total counter");
    for (reason, n) in s.failures.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let _ = writeln!(out, "rtnode_failures_total{{reason=\"{reason}\"}} {n}");
    }
    if let Some(p) = &node.pipeline {
        if let Ok(st) = p.status() {
            counter(
                &mut out,
                "rtnode_stage_runs_queued",
                "Stage runs waiting to start.",
                "gauge",
                st.queue_depth as u64,
            );
            counter(
                &mut out,
                "rtnode_stage_runs_running",
                "Stage runs in progress.",
                "gauge",
                st.running as u64,
            );
            let _ = writeln!(out, "# HELP rtnode_stage_runs_total Stage runs since the state database was made.\n# TYPE rtnode_stage_runs_total counter");
            for (stage, n) in &st.stage_runs {
                let _ = writeln!(out, "rtnode_stage_runs_total{{stage=\"{stage}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP rtnode_stage_duration_seconds Duration of the latest run of each stage, per course.\n# TYPE rtnode_stage_duration_seconds gauge");
            for c in &st.courses {
                for d in &c.stage_details {
                    if let Some(ms) = d.duration_ms {
                        let _ = writeln!(
                            out,
                            "rtnode_stage_duration_seconds{{course=\"{}\",stage=\"{}\"}} {:.3}",
                            c.id,
                            d.stage,
                            ms as f64 / 1000.0
                        );
                    }
                }
            }
        }
    }
    if let Ok(q) = crate::export::summary(&node.state) {
        let _ = writeln!(
            out,
            "# HELP rtnode_outbound Outbound queue entries by state.\n# TYPE rtnode_outbound gauge"
        );
        let _ = writeln!(out, "rtnode_outbound{{state=\"pending\"}} {}", q.pending);
        let _ = writeln!(out, "rtnode_outbound{{state=\"sent\"}} {}", q.sent);
        let _ = writeln!(out, "rtnode_outbound{{state=\"dead\"}} {}", q.dead);
    }
    if let Ok(free) = node.store.free_bytes() {
        counter(
            &mut out,
            "rtnode_free_bytes",
            "Free space on the data directory's filesystem.",
            "gauge",
            free,
        );
    }
    out
}
