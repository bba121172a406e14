//! rtnode's one CSV dialect, used for every CSV file it writes or reads
//! (the DVH files, radiomics.csv, the cohort tables, the report's and the
//! cohort export's readers), on the csv crate.
//!
//! RFC 4180: comma-separated, `"` quoting with quotes doubled, a field
//! quoted only when it must be; records end in `\n` (`\r\n` is read too).
//! Lines starting with `#` are comments: the DVH files open with their
//! provenance that way (pandas reads them with `comment="#"`), so every
//! field holding a `#` is written quoted, which keeps a value such as
//! `#1 PTV` from reading as a comment — and pandas, which cuts a line at an
//! unquoted `#` anywhere, from cutting `PTV#2`. Blank lines are skipped.

use std::io::Write;

use anyhow::{Context, Result};

/// The comment character of every rtnode CSV file.
pub const COMMENT: u8 = b'#';

/// A writer of rtnode's dialect over `w`. Records may differ in length
/// (no record's length is checked against the first's).
pub fn writer<W: Write>(w: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary)
        .comment(Some(COMMENT))
        .flexible(true)
        .from_writer(w)
}

/// `records` as CSV text, one line each (fields quoted as [`writer`] does).
pub fn to_string<R, F>(records: impl IntoIterator<Item = R>) -> Result<String>
where
    R: IntoIterator<Item = F>,
    F: AsRef<[u8]>,
{
    let mut w = writer(Vec::new());
    for r in records {
        w.write_record(r).context("writing CSV")?;
    }
    let bytes = w.into_inner().context("writing CSV")?;
    String::from_utf8(bytes).context("CSV is not UTF-8")
}

/// Every record of a CSV text, comment and blank lines left out; fields as
/// written (unquoted). A quoted field still open at the end of the text is
/// an error: the csv crate reads it to the end, so the text is read with
/// one more record after it (a line holding `""`), which only a closed text
/// yields as a record of its own.
pub fn records(text: &str) -> Result<Vec<Vec<String>>> {
    let probe = format!("{text}\n\"\"\n");
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(COMMENT))
        .from_reader(probe.as_bytes());
    let mut out = Vec::new();
    for r in reader.records() {
        let r = r.context("reading CSV")?;
        out.push(r.iter().map(str::to_string).collect::<Vec<String>>());
    }
    match out.pop() {
        Some(last) if last == [""] => Ok(out),
        _ => anyhow::bail!("unterminated quoted field"),
    }
}

/// The comment lines at the top of a CSV text (before its first record;
/// blank lines between them skipped), without the `#` and surrounding
/// white space.
pub fn leading_comments(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map_while(|l| l.strip_prefix(char::from(COMMENT)))
        .map(|c| c.trim().to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_must_be_and_reads_back() {
        let text = to_string([
            vec!["roi", "value"],
            vec!["a, \"b\"", "1.5"],
            vec!["PTV#2", ""],
            vec!["line\r\nbreak", "-0"],
        ])
        .unwrap();
        assert_eq!(
            text,
            "roi,value\n\"a, \"\"b\"\"\",1.5\n\"PTV#2\",\n\"line\r\nbreak\",-0\n"
        );
        let back = records(&format!("# provenance\n{text}\n")).unwrap();
        assert_eq!(back[1], ["a, \"b\"", "1.5"]);
        assert_eq!(back[2], ["PTV#2", ""]);
        assert_eq!(back[3], ["line\r\nbreak", "-0"]);
        assert_eq!(back.len(), 4);
    }

    #[test]
    fn csv_reads_crlf_and_comments_and_rejects_an_open_quote() {
        assert_eq!(
            records("# a\r\nx,y\r\n\r\n1,\"2\"\r\n").unwrap(),
            [vec!["x", "y"], vec!["1", "2"]]
        );
        assert_eq!(records("x\n\"ok\"").unwrap(), [vec!["x"], vec!["ok"]]);
        assert_eq!(records("x\n\"a\"\"\"\n").unwrap()[1], ["a\""]);
        assert!(records("x\n\"open\n").is_err());
        assert!(records("x\n\"open\"\"").is_err());
        assert_eq!(
            leading_comments("# rtnode 1\n\n#dose: x, y \r\nroi\n# later\n"),
            ["rtnode 1", "dose: x, y"]
        );
    }
}
