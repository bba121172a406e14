//! `multipart/related` bodies (RFC 2387) as DICOMweb uses them: the parts
//! of a STOW-RS request, and the body of a WADO-RS answer.

use axum::http::HeaderMap;

/// Most parts one STOW-RS request may carry.
pub const MAX_PARTS: usize = 10_000;
/// Largest header block of one part, bytes.
const MAX_PART_HEAD: usize = 8 * 1024;

/// Why a multipart body could not be split into parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The Content-Type is not `multipart/related` with a boundary.
    #[error("{0}")]
    ContentType(String),
    /// The body does not follow the multipart syntax.
    #[error("malformed multipart body: {0}")]
    Malformed(&'static str),
}

/// One part: its Content-Type (lower case, parameters kept) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part<'a> {
    /// The part's Content-Type header; empty when the part has none.
    pub content_type: String,
    /// The part's body.
    pub body: &'a [u8],
}

/// The parameters of a media type (`type`, `boundary`, `transfer-syntax`),
/// names lower-cased, values unquoted.
pub fn media_params(value: &str) -> (String, Vec<(String, String)>) {
    let mut it = value.split(';');
    let media = it.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = it
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ))
        })
        .collect();
    (media, params)
}

/// The boundary of a `multipart/related; type="application/dicom"` request;
/// a `type` other than `application/dicom` is refused (PS3.18 10.5: this
/// node takes Part 10 instances only, not metadata with bulk data).
pub fn stow_boundary(headers: &HeaderMap) -> Result<String, MultipartError> {
    let ct = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| MultipartError::ContentType("a Content-Type is required".into()))?;
    let (media, params) = media_params(ct);
    if media != "multipart/related" {
        return Err(MultipartError::ContentType(format!(
            "Content-Type {media:?}: multipart/related is required"
        )));
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    match param("type") {
        Some(t) if t.eq_ignore_ascii_case("application/dicom") => {}
        Some(t) => {
            return Err(MultipartError::ContentType(format!(
                "type={t:?}: only application/dicom instances are accepted"
            )))
        }
        None => {
            return Err(MultipartError::ContentType(
                "type=\"application/dicom\" is required".into(),
            ))
        }
    }
    match param("boundary") {
        Some(b) if !b.is_empty() && b.len() <= 70 => Ok(b.clone()),
        _ => Err(MultipartError::ContentType(
            "a boundary of 1 to 70 characters is required".into(),
        )),
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Splits a body into its parts (the preamble and epilogue are ignored).
pub fn split<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    let dash = format!("--{boundary}");
    let delim = format!("\r\n--{boundary}");
    // The first boundary may open the body without a CRLF before it.
    let mut pos = if body.starts_with(dash.as_bytes()) {
        dash.len()
    } else {
        find(body, delim.as_bytes(), 0).ok_or(MultipartError::Malformed("no boundary"))?
            + delim.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding, then CRLF.
        let line_end =
            find(body, b"\r\n", pos).ok_or(MultipartError::Malformed("boundary line"))?;
        let head_start = line_end + 2;
        let (head_end, body_start) = if body[head_start..].starts_with(b"\r\n") {
            (head_start, head_start + 2)
        } else {
            let e = find(body, b"\r\n\r\n", head_start)
                .ok_or(MultipartError::Malformed("part headers"))?;
            (e, e + 4)
        };
        if head_end - head_start > MAX_PART_HEAD {
            return Err(MultipartError::Malformed("part headers too long"));
        }
        let head = String::from_utf8_lossy(&body[head_start..head_end]);
        let content_type = head
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let end = find(body, delim.as_bytes(), body_start)
            .ok_or(MultipartError::Malformed("unterminated part"))?;
        if parts.len() == MAX_PARTS {
            return Err(MultipartError::Malformed("too many parts"));
        }
        parts.push(Part {
            content_type,
            body: &body[body_start..end],
        });
        pos = end + delim.len();
    }
}

/// A fresh boundary for an answer.
pub fn new_boundary() -> String {
    format!("rtnode-{:032x}", rand::random::<u128>())
}

/// Appends one part (`Content-Type: content_type`) to an answer body.
pub fn push_part(out: &mut Vec<u8>, boundary: &str, content_type: &str, body: &[u8]) {
    out.extend_from_slice(
        format!("--{boundary}\r\nContent-Type: {content_type}\r\n\r\n").as_bytes(),
    );
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// Ends an answer body.
pub fn close(out: &mut Vec<u8>, boundary: &str) {
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_what_it_writes_and_what_clients_send() {
        let b = new_boundary();
        let mut body = Vec::new();
        push_part(&mut body, &b, "application/dicom", b"one\r\n--not");
        push_part(&mut body, &b, "application/dicom", b"");
        close(&mut body, &b);
        let parts = split(&body, &b).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, b"one\r\n--not");
        assert_eq!(parts[0].content_type, "application/dicom");
        assert_eq!(parts[1].body, b"");
        // A preamble, and a part without headers.
        let body = b"preamble\r\n--xx\r\n\r\nabc\r\n--xx--\r\n";
        let parts = split(body, "xx").unwrap();
        assert_eq!(
            (parts[0].body, parts[0].content_type.as_str()),
            (&b"abc"[..], "")
        );
        assert!(split(b"--xx\r\n\r\nabc", "xx").is_err());
        assert!(split(b"nothing", "xx").is_err());
    }

    #[test]
    fn stow_content_type() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            "multipart/related; type=\"application/dicom\"; boundary=abc"
                .parse()
                .unwrap(),
        );
        assert_eq!(stow_boundary(&h).unwrap(), "abc");
        h.insert(
            "content-type",
            "multipart/related; type=\"application/dicom+json\"; boundary=abc"
                .parse()
                .unwrap(),
        );
        assert!(stow_boundary(&h).is_err());
        h.insert("content-type", "application/dicom".parse().unwrap());
        assert!(stow_boundary(&h).is_err());
    }
}
