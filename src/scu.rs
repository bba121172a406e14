//! `rtnode send`: a C-STORE SCU over files and folders. Each file is offered
//! in its own transfer syntax and streamed from disk as is, so what arrives
//! is byte for byte the data set we hold.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dicom_ul::pdu::{
    AssociationRQ, Pdu, PresentationContextProposed, PresentationContextResultReason,
    UserVariableItem,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::dicom::status::DimseStatus;
use crate::dicom::uids;
use crate::dimse;
pub use crate::import::collect_files;
use crate::import::{prepare, Body, Item};
use crate::ul::{self, pdu_type};

/// Where to send: a remote SCP's AE title and network address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The remote AE title, sent as Called AE Title in the A-ASSOCIATE-RQ.
    pub called_ae: String,
    /// Host name or IP address of the remote SCP.
    pub host: String,
    /// TCP port of the remote SCP.
    pub port: u16,
    /// TLS towards this peer; `None`: plain TCP.
    pub tls: Option<crate::tls::ClientTls>,
}

impl Target {
    /// A peer of the peers file, over TLS when it is marked `tls: true`
    /// (with the node's certificate from `network.tls` as ours).
    pub fn for_peer(
        peer: &crate::peers::Peer,
        node_tls: Option<&crate::tls::TlsSection>,
    ) -> Result<Target, String> {
        Ok(Target {
            called_ae: peer.ae_title.trim().to_string(),
            host: peer.host.clone(),
            port: peer.port,
            tls: peer.client_tls(node_tls)?,
        })
    }
}

/// TLS for `rtnode send --to`: when the receiver's AE title is a `tls: true`
/// peer of the node's peers file (its CA and server name apply, the
/// address is the one given), or when `force`d; the client certificate is
/// the node's (`network.tls`). `node` is that section (if the config has
/// one) and the peers file, when a config was given.
pub fn tls_for_send(
    to: &Target,
    node: Option<(Option<&crate::tls::TlsSection>, &crate::peers::PeersFile)>,
    force: bool,
) -> Result<Option<crate::tls::ClientTls>, String> {
    let Some((node_tls, peers)) = node else {
        return if force {
            Err("--tls needs --config: network.tls names our certificate and the CA".into())
        } else {
            Ok(None)
        };
    };
    match peers.find(&to.called_ae).filter(|p| p.tls) {
        Some(p) => crate::tls::client_config(
            node_tls,
            p.tls_ca.as_deref(),
            &to.host,
            p.tls_server_name.as_deref(),
        )
        .map(Some),
        None if force => crate::tls::client_config(node_tls, None, &to.host, None).map(Some),
        None => Ok(None),
    }
}

type Conn = BufReader<crate::tls::Connection>;

/// TCP, then TLS when the target asks for it; each step bounded.
async fn connect(target: &Target, buffer: usize) -> Result<Conn> {
    let stream = tokio::time::timeout(
        Duration::from_secs(30),
        TcpStream::connect((target.host.as_str(), target.port)),
    )
    .await
    .context("connect timed out")?
    .with_context(|| format!("connecting to {}:{}", target.host, target.port))?;
    stream.set_nodelay(true)?;
    let stream: crate::tls::Connection = match &target.tls {
        None => Box::new(stream),
        Some(tls) => crate::tls::connect(tls, stream, Duration::from_secs(30))
            .await
            .with_context(|| format!("TLS to {}:{}", target.host, target.port))?,
    };
    Ok(BufReader::with_capacity(buffer, stream))
}

