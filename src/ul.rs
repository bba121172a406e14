//! Upper-layer framing over a byte stream: PDU headers, bounded PDU bodies and
//! P-DATA-TF items, for both our SCP and our SCU.
//!
//! dicom-ul parses and encodes the association PDUs (A-ASSOCIATE-RQ/AC/RJ,
//! release, abort); this module adds what its stream readers lack for a
//! server that faces the network: a hard bound on every length before any
//! allocation, and P-DATA values handed on in pieces as they arrive, so an
//! 80 MB RTDOSE never sits whole in memory.

use std::io;

use dicom_ul::pdu::{AbortRQServiceProviderReason, AbortRQSource, Pdu};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Length of every PDU header in bytes: type (1), reserved (1), big-endian length (4) (PS3.8 9.3).
pub const PDU_HEADER_LEN: usize = 6;

/// PDU-type byte values (PS3.8 9.3.1).
pub mod pdu_type {
    /// A-ASSOCIATE-RQ: the calling AE proposes an association.
    pub const ASSOCIATE_RQ: u8 = 0x01;
    /// A-ASSOCIATE-AC: the called AE accepts.
    pub const ASSOCIATE_AC: u8 = 0x02;
    /// A-ASSOCIATE-RJ: the called AE rejects.
    pub const ASSOCIATE_RJ: u8 = 0x03;
    /// P-DATA-TF: carries PDV items (command and data set fragments).
    pub const P_DATA_TF: u8 = 0x04;
    /// A-RELEASE-RQ: orderly release requested.
    pub const RELEASE_RQ: u8 = 0x05;
    /// A-RELEASE-RP: orderly release confirmed.
    pub const RELEASE_RP: u8 = 0x06;
    /// A-ABORT: the association is torn down at once.
    pub const ABORT: u8 = 0x07;
}

/// An association PDU (anything but P-DATA) is at most a few tens of KB even
/// with 128 presentation contexts; refuse to buffer more.
pub const MAX_CONTROL_PDU_LEN: u32 = 1024 * 1024;

/// The 6-byte header that starts every PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PduHeader {
    /// PDU-type byte; see `pdu_type`.
    pub pdu_type: u8,
    /// Length in bytes of the PDU body that follows the header.
    pub length: u32,
}

/// Reads the next PDU header; `Ok(None)` when the peer closed the connection cleanly between PDUs.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<PduHeader>> {
    let mut h = [0u8; PDU_HEADER_LEN];
    // A clean close between PDUs is not an error; inside one it is.
    let n = r.read(&mut h[..1]).await?;
    if n == 0 {
        return Ok(None);
    }
    r.read_exact(&mut h[1..]).await?;
    Ok(Some(PduHeader {
        pdu_type: h[0],
        length: u32::from_be_bytes([h[2], h[3], h[4], h[5]]),
    }))
}

/// Reads the body of a non-P-DATA PDU and parses it with dicom-ul.
pub async fn read_control_pdu<R: AsyncRead + Unpin>(
    r: &mut R,
    header: PduHeader,
) -> io::Result<Pdu> {
    if header.length > MAX_CONTROL_PDU_LEN {
        return Err(invalid(format!(
            "PDU type {:#04x} announces {} bytes (limit {})",
            header.pdu_type, header.length, MAX_CONTROL_PDU_LEN
        )));
    }
    let mut buf = Vec::with_capacity(PDU_HEADER_LEN + header.length as usize);
    buf.push(header.pdu_type);
    buf.push(0);
    buf.extend_from_slice(&header.length.to_be_bytes());
    buf.resize(PDU_HEADER_LEN + header.length as usize, 0);
    r.read_exact(&mut buf[PDU_HEADER_LEN..]).await?;
    match dicom_ul::pdu::read_pdu(&buf[..], MAX_CONTROL_PDU_LEN, false) {
        Ok(Some(pdu)) => Ok(pdu),
        Ok(None) => Err(invalid("incomplete PDU".to_string())),
        Err(e) => Err(invalid(format!("malformed PDU: {e}"))),
    }
}

/// An `io::Error` of kind `InvalidData` with `msg`: how protocol violations are reported.
pub fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A peer that stops reading must not hold a task (and an association
/// slot) forever: every write gives up after this long.
pub const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn bounded<T>(
    what: &str,
    d: std::time::Duration,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match tokio::time::timeout(d, f).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: peer did not read for {} s", d.as_secs()),
        )),
    }
}

/// Encodes `pdu` and writes it, failing with `TimedOut` after `WRITE_TIMEOUT` (30 s) if the peer does not read.
pub async fn write_pdu<W: AsyncWrite + Unpin>(w: &mut W, pdu: &Pdu) -> io::Result<()> {
    let mut buf = Vec::with_capacity(256);
    dicom_ul::pdu::write_pdu(&mut buf, pdu).map_err(|e| invalid(format!("encoding PDU: {e}")))?;
    bounded("writing a PDU", WRITE_TIMEOUT, async {
        w.write_all(&buf).await?;
        w.flush().await
    })
    .await
}

/// Sends an A-ABORT from the service provider with `reason`, best effort (gives up after 2 s, errors ignored).
pub async fn write_abort<W: AsyncWrite + Unpin>(w: &mut W, reason: AbortRQServiceProviderReason) {
    let pdu = Pdu::AbortRQ {
        source: AbortRQSource::ServiceProvider(reason),
    };
    // The peer may already be gone, or not reading; an abort is best effort.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), write_pdu(w, &pdu)).await;
}

