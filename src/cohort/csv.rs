//! CSV in and out: reading the stages' tables (RFC 4180 quoting, `#`
//! comment lines as rtnode's DVH files open with) and writing the cohort
//! tables, both in rtnode's one dialect ([`crate::csv_format`]).

use std::path::Path;

use anyhow::{Context, Result};

use super::table::{render, Table};

/// Header and records of a CSV text ([`crate::csv_format`]: lines
/// starting with `#` outside a quoted field are comments); every record
/// must have the header's number of fields.
pub fn parse(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let mut records = crate::csv_format::records(text)?;
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

/// Reads and parses a CSV file ([`parse`]).
pub fn read(path: &Path) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes `table` as CSV: a header of the column names, then one record a
/// row, cells rendered as [`render`] does.
pub fn write(table: &Table, path: &Path) -> Result<()> {
    let header: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let rows = table
        .rows
        .iter()
        .map(|r| r.iter().map(render).collect::<Vec<String>>());
    let text = crate::csv_format::to_string(std::iter::once(header).chain(rows))?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
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