impl std::str::FromStr for Target {
    type Err = String;
    /// `AE@HOST:PORT`
    fn from_str(s: &str) -> Result<Self, String> {
        let (ae, rest) = s.split_once('@').ok_or("expected AE@HOST:PORT")?;
        let (host, port) = rest.rsplit_once(':').ok_or("expected AE@HOST:PORT")?;
        crate::peers::check_ae_title(ae)?;
        let port: u16 = port.parse().map_err(|_| format!("bad port {port:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err("expected AE@HOST:PORT".into());
        }
        Ok(Target {
            called_ae: ae.to_string(),
            host: host.to_string(),
            port,
            tls: None,
        })
    }
}

/// What happened to one file sent by C-STORE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The file that was sent.
    pub path: PathBuf,
    /// SOPInstanceUID of the instance in it (empty if it could not be read).
    pub sop_instance_uid: String,
    /// The C-STORE-RSP status; None when no response came (association failed, file unreadable).
    pub status: Option<DimseStatus>,
    /// Why the file was not sent or not stored, for a person to read; None on success.
    pub error: Option<String>,
    /// For a failure without a DIMSE status: whether trying again later can
    /// help (peer down, transient rejection) or not (permanent rejection, no
    /// acceptable presentation context).
    pub transient: bool,
}

impl Outcome {
    /// True when the peer stored the instance: Success or a Warning (B-range) status.
    pub fn ok(&self) -> bool {
        // B-range statuses are warnings: stored.
        self.status.is_some_and(DimseStatus::stored)
    }
}

/// Sends every file, as few associations as the 128-context limit allows.
pub async fn send(
    target: &Target,
    calling_ae: &str,
    files: &[PathBuf],
    max_pdu: u32,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(files.len());
    let mut items = Vec::new();
    for f in files {
        match prepare(f) {
            Ok(i) => items.push(i),
            Err(e) => outcomes.push(Outcome {
                path: f.clone(),
                sop_instance_uid: String::new(),
                status: None,
                error: Some(e),
                transient: false,
            }),
        }
    }
    outcomes.extend(send_items(target, calling_ae, &items, max_pdu, false).await);
    outcomes
}

/// Sends prepared items. With `fallback_implicit`, each SOP class is also
/// proposed in implicit VR little endian (the one syntax every SCP must
/// accept), and a data set the peer refuses in its stored syntax is
/// re-encoded, when it is not compressed.
pub async fn send_items(
    target: &Target,
    calling_ae: &str,
    items: &[Item],
    max_pdu: u32,
    fallback_implicit: bool,
) -> Vec<Outcome> {
    let mut outcomes = Vec::with_capacity(items.len());
    // Chunk so that no association needs more than 127 contexts (63 with
    // the fallback, which doubles them).
    let limit = if fallback_implicit { 63 } else { 127 };
    let mut start = 0;
    while start < items.len() {
        let mut pairs = std::collections::HashSet::new();
        let mut end = start;
        while end < items.len() {
            let key = (items[end].sop_class.clone(), items[end].ts.clone());
            if !pairs.contains(&key) && pairs.len() == limit {
                break;
            }
            pairs.insert(key);
            end += 1;
        }
        let chunk = &items[start..end];
        match send_association(target, calling_ae, chunk, max_pdu, fallback_implicit).await {
            Ok(mut o) => outcomes.append(&mut o),
            Err(e) => {
                let permanent = e.chain().any(|c| c.is::<Permanent>());
                outcomes.extend(chunk.iter().map(|i| Outcome {
                    path: i.path.clone(),
                    sop_instance_uid: i.sop_instance.clone(),
                    status: None,
                    error: Some(format!("{e:#}")),
                    transient: !permanent,
                }))
            }
        }
        start = end;
    }
    outcomes
}

/// A failure that retrying cannot fix.
#[derive(Debug)]
struct Permanent(String);

impl std::fmt::Display for Permanent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Permanent {}

fn is_uncompressed(ts: &str) -> bool {
    matches!(
        ts,
        uids::IMPLICIT_VR_LE
            | uids::EXPLICIT_VR_LE
            | uids::EXPLICIT_VR_BE
            | uids::DEFLATED_EXPLICIT_VR_LE
    )
}

/// Why a file could not be re-encoded for a peer that takes implicit VR
/// little endian only.
#[derive(Debug, thiserror::Error)]
enum ReencodeError {
    #[error("cannot re-encode: {0}")]
    Read(Box<dicom_object::ReadError>),
    #[error("implicit VR little endian not registered")]
    NoImplicitVr,
    #[error("cannot re-encode: {0}")]
    Write(Box<dicom_object::WriteError>),
}

