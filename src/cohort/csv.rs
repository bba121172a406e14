//! CSV in and out: reading the stages' tables (RFC 4180 quoting, `#`
//! comment lines as rtnode's DVH files open with) and writing the cohort
//! tables.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::table::{render, Table};

/// Header and records of a CSV text; lines starting with `#` outside a
/// quoted field are comments.
pub fn parse(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut records: Vec<Vec<String>> = Vec::new();
    let mut field = String::new();
    let mut record: Vec<String> = Vec::new();
    let mut quoted = false;
    let mut at_line_start = true;
    let mut chars = text.chars().peekable();
    let mut in_comment = false;
    while let Some(c) = chars.next() {
        if in_comment {
            if c == '\n' {
                in_comment = false;
                at_line_start = true;
            }
            continue;
        }
        if at_line_start && c == '#' && !quoted {
            in_comment = true;
            continue;
        }
        at_line_start = false;
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => record.push(std::mem::take(&mut field)),
            ('\r', false) if chars.peek() == Some(&'\n') => {}
            ('\n', false) => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
                at_line_start = true;
            }
            (c, _) => field.push(c),
        }
    }
    anyhow::ensure!(!quoted, "unterminated quoted field");
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records.retain(|r| !(r.len() == 1 && r[0].is_empty()));
    let mut it = records.into_iter();
    let header = it.next().context("no header line")?;
    let rows: Vec<Vec<String>> = it.collect();
    for (i, r) in rows.iter().enumerate() {
        anyhow::ensure!(
            r.len() == header.len(),
            "record {} has {} fields, the header {}",
            i + 1,
            r.len(),
            header.len()
        );
    }
    Ok((header, rows))
}

pub fn read(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("parsing {}", path.display()))
}

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with('#') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn write(table: &Table, path: &Path) -> Result<()> {
    let mut out = Vec::new();
    let header: Vec<String> = table.columns.iter().map(|c| field(&c.name)).collect();
    writeln!(out, "{}", header.join(","))?;
    for r in &table.rows {
        let cells: Vec<String> = r.iter().map(|c| field(&render(c))).collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_comments_and_crlf() {
        let (h, rows) =
            parse("# rtnode\n# dose: x\nroi,value\r\n\"A, \"\"B\"\"\",1.5\r\nC,\n").unwrap();
        assert_eq!(h, ["roi", "value"]);
        assert_eq!(rows, [vec!["A, \"B\"", "1.5"], vec!["C", ""]]);
        assert!(parse("a,b\n1\n").is_err());
        assert!(parse("a\n\"open\n").is_err());
    }
}
