//! Prometheus metrics in the text exposition format over a minimal HTTP
//! server: `GET /metrics`. Instances and bytes received, associations and
//! their failures by reason, stage runs and durations, queue depths.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::scp::Node;

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

/// Binds the metrics address; the bound address (for port 0) is returned.
pub async fn serve(node: Arc<Node>, addr: SocketAddr) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let node = node.clone();
            tokio::spawn(async move {
                let mut req = vec![0u8; 2048];
                let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut req))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let line = String::from_utf8_lossy(&req[..n]);
                let ok = line.starts_with("GET /metrics ") || line.starts_with("GET / ");
                let reply = if ok {
                    let body = {
                        let node = node.clone();
                        tokio::task::spawn_blocking(move || render(&node))
                            .await
                            .unwrap_or_default()
                    };
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                if let Err(e) =
                    tokio::time::timeout(Duration::from_secs(5), stream.write_all(reply.as_bytes()))
                        .await
                {
                    debug!(error = %e, "metrics client too slow");
                }
            });
        }
    });
    Ok(bound)
}

/// Starts metrics when configured; a port already taken is a warning, not
/// a reason to refuse DICOM.
pub async fn start(node: Arc<Node>, address: &str) -> Option<SocketAddr> {
    let address = address.trim();
    if address.is_empty() {
        return None;
    }
    let addr: SocketAddr = match address.parse() {
        Ok(a) => a,
        Err(e) => {
            warn!(address, error = %e, "bad metrics address; metrics off");
            return None;
        }
    };
    match serve(node, addr).await {
        Ok(a) => Some(a),
        Err(e) => {
            warn!(error = format!("{e:#}"), "metrics off");
            None
        }
    }
}