/// The data set re-encoded in implicit VR little endian.
fn to_implicit(item: &Item) -> Result<Item, ReencodeError> {
    use dicom_encoding::TransferSyntaxIndex;
    let obj = dicom_object::OpenFileOptions::new()
        .open_file(&item.path)
        .map_err(|e| ReencodeError::Read(Box::new(e)))?;
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(uids::IMPLICIT_VR_LE)
        .ok_or(ReencodeError::NoImplicitVr)?;
    let mut bytes = Vec::new();
    obj.write_dataset_with_ts(&mut bytes, ts)
        .map_err(|e| ReencodeError::Write(Box::new(e)))?;
    Ok(Item {
        ts: uids::IMPLICIT_VR_LE.to_string(),
        body: Body::Memory(bytes),
        ..item.clone()
    })
}

async fn send_association(
    target: &Target,
    calling_ae: &str,
    items: &[Item],
    max_pdu: u32,
    fallback_implicit: bool,
) -> Result<Vec<Outcome>> {
    let mut conn = connect(target, 64 * 1024).await?;

    let mut proposed: Vec<(String, String)> = Vec::new();
    for i in items {
        let mut keys = vec![(i.sop_class.clone(), i.ts.clone())];
        if fallback_implicit && i.ts != uids::IMPLICIT_VR_LE && is_uncompressed(&i.ts) {
            keys.push((i.sop_class.clone(), uids::IMPLICIT_VR_LE.to_string()));
        }
        for key in keys {
            if !proposed.contains(&key) {
                proposed.push(key);
            }
        }
    }
    let rq = AssociationRQ {
        protocol_version: 1,
        calling_ae_title: calling_ae.to_string(),
        called_ae_title: target.called_ae.clone(),
        application_context_name: uids::APPLICATION_CONTEXT.to_string(),
        presentation_contexts: proposed
            .iter()
            .enumerate()
            .map(|(n, (class, ts))| PresentationContextProposed {
                id: (2 * n + 1) as u8,
                abstract_syntax: class.clone(),
                transfer_syntaxes: vec![ts.clone()],
            })
            .collect(),
        user_variables: vec![
            UserVariableItem::MaxLength(max_pdu),
            UserVariableItem::ImplementationClassUID(ul::IMPLEMENTATION_CLASS_UID.to_string()),
            UserVariableItem::ImplementationVersionName(
                ul::IMPLEMENTATION_VERSION_NAME.to_string(),
            ),
        ],
    };
    ul::write_pdu(conn.get_mut(), &Pdu::AssociationRQ(rq)).await?;
    let header = tokio::time::timeout(Duration::from_secs(30), ul::read_header(&mut conn))
        .await
        .context("no answer to A-ASSOCIATE-RQ")??
        .context("connection closed during negotiation")?;
    let ac = match ul::read_control_pdu(&mut conn, header).await? {
        Pdu::AssociationAC(ac) => ac,
        Pdu::AssociationRJ(rj) => {
            let msg = format!("association rejected: {:?} {:?}", rj.result, rj.source);
            if rj.result == dicom_ul::pdu::AssociationRJResult::Permanent {
                return Err(Permanent(msg).into());
            }
            bail!(msg)
        }
        Pdu::AbortRQ { source } => bail!("association aborted: {source:?}"),
        other => bail!("unexpected answer {other:?}"),
    };
    let peer_max = ul::peer_max_pdu(&ac.user_variables).min(16 * 1024 * 1024);
    let mut accepted: HashMap<(String, String), u8> = HashMap::new();
    for r in &ac.presentation_contexts {
        if r.reason == PresentationContextResultReason::Acceptance {
            if let Some((class, ts)) = proposed.get((r.id as usize).saturating_sub(1) / 2) {
                accepted.insert((class.clone(), ts.clone()), r.id);
            }
        }
    }

    let mut outcomes = Vec::with_capacity(items.len());
    let mut message_id: u16 = 0;
    let mut broken: Option<String> = None;
    for item in items {
        let mut outcome = Outcome {
            path: item.path.clone(),
            sop_instance_uid: item.sop_instance.clone(),
            status: None,
            error: None,
            transient: false,
        };
        if let Some(b) = &broken {
            outcome.error = Some(b.clone());
            outcome.transient = true;
            outcomes.push(outcome);
            continue;
        }
        let direct = accepted
            .get(&(item.sop_class.clone(), item.ts.clone()))
            .copied();
        let implicit = accepted
            .get(&(item.sop_class.clone(), uids::IMPLICIT_VR_LE.to_string()))
            .copied();
        let (pc, to_send) = match (direct, implicit) {
            (Some(pc), _) => (pc, std::borrow::Cow::Borrowed(item)),
            (None, Some(pc)) if fallback_implicit => match to_implicit(item) {
                Ok(i) => (pc, std::borrow::Cow::Owned(i)),
                Err(e) => {
                    outcome.error = Some(e.to_string());
                    outcomes.push(outcome);
                    continue;
                }
            },
            _ => {
                outcome.error = Some(format!(
                    "peer accepted no presentation context for {} in {}",
                    uids::sop_class_name(&item.sop_class),
                    item.ts
                ));
                outcomes.push(outcome);
                continue;
            }
        };
        message_id = message_id.wrapping_add(1);
        match store_one(&mut conn, pc, &to_send, message_id, peer_max).await {
            Ok(rsp) => {
                outcome.status = rsp.status;
                outcome.error = rsp.error_comment;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                outcome.error = Some(msg.clone());
                outcome.transient = true;
                broken = Some(format!("association lost: {msg}"));
            }
        }
        outcomes.push(outcome);
    }
    if broken.is_none() {
        let _ = ul::write_pdu(conn.get_mut(), &Pdu::ReleaseRQ).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(Some(h)) = ul::read_header(&mut conn).await {
                let _ = skip(&mut conn, h.length).await;
                if h.pdu_type == pdu_type::RELEASE_RP || h.pdu_type == pdu_type::ABORT {
                    break;
                }
            }
        })
        .await;
    }
    close(&mut conn).await;
    Ok(outcomes)
}

