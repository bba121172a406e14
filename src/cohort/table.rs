//! A cohort table in memory: named columns, each with what it holds (so
//! that pseudonymisation knows what to replace, drop or keep), and rows of
//! cells. Rows are built by name; a column appears the first time a row
//! names it, so tables whose columns differ by course (metrics, radiomics
//! features) become the union of them.

use std::collections::HashMap;

/// What a column holds, for pseudonymisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Kept as it is: numbers, codes, names of structures, provenance.
    Plain,
    /// PatientID: replaced by the patient's pseudonym.
    PatientId,
    /// PatientName: replaced by the patient's pseudonym.
    PatientName,
    /// Course ids start with the patient ID.
    CourseId,
    /// UIDs, one or several separated by spaces.
    Uids,
    /// Dates and times.
    Date,
    /// Text typed by people (descriptions, labels, findings).
    FreeText,
    /// A measured value copied from a stage's table: kept when numeric.
    Measure,
}

/// One value of a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// No value: an empty CSV field, a Parquet null.
    Null,
    /// Text ([`Cell::text`] turns empty text into Null).
    Text(String),
    /// An integer.
    Int(i64),
    /// A real number, in the unit the producing stage reports.
    Num(f64),
}

impl Cell {
    /// Text, or [`Cell::Null`] when empty.
    pub fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        if s.is_empty() {
            Cell::Null
        } else {
            Cell::Text(s)
        }
    }

    /// A number, or [`Cell::Null`] for None.
    pub fn opt_num(v: Option<f64>) -> Cell {
        v.map_or(Cell::Null, Cell::Num)
    }

    /// A value read from a CSV file: a number when it reads as one.
    pub fn parse(s: &str) -> Cell {
        let t = s.trim();
        if t.is_empty() {
            Cell::Null
        } else if let Ok(v) = t.parse::<f64>() {
            Cell::Num(v)
        } else {
            Cell::Text(s.to_string())
        }
    }

    /// Whether the cell holds no value.
    pub fn is_null(&self) -> bool {
        matches!(self, Cell::Null)
    }
}

/// A column of a table.
#[derive(Debug, Clone)]
pub struct Column {
    /// The header name, e.g. `course_id`, `roi`.
    pub name: String,
    /// What it holds, for pseudonymisation.
    pub kind: Kind,
}

/// A cohort table: columns in the order first named, rows of cells.
#[derive(Debug, Clone)]
pub struct Table {
    /// Table name, also its file's stem (`dvh_metrics`, `radiomics`, `qc`,
    /// `courses`).
    pub name: &'static str,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows; each has one cell per column, Null where a row did not
    /// name the column.
    pub rows: Vec<Vec<Cell>>,
    positions: HashMap<String, usize>,
}

/// One row under construction: (column, kind, value) in column order.
#[derive(Debug, Default, Clone)]
pub struct Row(pub Vec<(String, Kind, Cell)>);

impl Row {
    /// Appends a named cell of the given kind; chainable.
    pub fn put(&mut self, name: &str, kind: Kind, cell: Cell) -> &mut Row {
        self.0.push((name.to_string(), kind, cell));
        self
    }
}

impl Table {
    /// An empty table with no columns.
    pub fn new(name: &'static str) -> Table {
        Table {
            name,
            columns: Vec::new(),
            rows: Vec::new(),
            positions: HashMap::new(),
        }
    }

    /// A table whose first columns are given even when it gets no row.
    pub fn with_columns(name: &'static str, columns: &Row) -> Table {
        let mut t = Table::new(name);
        for (n, kind, _) in &columns.0 {
            t.positions.insert(n.clone(), t.columns.len());
            t.columns.push(Column {
                name: n.clone(),
                kind: *kind,
            });
        }
        t
    }

    /// Appends a row, adding the columns it names that the table lacks
    /// (earlier rows get Null there).
    pub fn push(&mut self, row: Row) {
        let mut cells = vec![Cell::Null; self.columns.len()];
        for (name, kind, cell) in row.0 {
            let i = match self.positions.get(&name) {
                Some(&i) => i,
                None => {
                    self.columns.push(Column {
                        name: name.clone(),
                        kind,
                    });
                    for r in &mut self.rows {
                        r.push(Cell::Null);
                    }
                    cells.push(Cell::Null);
                    self.positions.insert(name, self.columns.len() - 1);
                    self.columns.len() - 1
                }
            };
            cells[i] = cell;
        }
        self.rows.push(cells);
    }

    /// Drops the columns for which `keep` is false.
    pub fn retain_columns(&mut self, keep: impl Fn(&Column, &[&Cell]) -> bool) {
        let decisions: Vec<bool> = (0..self.columns.len())
            .map(|i| {
                let cells: Vec<&Cell> = self.rows.iter().map(|r| &r[i]).collect();
                keep(&self.columns[i], &cells)
            })
            .collect();
        let mut it = decisions.iter();
        self.columns.retain(|_| *it.next().unwrap_or(&true));
        for r in &mut self.rows {
            let mut it = decisions.iter();
            r.retain(|_| *it.next().unwrap_or(&true));
        }
        self.positions = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
    }

    /// The storage type of a column: integers, numbers, or text. A column
    /// with no value at all is text, so that an absent finding never turns
    /// a text column numeric.
    pub fn column_type(&self, i: usize) -> ColumnType {
        if self.rows.iter().all(|r| r[i].is_null()) {
            return ColumnType::Text;
        }
        let mut t = ColumnType::Int;
        for r in &self.rows {
            match (&r[i], t) {
                (Cell::Null, _) | (Cell::Int(_), _) => {}
                (Cell::Num(_), ColumnType::Int) => t = ColumnType::Num,
                (Cell::Num(_), _) => {}
                (Cell::Text(_), _) => return ColumnType::Text,
            }
        }
        t
    }
}

/// The storage type of a column ([`Table::column_type`]), as Parquet
/// writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Every value an integer: INT64.
    Int,
    /// Numbers, some not integers: DOUBLE.
    Num,
    /// Any text, or no value at all: UTF-8 BYTE_ARRAY.
    Text,
}

/// How a cell is written as text (CSV, and text columns of Parquet).
/// Numbers use the shortest form that reads back to the same value.
pub fn render(c: &Cell) -> String {
    match c {
        Cell::Null => String::new(),
        Cell::Text(s) => s.clone(),
        Cell::Int(v) => v.to_string(),
        Cell::Num(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_the_union_in_first_seen_order() {
        let mut t = Table::new("t");
        let mut a = Row::default();
        a.put("x", Kind::Plain, Cell::Int(1));
        t.push(a);
        let mut b = Row::default();
        b.put("y", Kind::Plain, Cell::Num(2.5))
            .put("x", Kind::Plain, Cell::Int(3));
        t.push(b);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["x", "y"]);
        assert_eq!(t.rows[0], vec![Cell::Int(1), Cell::Null]);
        assert_eq!(t.rows[1], vec![Cell::Int(3), Cell::Num(2.5)]);
        assert_eq!(t.column_type(0), ColumnType::Int);
        assert_eq!(t.column_type(1), ColumnType::Num);
        t.retain_columns(|c, _| c.name != "x");
        assert_eq!(t.rows[1], vec![Cell::Num(2.5)]);
    }
}