/// One PDV item's header inside a P-DATA-TF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdvHeader {
    /// Presentation context ID (odd, 1..=255) the fragment belongs to.
    pub context_id: u8,
    /// True for a command-set fragment, false for a data-set fragment (message control header bit 0).
    pub is_command: bool,
    /// True for the last fragment of the command or data set (message control header bit 1).
    pub is_last: bool,
    /// Bytes of value data that follow.
    pub data_len: u32,
}

/// Reads the 6-byte header of the next PDV item, checked against what is
/// left of the enclosing PDU.
pub async fn read_pdv_header<R: AsyncRead + Unpin>(
    r: &mut R,
    remaining_in_pdu: &mut u32,
) -> io::Result<PdvHeader> {
    if *remaining_in_pdu < 6 {
        return Err(invalid(format!(
            "{} stray bytes at the end of a P-DATA-TF",
            remaining_in_pdu
        )));
    }
    let mut h = [0u8; 6];
    r.read_exact(&mut h).await?;
    let item_len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    if item_len < 2 || item_len > *remaining_in_pdu - 4 {
        return Err(invalid(format!(
            "PDV item length {item_len} does not fit its PDU ({} bytes left)",
            *remaining_in_pdu - 4
        )));
    }
    *remaining_in_pdu -= 4 + item_len;
    Ok(PdvHeader {
        context_id: h[4],
        is_command: h[5] & 0x01 != 0,
        is_last: h[5] & 0x02 != 0,
        data_len: item_len - 2,
    })
}

/// Writes `data` as P-DATA-TF PDUs of at most `max_pdu_len` bytes each (the
/// peer's announced maximum, which counts the PDV headers).
pub async fn write_pdata<W: AsyncWrite + Unpin>(
    w: &mut W,
    context_id: u8,
    is_command: bool,
    data: &[u8],
    max_pdu_len: u32,
    last: bool,
) -> io::Result<()> {
    // 6 bytes of PDV header inside each PDU.
    let max_chunk = (max_pdu_len.max(1024) as usize - 6).max(2);
    let mut chunks = data.chunks(max_chunk).peekable();
    if data.is_empty() {
        return write_pdv(w, context_id, is_command, &[], last).await;
    }
    while let Some(chunk) = chunks.next() {
        let is_last = last && chunks.peek().is_none();
        write_pdv(w, context_id, is_command, chunk, is_last).await?;
    }
    Ok(())
}

async fn write_pdv<W: AsyncWrite + Unpin>(
    w: &mut W,
    context_id: u8,
    is_command: bool,
    chunk: &[u8],
    is_last: bool,
) -> io::Result<()> {
    let item_len = chunk.len() as u32 + 2;
    let pdu_len = item_len + 4;
    let mut head = [0u8; 12];
    head[0] = pdu_type::P_DATA_TF;
    head[2..6].copy_from_slice(&pdu_len.to_be_bytes());
    head[6..10].copy_from_slice(&item_len.to_be_bytes());
    head[10] = context_id;
    head[11] = (is_command as u8) | ((is_last as u8) << 1);
    bounded("writing P-DATA", WRITE_TIMEOUT, async {
        w.write_all(&head).await?;
        w.write_all(chunk).await
    })
    .await
}

/// Maximum PDU length the peer announced (0 means unlimited).
pub fn peer_max_pdu(user_variables: &[dicom_ul::pdu::UserVariableItem]) -> u32 {
    use dicom_ul::pdu::UserVariableItem;
    user_variables
        .iter()
        .find_map(|v| match v {
            UserVariableItem::MaxLength(0) => Some(u32::MAX),
            UserVariableItem::MaxLength(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(16_384)
}

/// Our implementation identity in association negotiation (a 2.25 UUID UID).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.170712845932906716548327451869271870913";
/// Our Implementation Version Name in association negotiation: `RTNODE_` plus the crate version (at most 16 chars).
pub const IMPLEMENTATION_VERSION_NAME: &str = concat!("RTNODE_", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pdata_split_respects_the_peer_maximum() {
        let data = vec![7u8; 5000];
        let mut out = Vec::new();
        write_pdata(&mut out, 3, false, &data, 2048, true)
            .await
            .unwrap();
        let mut r = &out[..];
        let mut total = 0;
        let mut lasts = 0;
        while let Some(h) = read_header(&mut r).await.unwrap() {
            assert_eq!(h.pdu_type, pdu_type::P_DATA_TF);
            assert!(h.length <= 2048);
            let mut left = h.length;
            let pdv = read_pdv_header(&mut r, &mut left).await.unwrap();
            assert_eq!(pdv.context_id, 3);
            assert!(!pdv.is_command);
            lasts += pdv.is_last as u32;
            let mut body = vec![0; pdv.data_len as usize];
            r.read_exact(&mut body).await.unwrap();
            total += body.len();
            assert_eq!(left, 0);
        }
        assert_eq!(total, 5000);
        assert_eq!(lasts, 1);
    }

    #[tokio::test]
    async fn pdv_longer_than_its_pdu_is_rejected() {
        let mut bytes = vec![0u8, 0, 0, 100, 1, 3];
        bytes.extend_from_slice(&[0; 10]);
        let mut left = 16u32;
        assert!(read_pdv_header(&mut &bytes[..], &mut left).await.is_err());
    }

    #[tokio::test]
    async fn oversize_control_pdu_is_rejected_before_allocation() {
        let header = PduHeader {
            pdu_type: pdu_type::ASSOCIATE_RQ,
            length: u32::MAX,
        };
        assert!(read_control_pdu(&mut &[][..], header).await.is_err());
    }
}
