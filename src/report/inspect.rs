//! Human-readable views of a run: `cmcl inspect` (schema and a few rows of a shard) and
//! `cmcl stats` (the manifest summarised).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::Float32Type;
use arrow_array::{Array, RecordBatch, StructArray};

use crate::core::error::{Error, Result};
use crate::core::fs::hex;
use crate::store::manifest::{self, Manifest};
use crate::store::shard::read_ipc;

/// The shard to show: the file itself, or the first shard of a run folder.
fn resolve_shard(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let manifest = Manifest::load(&path.join(manifest::FILE_NAME))?;
    manifest
        .shards
        .first()
        .map(|s| path.join(&s.file))
        .ok_or_else(|| Error::Manifest {
            path: path.join(manifest::FILE_NAME),
            message: "the run has written no shard yet".into(),
        })
}

/// Schema and the first `rows` rows of a shard, as text.
pub fn inspect(path: &Path, rows: usize) -> Result<String> {
    let shard = resolve_shard(path)?;
    let (schema, batches) = read_ipc(&shard)?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut out = String::new();
    let _ = writeln!(out, "{}: {total} rows", shard.display());
    let _ = writeln!(
        out,
        "schema (cmcl.schema_version {}):",
        schema
            .metadata()
            .get("cmcl.schema_version")
            .map_or("?", |v| v)
    );
    for field in schema.fields() {
        let null = if field.is_nullable() {
            ", nullable"
        } else {
            ""
        };
        let _ = writeln!(out, "  {}: {}{null}", field.name(), field.data_type());
    }
    let mut shown = 0;
    for batch in &batches {
        for row in 0..batch.num_rows() {
            if shown == rows {
                return Ok(out);
            }
            shown += 1;
            out.push('\n');
            describe_row(&mut out, batch, row);
        }
    }
    Ok(out)
}

fn describe_row(out: &mut String, batch: &RecordBatch, row: usize) {
    let text = |name: &str| -> Option<String> {
        let column = batch.column_by_name(name)?;
        (!column.is_null(row)).then(|| column.as_string::<i32>().value(row).to_string())
    };
    let uid = batch
        .column_by_name("uid")
        .map(|c| hex(c.as_fixed_size_binary().value(row)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "uid {uid}  image {}  ({})",
        text("image_id").unwrap_or_default(),
        text("source").unwrap_or_default()
    );
    let _ = writeln!(out, "  caption: {}", text("caption").unwrap_or_default());
    if let Some(path) = text("image_path") {
        let _ = writeln!(out, "  image:   {path}");
    }
    if let Some(objects) = batch.column_by_name("objects").filter(|c| !c.is_null(row)) {
        let labels = objects.as_list::<i32>().value(row);
        let labels: Vec<&str> = labels.as_string::<i32>().iter().flatten().collect();
        let _ = writeln!(out, "  objects: {}", labels.join(", "));
    }
    for list in ["positives", "negatives", "neighbours"] {
        let Some(column) = batch.column_by_name(list) else {
            continue;
        };
        let items = column.as_list::<i32>().value(row);
        let items: &StructArray = items.as_struct();
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  {list}:");
        let field = |name: &str| {
            items
                .column_by_name(name)
                .map(|c| c.as_string::<i32>().clone())
        };
        let (texts, refs, kinds, params) = (
            field("text"),
            field("ref_id"),
            field("kind"),
            field("params"),
        );
        let scores = items
            .column_by_name("score")
            .map(|c| c.as_primitive::<Float32Type>().clone());
        for i in 0..items.len() {
            let get = |a: &Option<arrow_array::StringArray>| {
                a.as_ref()
                    .filter(|a| !a.is_null(i))
                    .map(|a| a.value(i).to_string())
            };
            let score = scores.as_ref().map_or(f32::NAN, |s| s.value(i));
            let what = get(&texts).or_else(|| get(&refs)).unwrap_or_default();
            let _ = writeln!(
                out,
                "    [{}] {score:.3}  {what}  {}",
                get(&kinds).unwrap_or_default(),
                get(&params).unwrap_or_default()
            );
        }
    }
}

/// A summary of a run's manifest.
pub fn stats(dir: &Path) -> Result<String> {
    let manifest = Manifest::load(&dir.join(manifest::FILE_NAME))?;
    let mut out = String::new();
    let m = &manifest;
    let _ = writeln!(
        out,
        "run {} ({} {}, schema {})",
        m.pipeline, m.tool, m.version, m.schema_version
    );
    let _ = writeln!(
        out,
        "config {}  seed {}",
        &m.config_hash[..12.min(m.config_hash.len())],
        m.seed
    );
    for input in &m.inputs {
        let _ = writeln!(
            out,
            "input {:<13} {} ({} bytes, sha256 {})",
            input.role,
            input.path,
            input.bytes,
            &input.sha256[..12]
        );
    }
    let i = &m.ingest;
    let _ = writeln!(
        out,
        "ingest: {} records read, {} pairs, {} corpus images, {} corpus texts, {} rejected",
        i.read,
        i.pairs,
        i.corpus_images,
        i.corpus_texts,
        i.rejected.values().sum::<u64>()
    );
    for (reason, n) in &i.rejected {
        let _ = writeln!(out, "  rejected {reason}: {n}");
    }
    let done: usize = m.shards.iter().map(|s| s.rows).sum();
    let state = if m.complete { "complete" } else { "incomplete" };
    let _ = writeln!(
        out,
        "shards: {}/{} ({done}/{} rows, {state})",
        m.shards.len(),
        m.num_shards,
        m.total_rows
    );
    for (name, s) in &m.stages {
        let per_row = if done > 0 {
            s.produced as f64 / done as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "stage {name}: {} produced ({per_row:.2} per pair), {:.2} s",
            s.produced, s.seconds
        );
        for (reason, n) in &s.rejected {
            let _ = writeln!(out, "  rejected {reason}: {n}");
        }
        for (counter, n) in &s.counters {
            let _ = writeln!(out, "  {counter}: {n}");
        }
    }
    Ok(out)
}
