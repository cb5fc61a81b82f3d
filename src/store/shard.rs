//! The shard format: Arrow IPC files, one row per pair, with list columns for the
//! positives, negatives and neighbours that stages attach. The schema is documented in
//! ARCHITECTURE.md; `SCHEMA_VERSION` changes only when an existing column changes
//! meaning. New kinds are new `kind` strings and new columns are appended, so readers
//! that select columns by name keep working.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{FixedSizeBinaryBuilder, Float32Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Float32Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use crate::core::error::{Error, Result};
use crate::core::fs::write_atomic;
use crate::core::record::Pair;
use crate::core::sample::{Augmented, Item};

pub const SCHEMA_VERSION: &str = "1";

fn item_fields() -> Fields {
    Fields::from(vec![
        Field::new("text", DataType::Utf8, true),
        Field::new("ref_id", DataType::Utf8, true),
        Field::new("kind", DataType::Utf8, false),
        Field::new("generator", DataType::Utf8, false),
        Field::new("params", DataType::Utf8, false),
        Field::new("score", DataType::Float32, false),
    ])
}

fn item_list_type() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(item_fields()),
        false,
    )))
}

fn float_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Float32, false))
}

fn string_item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

pub fn schema() -> SchemaRef {
    let fields = vec![
        Field::new("uid", DataType::FixedSizeBinary(16), false),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("image_id", DataType::Utf8, false),
        Field::new("caption_id", DataType::Utf8, true),
        Field::new("caption", DataType::Utf8, false),
        Field::new("image_path", DataType::Utf8, true),
        Field::new("image_vector", DataType::List(float_item()), true),
        Field::new("objects", DataType::List(string_item()), true),
        Field::new("source", DataType::Utf8, false),
        Field::new("positives", item_list_type(), false),
        Field::new("negatives", item_list_type(), false),
        Field::new("neighbours", item_list_type(), false),
    ];
    let metadata: std::collections::HashMap<String, String> = [(
        "cmcl.schema_version".to_string(),
        SCHEMA_VERSION.to_string(),
    )]
    .into();
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

fn item_list(lists: &[&Vec<Item>]) -> Result<ArrayRef> {
    let items: Vec<&Item> = lists.iter().flat_map(|l| l.iter()).collect();
    let children: Vec<ArrayRef> = vec![
        strings(items.iter().map(|i| i.text.as_deref())),
        strings(items.iter().map(|i| i.ref_id.as_deref())),
        strings(items.iter().map(|i| Some(i.kind.as_str()))),
        strings(items.iter().map(|i| Some(i.generator.as_str()))),
        strings(items.iter().map(|i| Some(i.params.as_str()))),
        Arc::new(items.iter().map(|i| i.score).collect::<Float32Array>()),
    ];
    let structs = StructArray::try_new(item_fields(), children, None)
        .map_err(|e| Error::arrow("<shard>", e))?;
    let offsets = OffsetBuffer::from_lengths(lists.iter().map(|l| l.len()));
    let DataType::List(field) = item_list_type() else {
        unreachable!("item_list_type is a list")
    };
    let list = ListArray::try_new(field, offsets, Arc::new(structs), None)
        .map_err(|e| Error::arrow("<shard>", e))?;
    Ok(Arc::new(list))
}

/// Builds the record batch for `pairs` and what the stages attached to them.
pub fn build_batch(pairs: &[Pair], augmented: &[Augmented]) -> Result<RecordBatch> {
    let mut uid = FixedSizeBinaryBuilder::with_capacity(pairs.len(), 16);
    let mut vectors = ListBuilder::new(Float32Builder::new()).with_field(float_item());
    let mut objects = ListBuilder::new(StringBuilder::new()).with_field(string_item());
    for pair in pairs {
        uid.append_value(pair.uid)
            .map_err(|e| Error::arrow("<shard>", e))?;
        match &pair.image_vector {
            Some(v) => vectors.append_value(v.iter().map(|x| Some(*x))),
            None => vectors.append_null(),
        }
        match &pair.objects {
            Some(labels) => objects.append_value(labels.iter().map(Some)),
            None => objects.append_null(),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(uid.finish()),
        strings(pairs.iter().map(|p| Some(p.dataset.as_str()))),
        strings(pairs.iter().map(|p| Some(p.image_id.as_str()))),
        strings(pairs.iter().map(|p| p.caption_id.as_deref())),
        strings(pairs.iter().map(|p| Some(p.caption.as_str()))),
        strings(pairs.iter().map(|p| p.image_path.as_deref())),
        Arc::new(vectors.finish()),
        Arc::new(objects.finish()),
        strings(pairs.iter().map(|p| Some(p.source.as_str()))),
        item_list(&augmented.iter().map(|a| &a.positives).collect::<Vec<_>>())?,
        item_list(&augmented.iter().map(|a| &a.negatives).collect::<Vec<_>>())?,
        item_list(&augmented.iter().map(|a| &a.neighbours).collect::<Vec<_>>())?,
    ];
    RecordBatch::try_new(schema(), columns).map_err(|e| Error::arrow("<shard>", e))
}

/// Writes `batch` as an Arrow IPC file, atomically.
pub fn write_ipc(path: &Path, batch: &RecordBatch) -> Result<()> {
    write_atomic(path, |w| {
        let mut writer = arrow_ipc::writer::FileWriter::try_new(&mut *w, &batch.schema())
            .map_err(|e| Error::arrow(path, e))?;
        writer.write(batch).map_err(|e| Error::arrow(path, e))?;
        writer.finish().map_err(|e| Error::arrow(path, e))
    })
}

/// Writes `batch` as a Snappy-compressed Parquet file, atomically.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<()> {
    use parquet::arrow::ArrowWriter;
    use parquet::basic::Compression;
    use parquet::file::properties::WriterProperties;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    write_atomic(path, |w| {
        let mut writer = ArrowWriter::try_new(&mut *w, batch.schema(), Some(props))
            .map_err(|e| Error::arrow(path, e))?;
        writer.write(batch).map_err(|e| Error::arrow(path, e))?;
        writer
            .close()
            .map(|_| ())
            .map_err(|e| Error::arrow(path, e))
    })
}

/// Reads every batch of an Arrow IPC shard.
pub fn read_ipc(path: &Path) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(file), None)
        .map_err(|e| Error::arrow(path, e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::arrow(path, e))?;
    Ok((schema, batches))
}

