//! The generic formats: JSON Lines, CSV and Parquet, with configurable column names.

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use super::{for_each_line, Field, RawRow, RejectReason, Role, NOT_UTF8};
use crate::core::error::{Error, Result};
use crate::ingest::config::{Columns, Source};

/// The column names a role reads, with the required ones first.
struct Wanted<'a> {
    id: Option<&'a str>,
    image_id: Option<&'a str>,
    text: Option<&'a str>,
    image_path: Option<&'a str>,
    image_vector: Option<&'a str>,
    objects: Option<&'a str>,
}

impl<'a> Wanted<'a> {
    fn new(columns: &'a Columns, role: Role) -> Self {
        let is = |r: Role| role == r;
        Wanted {
            id: columns.id.as_deref().filter(|_| !is(Role::Images)),
            image_id: Some(columns.image_id.as_str()).filter(|_| !is(Role::Texts)),
            text: Some(columns.caption.as_str()).filter(|_| !is(Role::Images)),
            image_path: columns.image_path.as_deref().filter(|_| !is(Role::Texts)),
            image_vector: columns.image_vector.as_deref().filter(|_| !is(Role::Texts)),
            objects: columns.objects.as_deref().filter(|_| !is(Role::Texts)),
        }
    }

    /// Columns a tabular file must have: without them no record could be valid.
    fn required(&self) -> impl Iterator<Item = &'a str> {
        [self.image_id, self.text].into_iter().flatten()
    }
}

pub(super) fn read_jsonl(source: &Source, role: Role, sink: &mut dyn FnMut(RawRow)) -> Result<()> {
    let wanted = Wanted::new(&source.columns, role);
    for_each_line(&source.path, sink, &mut |location, line| {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let object = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                let what = json_kind(&other);
                return Some(RawRow::broken(
                    location,
                    RejectReason::MalformedRecord,
                    format!("expected a JSON object, found {what}"),
                ));
            }
            Err(e) => {
                return Some(RawRow::broken(
                    location,
                    RejectReason::MalformedRecord,
                    format!("invalid JSON: {e}"),
                ));
            }
        };
        let get = |name: Option<&str>| name.and_then(|n| object.get(n)).filter(|v| !v.is_null());
        Some(RawRow {
            location,
            problem: None,
            id: get(wanted.id).map(json_scalar),
            image_id: get(wanted.image_id).map(json_scalar),
            text: get(wanted.text).map(json_scalar),
            image_path: get(wanted.image_path).map(json_scalar),
            image_vector: get(wanted.image_vector).map(json_vector),
            objects: get(wanted.objects).map(json_labels),
        })
    })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Strings as they are; numbers as their decimal text (COCO-style integer ids).
pub(super) fn json_scalar(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "expected a string or number, found {}",
            json_kind(other)
        )),
    }
}

pub(super) fn json_vector(v: &Value) -> std::result::Result<Vec<f32>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("expected an array of numbers, found {}", json_kind(v)))?;
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .map(|f| f as f32)
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("item {i} is not a finite number"))
        })
        .collect()
}

pub(super) fn json_labels(v: &Value) -> std::result::Result<Vec<String>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("expected an array of strings, found {}", json_kind(v)))?;
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| format!("item {i} is not a string"))
        })
        .collect()
}

pub(super) fn read_csv(source: &Source, role: Role, sink: &mut dyn FnMut(RawRow)) -> Result<()> {
    let path = &source.path;
    let wanted = Wanted::new(&source.columns, role);
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| csv_error(path, e))?;
    let headers: Vec<String> = reader
        .byte_headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    for name in wanted.required() {
        if !headers.iter().any(|h| h == name) {
            return Err(Error::input(
                path,
                1,
                format!("no column named {name:?}; the header has {headers:?}"),
            ));
        }
    }
    let index = |name: Option<&str>| name.and_then(|n| headers.iter().position(|h| h == n));
    let (id, image_id, text) = (index(wanted.id), index(wanted.image_id), index(wanted.text));
    let (image_path, image_vector, objects) = (
        index(wanted.image_path),
        index(wanted.image_vector),
        index(wanted.objects),
    );
    let mut record = csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e)),
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cell = |i: Option<usize>| -> Field<String> {
            let bytes = record.get(i?)?;
            Some(
                std::str::from_utf8(bytes)
                    .map(str::to_string)
                    .map_err(|e| format!("{NOT_UTF8}: {e}")),
            )
        };
        let non_empty = |f: Field<String>| f.filter(|v| !matches!(v, Ok(s) if s.is_empty()));
        sink(RawRow {
            location: format!("{}:{line}", path.display()),
            problem: None,
            id: non_empty(cell(id)),
            image_id: cell(image_id),
            text: cell(text),
            image_path: non_empty(cell(image_path)),
            image_vector: non_empty(cell(image_vector))
                .map(|c| c.and_then(|s| parse_vector_cell(&s))),
            objects: non_empty(cell(objects))
                .map(|c| c.map(|s| s.split('|').map(|l| l.trim().to_string()).collect())),
        });
    }
}

fn csv_error(path: &std::path::Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::input(path, line, format!("{other:?}")),
    }
}

