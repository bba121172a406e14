//! Parquet out, with the parquet crate's column writer alone (no arrow):
//! every column OPTIONAL, INT64, DOUBLE or UTF-8 text, one row group,
//! uncompressed (no codec is compiled in; cohort tables are small).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::table::{render, Cell, ColumnType, Table};

fn schema(table: &Table) -> Result<Type> {
    let mut fields = Vec::with_capacity(table.columns.len());
    for (i, c) in table.columns.iter().enumerate() {
        let t = match table.column_type(i) {
            ColumnType::Int => Type::primitive_type_builder(&c.name, PhysicalType::INT64),
            ColumnType::Num => Type::primitive_type_builder(&c.name, PhysicalType::DOUBLE),
            ColumnType::Text => Type::primitive_type_builder(&c.name, PhysicalType::BYTE_ARRAY)
                .with_logical_type(Some(LogicalType::String)),
        }
        .with_repetition(Repetition::OPTIONAL)
        .build()
        .with_context(|| format!("column {}", c.name))?;
        fields.push(Arc::new(t));
    }
    Ok(Type::group_type_builder("schema")
        .with_fields(fields)
        .build()?)
}

pub fn write(table: &Table, path: &Path) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let props = Arc::new(
        WriterProperties::builder()
            .set_created_by(format!("rtnode {}", env!("CARGO_PKG_VERSION")))
            .build(),
    );
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema(table)?), props)?;
    let mut rg = writer.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = rg.next_column()? {
        let cells: Vec<&Cell> = table.rows.iter().map(|r| &r[i]).collect();
        let def: Vec<i16> = cells.iter().map(|c| i16::from(!c.is_null())).collect();
        let present = cells.iter().filter(|c| !c.is_null());
        match table.column_type(i) {
            ColumnType::Int => {
                let v: Vec<i64> = present
                    .map(|c| match c {
                        Cell::Int(v) => *v,
                        _ => 0,
                    })
                    .collect();
                col.typed::<Int64Type>().write_batch(&v, Some(&def), None)?;
            }
            ColumnType::Num => {
                let v: Vec<f64> = present
                    .map(|c| match c {
                        Cell::Int(v) => *v as f64,
                        Cell::Num(v) => *v,
                        _ => f64::NAN,
                    })
                    .collect();
                col.typed::<DoubleType>()
                    .write_batch(&v, Some(&def), None)?;
            }
            ColumnType::Text => {
                let v: Vec<ByteArray> = present
                    .map(|c| ByteArray::from(render(c).into_bytes()))
                    .collect();
                col.typed::<ByteArrayType>()
                    .write_batch(&v, Some(&def), None)?;
            }
        }
        col.close()?;
        i += 1;
    }
    rg.close()?;
    let file = writer.into_inner()?;
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}
