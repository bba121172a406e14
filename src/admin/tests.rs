//! The admin socket end to end: a node's server on a real socket, asked by
//! the client and by hand-made frames.

use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::protocol::{self, Response, MAX_RESPONSE_BYTES};
use crate::config::Config;
use crate::export::{Exporter, OutboundItem, OutboundState};
use crate::node::Node;
use crate::peers::PeersFile;
use crate::state::StateDb;
use crate::store::{Store, StoreOptions};

/// A node with an outbound queue holding `dead` dead letters, serving its
/// admin socket; the ids of the dead letters.
async fn node_with_dead_letters(dir: &Path, dead: usize) -> (Arc<Node>, Vec<u64>) {
    let store = Store::open(StoreOptions {
        data_dir: dir.to_path_buf(),
        fsync: false,
        min_free_bytes: 0,
        index_cache_bytes: 1 << 20,
    })
    .unwrap();
    let state = Arc::new(StateDb::open(dir).unwrap());
    let items: Vec<OutboundItem> = (0..dead)
        .map(|i| OutboundItem {
            sop_instance_uid: format!("1.2.826.0.1.3680043.10.1.{i}"),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            path: dir.join(format!("{i}.dcm")),
            destination: "PACS_OUT".into(),
            reason: "route:all".into(),
            state: OutboundState::Dead,
            attempts: 3,
            not_before_ms: 0,
            created_at: crate::time::now_rfc3339(),
            sent_at: None,
            last_status: Some(crate::dicom::status::DimseStatus::DATA_SET_DOES_NOT_MATCH),
            last_error: Some("refused".into()),
            patient_id: String::new(),
            study_instance_uid: String::new(),
        })
        .collect();
    let ids = state.enqueue_outbound(&items).unwrap();
    let cfg = Config::default();
    let audit = Arc::new(crate::audit::AuditLog::open(dir).unwrap());
    let exporter = Exporter::open(
        state.clone(),
        cfg.export.clone(),
        "RTNODE",
        Arc::new(PeersFile::default()),
        &[],
        None,
    )
    .unwrap();
    let node = Arc::new(
        Node::new(
            "RTNODE".into(),
            cfg.network.clone(),
            PeersFile::default(),
            Arc::new(store),
            state,
            audit,
        )
        .with_exporter(exporter),
    );
    let listener = super::server::bind(dir).unwrap();
    tokio::spawn(super::server::serve(
        listener,
        node.clone(),
        "127.0.0.1:0".into(),
    ));
    (node, ids)
}

fn states(state: &StateDb) -> Vec<(u64, OutboundState)> {
    state
        .outbound::<OutboundItem>()
        .unwrap()
        .into_iter()
        .map(|(id, item)| (id, item.state))
        .collect()
}

/// Sends raw bytes, closes the writing half, and reads the response frame.
async fn raw_exchange(dir: &Path, bytes: &[u8]) -> Response {
    let mut s = tokio::net::UnixStream::connect(super::socket_path(dir))
        .await
        .unwrap();
    s.write_all(bytes).await.unwrap();
    s.shutdown().await.unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).await.unwrap();
    protocol::read_frame(&mut &reply[..], MAX_RESPONSE_BYTES).unwrap()
}

#[test]
fn a_retry_of_200_ids_requeues_exactly_those() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (node, ids) = node_with_dead_letters(dir.path(), 300).await;
        let asked: Vec<u64> = ids[50..250].to_vec();
        let data_dir = dir.path().to_path_buf();
        let sent = asked.clone();
        let n = tokio::task::spawn_blocking(move || super::client::retry(&data_dir, &sent))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 200);
        for (id, state) in states(&node.state) {
            let want = if asked.contains(&id) {
                OutboundState::Pending
            } else {
                OutboundState::Dead
            };
            assert_eq!(state, want, "dead letter #{id}");
        }
    });
}

/// A tracing writer into a shared buffer, to see the server's log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn cut_oversize_and_unknown_frames_get_an_error_and_a_log_line_and_do_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    // A runtime on this thread only, so the server's tasks log here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let (node, ids) = node_with_dead_letters(dir.path(), 20).await;
            let before = states(&node.state);
            let whole = protocol::encode(&serde_json::json!({
                "version": 1, "request": "retry", "ids": ids
            }))
            .unwrap();
            // Cut in the length, and in the body (a shorter id list would
            // still parse if the server guessed).
            for cut in [2, whole.len() - 5] {
                let r = raw_exchange(dir.path(), &whole[..cut]).await;
                assert!(
                    matches!(&r, Response::Error { error } if error.contains("cut short")),
                    "cut at {cut}: {r:?}"
                );
            }
            let r = raw_exchange(dir.path(), &u32::MAX.to_be_bytes()).await;
            assert!(
                matches!(&r, Response::Error { error } if error.contains("over the bound")),
                "{r:?}"
            );
            let unknown =
                protocol::encode(&serde_json::json!({"version": 1, "request": "retry_all"}))
                    .unwrap();
            let r = raw_exchange(dir.path(), &unknown).await;
            assert!(
                matches!(&r, Response::Error { error } if error.contains("unknown or malformed")),
                "{r:?}"
            );
            assert_eq!(states(&node.state), before, "nothing requeued");
        });
    });
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        text.matches("admin request refused").count(),
        4,
        "log:\n{text}"
    );
}

#[test]
fn status_over_the_socket_is_the_live_report() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (_node, _) = node_with_dead_letters(dir.path(), 3).await;
        let data_dir = dir.path().to_path_buf();
        let r = tokio::task::spawn_blocking(move || super::client::status(&data_dir))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.server_state, "running");
        assert_eq!(r.outbound.dead, 3);
        assert_eq!(r.server.unwrap().ae_title, "RTNODE");
    });
}
