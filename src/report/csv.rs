//! Reads the CSV files other stages write (`#` comment lines first, RFC 4180
//! quoting), keeping every field exactly as written: the report prints the
//! numbers of `dvh_metrics.csv` character for character.

use std::path::Path;

use anyhow::{Context, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csv {
    /// Comment lines without their leading `# `.
    pub comments: Vec<String>,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    pub fn read(path: &Path) -> Result<Csv> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Csv::parse(&text))
    }

    pub fn parse(text: &str) -> Csv {
        let mut csv = Csv::default();
        let mut records = records(text).into_iter();
        for rec in records.by_ref() {
            if let [first] = rec.as_slice() {
                if let Some(c) = first.strip_prefix('#') {
                    csv.comments.push(c.trim().to_string());
                    continue;
                }
            }
            if rec.iter().all(String::is_empty) {
                continue;
            }
            csv.header = rec;
            break;
        }
        csv.rows = records
            .filter(|r| !r.iter().all(String::is_empty))
            .collect();
        csv
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

/// Splits into records of fields; a quoted field may hold commas, quotes
/// (doubled) and line breaks. A comment line is one record of one field
/// (commas and all), since comments are free text.
fn records(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rec = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut at_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if at_start && rec.is_empty() && field.is_empty() && c == '#' {
            let mut line = String::from("#");
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
                line.push(c);
            }
            out.push(vec![line.trim_end_matches('\r').to_string()]);
            continue;
        }
        at_start = false;
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, _) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => rec.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                rec.push(std::mem::take(&mut field));
                out.push(std::mem::take(&mut rec));
                at_start = true;
            }
            (false, _) => field.push(c),
        }
    }
    if !field.is_empty() || !rec.is_empty() {
        rec.push(field);
        out.push(rec);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_values_as_written() {
        let c = Csv::parse(
            "# dose: plan, summed\n# x\nroi,metric,value\n\"a, b\",D95,49.500001\n\"say \"\"hi\"\"\",Dmax,\n",
        );
        assert_eq!(c.comments, ["dose: plan, summed", "x"]);
        assert_eq!(c.header, ["roi", "metric", "value"]);
        assert_eq!(c.rows[0], ["a, b", "D95", "49.500001"]);
        assert_eq!(c.rows[1], ["say \"hi\"", "Dmax", ""]);
        assert_eq!(c.column("value"), Some(2));
    }
}
