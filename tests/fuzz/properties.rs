//! The properties the fuzz targets check. tests/network/fuzz_corpus.rs includes this
//! file too, so the committed corpus replays under a plain `cargo test` on
//! stable, with exactly the checks the fuzzer applied.
#![allow(dead_code)]

use rtnode::dimse::{decode_command, encode_command};
use rtnode::ul::{self, pdu_type};

/// What a decoded error comment becomes on the way back out. The encoder
/// deliberately keeps LO within its rules (at most 64 characters, no control
/// characters: PS3.5 6.2) because it echoes text that came from peers; the
/// decoder then trims padding as usual.
fn canonical_comment(c: &str) -> String {
    let kept: String = c
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(64)
        .collect();
    kept.trim_end_matches(['\0', ' ']).trim_start().to_string()
}

/// Anything the decoder accepts, the encoder writes back so that it decodes
/// to the same command (error comment normalised as above), with a correct
/// group length; and the normalised command is a fixpoint of the round trip.
pub fn dimse_command(data: &[u8]) -> Result<(), String> {
    let Ok(cmd) = decode_command(data) else {
        return Ok(());
    };
    let encoded = encode_command(&cmd);
    let group_length = encoded
        .get(8..12)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if group_length != Some(encoded.len().saturating_sub(12)) {
        return Err(format!(
            "encoding of {cmd:?} has group length {group_length:?} for {} bytes",
            encoded.len()
        ));
    }
    let again = decode_command(&encoded)
        .map_err(|e| format!("{cmd:?} encodes to bytes that do not decode: {e}"))?;
    let mut expected = cmd.clone();
    expected.error_comment = cmd.error_comment.as_deref().map(canonical_comment);
    if again != expected {
        return Err(format!(
            "round trip changed the command:\n  decoded    {cmd:?}\n  re-decoded {again:?}"
        ));
    }
    // Once normalised, a command survives exactly. (Not byte-identical
    // encodings: a comment like "\0 A" encodes as " A", which the decoder
    // reads as "A", insignificant leading space of LO being dropped.)
    let third = decode_command(&encode_command(&again))
        .map_err(|e| format!("{again:?} encodes to bytes that do not decode: {e}"))?;
    if third != again {
        return Err(format!(
            "normalised command changed on a second round trip:\n  {again:?}\n  {third:?}"
        ));
    }
    Ok(())
}

thread_local! {
    // The readers only poll in-memory slices, so a bare current-thread
    // runtime per thread is enough and keeps the per-input cost low.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
}

/// Reads a byte stream the way the SCP does (PDU headers, control PDUs
/// through dicom-ul under the size limit, P-DATA-TF split into PDV items)
/// and checks that every PDV item accepted lies inside its PDU and is
/// accounted for exactly. Errors from the readers are fine; panics and
/// miscounted lengths are not.
pub fn pdv_stream(data: &[u8]) -> Result<(), String> {
    RUNTIME.with(|rt| rt.block_on(read_stream(data)))
}

async fn read_stream(mut r: &[u8]) -> Result<(), String> {
    loop {
        let header = match ul::read_header(&mut r).await {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => return Ok(()),
        };
        if header.pdu_type != pdu_type::P_DATA_TF {
            if ul::read_control_pdu(&mut r, header).await.is_err() {
                return Ok(());
            }
            continue;
        }
        let mut remaining = header.length;
        while remaining > 0 {
            let before = remaining;
            let Ok(pdv) = ul::read_pdv_header(&mut r, &mut remaining).await else {
                return Ok(());
            };
            let consumed = before.checked_sub(remaining).ok_or_else(|| {
                format!("PDV item grew the PDU remainder from {before} to {remaining}")
            })?;
            if u64::from(consumed) != 6 + u64::from(pdv.data_len) {
                return Err(format!(
                    "PDV item of {} data bytes consumed {consumed} of the PDU",
                    pdv.data_len
                ));
            }
            let n = pdv.data_len as usize;
            if r.len() < n {
                return Ok(());
            }
            r = &r[n..];
        }
    }
}