/// Reads a shard back into pairs and their items: the inverse of [`build_batch`]. Only
/// `image_id` and `caption` are required; a shard without the other columns (another
/// tool's, or an older cmcl's) reads as if they were empty.
pub fn read_pairs(path: &Path) -> Result<Vec<(Pair, Augmented)>> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    let (_, batches) = read_ipc(path)?;
    let mut rows = Vec::new();
    for batch in batches {
        let text = |name: &str| -> Result<Option<StringArray>> {
            match batch.column_by_name(name) {
                None => Ok(None),
                Some(c) => c.as_string_opt::<i32>().cloned().map(Some).ok_or_else(|| {
                    Error::arrow(path, format!("column {name} is not a string column"))
                }),
            }
        };
        let required = |name: &str| -> Result<StringArray> {
            text(name)?.ok_or_else(|| Error::arrow(path, format!("no {name} column")))
        };
        let (image_ids, captions) = (required("image_id")?, required("caption")?);
        let (datasets, caption_ids) = (text("dataset")?, text("caption_id")?);
        let (image_paths, sources) = (text("image_path")?, text("source")?);
        let list = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_list_opt::<i32>())
        };
        let (vectors, objects) = (list("image_vector"), list("objects"));
        let item_lists = ["positives", "negatives", "neighbours"].map(list);
        let uids = batch
            .column_by_name("uid")
            .and_then(|c| c.as_fixed_size_binary_opt());
        let get = |a: &Option<StringArray>, row: usize| {
            a.as_ref()
                .filter(|a| !a.is_null(row))
                .map(|a| a.value(row).to_string())
        };
        for row in 0..batch.num_rows() {
            let dataset = get(&datasets, row).unwrap_or_default();
            let (image_id, caption) = (image_ids.value(row), captions.value(row));
            let uid = match uids.filter(|u| u.value_length() == 16 && !u.is_null(row)) {
                Some(u) => u.value(row).try_into().unwrap_or_default(),
                None => crate::core::record::pair_uid(&dataset, image_id, caption),
            };
            let vector = vectors.filter(|v| !v.is_null(row)).map(|v| {
                let values = v.value(row);
                let floats = values.as_primitive::<arrow_array::types::Float32Type>();
                floats.values().to_vec()
            });
            let labels = objects.filter(|o| !o.is_null(row)).map(|o| {
                let values = o.value(row);
                let names = values.as_string::<i32>();
                (0..names.len())
                    .map(|i| names.value(i).to_string())
                    .collect()
            });
            let mut lists = item_lists.map(|l| l.map(|l| read_items(path, &l.value(row))));
            let mut take = |i: usize| lists[i].take().transpose().map(Option::unwrap_or_default);
            let augmented = Augmented {
                positives: take(0)?,
                negatives: take(1)?,
                neighbours: take(2)?,
            };
            let pair = Pair {
                uid,
                dataset,
                image_id: image_id.to_string(),
                caption_id: get(&caption_ids, row),
                caption: caption.to_string(),
                image_path: get(&image_paths, row),
                image_vector: vector,
                objects: labels,
                source: get(&sources, row).unwrap_or_default(),
            };
            rows.push((pair, augmented));
        }
    }
    Ok(rows)
}