/// Over TLS, close_notify: without it the peer cannot tell our close from
/// a truncation. Best effort.
async fn close(conn: &mut Conn) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.get_mut().shutdown()).await;
}

async fn skip(conn: &mut Conn, n: u32) -> std::io::Result<()> {
    let mut left = n as u64;
    let mut buf = [0u8; 8192];
    while left > 0 {
        let k = left.min(buf.len() as u64) as usize;
        conn.read_exact(&mut buf[..k]).await?;
        left -= k as u64;
    }
    Ok(())
}

async fn store_one(
    conn: &mut Conn,
    pc: u8,
    item: &Item,
    message_id: u16,
    peer_max: u32,
) -> Result<dimse::Command> {
    let rq = dimse::c_store_rq(message_id, &item.sop_class, &item.sop_instance);
    ul::write_pdata(
        conn.get_mut(),
        pc,
        true,
        &dimse::encode_command(&rq),
        peer_max,
        true,
    )
    .await?;
    let chunk = (peer_max.max(1024) - 6).min(1024 * 1024) as usize;
    match &item.body {
        Body::Memory(bytes) => {
            ul::write_pdata(conn.get_mut(), pc, false, bytes, peer_max, true).await?;
        }
        Body::File { offset, len } => {
            let mut f = tokio::fs::File::open(&item.path).await?;
            f.seek(std::io::SeekFrom::Start(*offset)).await?;
            let mut left = *len;
            let mut buf = vec![0u8; chunk];
            if left == 0 {
                ul::write_pdata(conn.get_mut(), pc, false, &[], peer_max, true).await?;
            }
            while left > 0 {
                let n = left.min(chunk as u64) as usize;
                f.read_exact(&mut buf[..n]).await?;
                left -= n as u64;
                ul::write_pdata(conn.get_mut(), pc, false, &buf[..n], peer_max, left == 0).await?;
            }
        }
    }
    read_response(conn).await
}