/// A vector in a CSV cell: a JSON array, or numbers separated by spaces or commas.
fn parse_vector_cell(cell: &str) -> std::result::Result<Vec<f32>, String> {
    let inner = cell.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<f32>()
                .ok()
                .filter(|f| f.is_finite())
                .ok_or_else(|| format!("{t:?} is not a finite number"))
        })
        .collect()
}

pub(super) fn read_parquet(
    source: &Source,
    role: Role,
    sink: &mut dyn FnMut(RawRow),
) -> Result<()> {
    let path = &source.path;
    let wanted = Wanted::new(&source.columns, role);
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::input(path, 0, e.to_string()))?;
    let schema = builder.schema().clone();
    for name in wanted.required() {
        if schema.field_with_name(name).is_err() {
            let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
            return Err(Error::input(
                path,
                0,
                format!("no column named {name:?}; the file has {names:?}"),
            ));
        }
    }
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::input(path, 0, e.to_string()))?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::input(path, row + 1, e.to_string()))?;
        let column =
            |name: Option<&str>| -> Option<ArrayRef> { batch.column_by_name(name?).cloned() };
        let cols = [
            column(wanted.id),
            column(wanted.image_id),
            column(wanted.text),
            column(wanted.image_path),
            column(wanted.image_vector),
            column(wanted.objects),
        ];
        for i in 0..batch.num_rows() {
            row += 1;
            let [id, image_id, text, image_path, image_vector, objects] = &cols;
            sink(RawRow {
                location: format!("{}:{row}", path.display()),
                problem: None,
                id: id.as_ref().and_then(|a| arrow_scalar(a, i)),
                image_id: image_id.as_ref().and_then(|a| arrow_scalar(a, i)),
                text: text.as_ref().and_then(|a| arrow_scalar(a, i)),
                image_path: image_path.as_ref().and_then(|a| arrow_scalar(a, i)),
                image_vector: image_vector.as_ref().and_then(|a| arrow_vector(a, i)),
                objects: objects.as_ref().and_then(|a| arrow_labels(a, i)),
            });
        }
    }
    Ok(())
}

pub(super) fn arrow_scalar(array: &ArrayRef, i: usize) -> Field<String> {
    if array.is_null(i) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Utf8 => Ok(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Ok(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Ok(array.as_string_view().value(i).to_string()),
        DataType::Int32 => Ok(array.as_primitive::<Int32Type>().value(i).to_string()),
        DataType::Int64 => Ok(array.as_primitive::<Int64Type>().value(i).to_string()),
        DataType::UInt32 => Ok(array.as_primitive::<UInt32Type>().value(i).to_string()),
        DataType::UInt64 => Ok(array.as_primitive::<UInt64Type>().value(i).to_string()),
        other => Err(format!(
            "expected a string or integer column, found {other}"
        )),
    })
}

/// The list value at row `i`, for list, large list and fixed-size list columns.
fn list_item(array: &ArrayRef, i: usize) -> std::result::Result<ArrayRef, String> {
    match array.data_type() {
        DataType::List(_) => Ok(array.as_list::<i32>().value(i)),
        DataType::LargeList(_) => Ok(array.as_list::<i64>().value(i)),
        DataType::FixedSizeList(_, _) => Ok(array.as_fixed_size_list().value(i)),
        other => Err(format!("expected a list column, found {other}")),
    }
}

pub(super) fn arrow_vector(array: &ArrayRef, i: usize) -> Field<Vec<f32>> {
    if array.is_null(i) {
        return None;
    }
    let values = match list_item(array, i) {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    let floats: Vec<f32> = match values.data_type() {
        DataType::Float32 => values
            .as_primitive::<Float32Type>()
            .iter()
            .map(|v| v.unwrap_or(f32::NAN))
            .collect(),
        DataType::Float64 => values
            .as_primitive::<Float64Type>()
            .iter()
            .map(|v| v.map(|f| f as f32).unwrap_or(f32::NAN))
            .collect(),
        other => return Some(Err(format!("expected float items, found {other}"))),
    };
    Some(match floats.iter().position(|f| !f.is_finite()) {
        Some(at) => Err(format!("item {at} is null or not finite")),
        None => Ok(floats),
    })
}

pub(super) fn arrow_labels(array: &ArrayRef, i: usize) -> Field<Vec<String>> {
    if array.is_null(i) {
        return None;
    }
    if let Some(Ok(joined)) = arrow_scalar(array, i).filter(|_| !array.data_type().is_nested()) {
        return Some(Ok(joined
            .split('|')
            .map(|l| l.trim().to_string())
            .collect()));
    }
    let values = match list_item(array, i) {
        Ok(v) => v,
        Err(e) => return Some(Err(e)),
    };
    Some(
        (0..values.len())
            .map(|j| arrow_scalar(&values, j).unwrap_or_else(|| Err(format!("item {j} is null"))))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_cells() {
        assert_eq!(
            parse_vector_cell("[1, 2.5,3]").unwrap(),
            vec![1.0, 2.5, 3.0]
        );
        assert_eq!(parse_vector_cell("1 2").unwrap(), vec![1.0, 2.0]);
        assert!(parse_vector_cell("[1, x]").is_err());
        assert!(parse_vector_cell("[1, NaN]").is_err());
    }
}