fn read_items(path: &Path, items: &ArrayRef) -> Result<Vec<Item>> {
    use arrow_array::cast::AsArray;
    use arrow_array::Array;

    let items = items
        .as_struct_opt()
        .ok_or_else(|| Error::arrow(path, "item lists must hold structs"))?;
    let column = |name: &str| {
        items
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::arrow(path, format!("items have no string field {name}")))
    };
    let (text, ref_id, kind) = (column("text")?, column("ref_id")?, column("kind")?);
    let (generator, params) = (column("generator")?, column("params")?);
    let score = items
        .column_by_name("score")
        .and_then(|c| c.as_primitive_opt::<arrow_array::types::Float32Type>())
        .ok_or_else(|| Error::arrow(path, "items have no float field score"))?;
    let optional = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    Ok((0..items.len())
        .map(|i| Item {
            text: optional(text, i),
            ref_id: optional(ref_id, i),
            kind: kind.value(i).to_string(),
            generator: generator.value(i).to_string(),
            params: params.value(i).to_string(),
            score: score.value(i),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::pair_uid;

    fn pair(i: usize, with_optional: bool) -> Pair {
        Pair {
            uid: pair_uid("t", &i.to_string(), "cap"),
            dataset: "t".into(),
            image_id: i.to_string(),
            caption_id: with_optional.then(|| format!("{i}#0")),
            caption: format!("caption {i}"),
            image_path: with_optional.then(|| format!("/img/{i}.png")),
            image_vector: with_optional.then(|| vec![0.5, i as f32]),
            objects: with_optional.then(|| vec!["dog".into()]),
            source: format!("f:{i}"),
        }
    }

    #[test]
    fn round_trips_through_ipc() {
        let pairs = vec![pair(0, true), pair(1, false)];
        let mut aug = vec![Augmented::default(), Augmented::default()];
        aug[1].negatives.push(Item {
            text: Some("caption 0".into()),
            ref_id: Some("x".into()),
            kind: "tfidf".into(),
            generator: "tfidf".into(),
            params: "{}".into(),
            score: 0.5,
        });
        let batch = build_batch(&pairs, &aug).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.arrow");
        write_ipc(&path, &batch).unwrap();
        let (schema, batches) = read_ipc(&path).unwrap();
        assert_eq!(schema.metadata()["cmcl.schema_version"], SCHEMA_VERSION);
        assert_eq!(batches, vec![batch]);
        write_parquet(&dir.path().join("s.parquet"), &batches[0]).unwrap();
        let read: Vec<(Pair, Augmented)> = pairs.into_iter().zip(aug).collect();
        assert_eq!(read_pairs(&path).unwrap(), read);
    }

    #[test]
    fn shards_with_only_image_ids_and_captions_read_with_empty_items() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("image_id", DataType::Utf8, false),
            Field::new("caption", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                strings(["7"].into_iter().map(Some)),
                strings(["a cat"].into_iter().map(Some)),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.arrow");
        write_ipc(&path, &batch).unwrap();
        let rows = read_pairs(&path).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].0.image_id.as_str(), rows[0].0.caption.as_str()),
            ("7", "a cat")
        );
        assert_eq!(
            rows[0].0.uid,
            crate::core::record::pair_uid("", "7", "a cat")
        );
        assert_eq!(rows[0].1, Augmented::default());
        let no_caption = dir.path().join("n.arrow");
        let ids = Arc::new(Schema::new(vec![Field::new(
            "image_id",
            DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(ids, vec![strings(["7"].into_iter().map(Some))]).unwrap();
        write_ipc(&no_caption, &batch).unwrap();
        let message = read_pairs(&no_caption).unwrap_err().to_string();
        assert!(
            message.contains("n.arrow") && message.contains("no caption column"),
            "{message}"
        );
    }
}
