//! Reads the CSV files other stages write (`#` comment lines first, RFC 4180
//! quoting: [`crate::csv_format`]), keeping every field exactly as written:
//! the report prints the numbers of `dvh_metrics.csv` character for
//! character.

use std::path::Path;

use anyhow::{Context, Result};

/// A CSV file as the report reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Csv {
    /// Comment lines without their leading `# `.
    pub comments: Vec<String>,
    /// The first record.
    pub header: Vec<String>,
    /// Every later record.
    pub rows: Vec<Vec<String>>,
}

impl Csv {
    /// Reads and parses a CSV file.
    pub fn read(path: &Path) -> Result<Csv> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Csv::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The leading comments, the first record as header and the other
    /// records as rows; records whose fields are all empty are skipped.
    pub fn parse(text: &str) -> Result<Csv> {
        let mut records = crate::csv_format::records(text)?
            .into_iter()
            .filter(|r| !r.iter().all(String::is_empty));
        Ok(Csv {
            comments: crate::csv_format::leading_comments(text),
            header: records.next().unwrap_or_default(),
            rows: records.collect(),
        })
    }

    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_values_as_written() {
        let c = Csv::parse(
            "# dose: plan, summed\n# x\nroi,metric,value\n\"a, b\",D95,49.500001\n\"say \"\"hi\"\"\",Dmax,\n",
        )
        .unwrap();
        assert_eq!(c.comments, ["dose: plan, summed", "x"]);
        assert_eq!(c.header, ["roi", "metric", "value"]);
        assert_eq!(c.rows[0], ["a, b", "D95", "49.500001"]);
        assert_eq!(c.rows[1], ["say \"hi\"", "Dmax", ""]);
        assert_eq!(c.column("value"), Some(2));
    }
}