/// Reads PDUs until a complete command arrives (the C-STORE-RSP).
async fn read_response(conn: &mut Conn) -> Result<dimse::Command> {
    let mut command = Vec::new();
    loop {
        let header = tokio::time::timeout(Duration::from_secs(600), ul::read_header(conn))
            .await
            .context("no C-STORE response within 600 s")??
            .context("connection closed before the response")?;
        match header.pdu_type {
            pdu_type::P_DATA_TF => {
                let mut remaining = header.length;
                while remaining > 0 {
                    let pdv = ul::read_pdv_header(conn, &mut remaining).await?;
                    if command.len() + pdv.data_len as usize > dimse::MAX_COMMAND_SET_LEN {
                        bail!("response command set too long");
                    }
                    let start = command.len();
                    command.resize(start + pdv.data_len as usize, 0);
                    conn.read_exact(&mut command[start..]).await?;
                    if pdv.is_command && pdv.is_last {
                        return Ok(dimse::decode_command(&command)?);
                    }
                    if !pdv.is_command {
                        command.truncate(start);
                    }
                }
            }
            pdu_type::ABORT => bail!("peer aborted the association"),
            other => {
                let pdu = ul::read_control_pdu(conn, header).await;
                bail!("unexpected PDU {other:#04x} while waiting for a response: {pdu:?}");
            }
        }
    }
}

/// A C-ECHO round trip; used by `demo`, `doctor` and tests.
pub async fn echo(target: &Target, calling_ae: &str) -> Result<DimseStatus> {
    let mut conn = connect(target, 8 * 1024).await?;
    let rq = AssociationRQ {
        protocol_version: 1,
        calling_ae_title: calling_ae.to_string(),
        called_ae_title: target.called_ae.clone(),
        application_context_name: uids::APPLICATION_CONTEXT.to_string(),
        presentation_contexts: vec![PresentationContextProposed {
            id: 1,
            abstract_syntax: uids::VERIFICATION.to_string(),
            transfer_syntaxes: vec![uids::IMPLICIT_VR_LE.to_string()],
        }],
        user_variables: vec![UserVariableItem::MaxLength(16384)],
    };
    ul::write_pdu(conn.get_mut(), &Pdu::AssociationRQ(rq)).await?;
    let header = ul::read_header(&mut conn).await?.context("closed")?;
    match ul::read_control_pdu(&mut conn, header).await? {
        Pdu::AssociationAC(_) => {}
        other => bail!("association not accepted: {other:?}"),
    }
    let cmd = dimse::encode_command(&dimse::c_echo_rq(1));
    ul::write_pdata(conn.get_mut(), 1, true, &cmd, 16384, true).await?;
    let rsp = read_response(&mut conn).await?;
    let _ = ul::write_pdu(conn.get_mut(), &Pdu::ReleaseRQ).await;
    // Wait for the RP (bounded) so that over TLS our close does not cut
    // the peer's answer off.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(h)) = ul::read_header(&mut conn).await {
            let _ = skip(&mut conn, h.length).await;
            if h.pdu_type == pdu_type::RELEASE_RP || h.pdu_type == pdu_type::ABORT {
                break;
            }
        }
    })
    .await;
    close(&mut conn).await;
    Ok(rsp.status.unwrap_or(DimseStatus(0xFFFF)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses() {
        let t: Target = "PACS@10.0.0.1:104".parse().unwrap();
        assert_eq!(
            t,
            Target {
                called_ae: "PACS".into(),
                host: "10.0.0.1".into(),
                port: 104,
                tls: None,
            }
        );
        let t: Target = "A@[::1]:11112".parse().unwrap();
        assert_eq!(t.host, "::1");
        assert!("PACS10.0.0.1:104".parse::<Target>().is_err());
        assert!("PACS@host".parse::<Target>().is_err());
        assert!("THIS_AE_TITLE_IS_TOO_LONG@h:1".parse::<Target>().is_err());
    }
}
