//! The augment run: ingest, build the stages over the whole corpus, then write one
//! shard at a time, skipping shards that a previous run already wrote and verified.
//!
//! Shard i always holds pairs `[i * rows_per_shard, (i + 1) * rows_per_shard)` in input
//! order, and stages are deterministic, so a killed run resumed later writes the same
//! bytes as one that was never interrupted.

use std::path::{Path, PathBuf};

use super::config::Pipeline;
use super::index::{build_indexes, IndexOptions};
use super::plan::{save_record, Part, Plan};
use crate::core::error::{Error, Result};
use crate::core::fault;
use crate::core::fs::{sha256_file, write_atomic};
use crate::core::progress::progress_bar;
use crate::core::record::Corpus;
use crate::core::sample::{Augmented, Stats};
use crate::ingest::{check_reject_share, ingest, source_files, IngestReport};
use crate::stages::{Batch, BuildContext, Sequence, Stage};
use crate::store::artifact::{IndexManifest, IndexPolicy};
use crate::store::layout::{
    index_dir, parquet_file, shard_file, MANIFEST, PLAN_FILE, REJECTS_FILE,
};
use crate::store::lock::OutputLock;
use crate::store::manifest::{input_file, FileChecksum, IngestSummary, Manifest, ShardEntry};
use crate::store::shard::{build_batch, write_ipc, write_parquet, SCHEMA_VERSION};

/// Runtime knobs: they change how a run goes, never what it writes.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub out_dir: PathBuf,
    /// Redo every shard even when a valid one exists.
    pub force: bool,
    pub progress: bool,
    /// Caches shared between runs (translations).
    pub cache_dir: PathBuf,
    /// Write only this part of a shard plan (`cmcl plan`), as one of many workers.
    pub part: Option<Part>,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub manifest: PathBuf,
    pub shards_written: usize,
    pub shards_reused: usize,
    pub rows: usize,
    pub rejected: usize,
}

pub fn run(pipeline: &Pipeline, opts: &RunOptions) -> Result<RunSummary> {
    let out = &opts.out_dir;
    let _lock = match opts.part {
        Some(part) => OutputLock::acquire_part(out, part.index)?,
        None => OutputLock::acquire(out)?,
    };
    let (corpus, report) = ingest(&pipeline.inputs, &pipeline.ingest)?;
    fault::point("ingested");
    let rejects_path = out.join(REJECTS_FILE);
    // A worker leaves the rejects to the plan, which wrote them once for all.
    if opts.part.is_none() {
        write_rejects(&rejects_path, &report)?;
    }
    check_reject_share(&report, &pipeline.ingest, &rejects_path)?;
    let mut manifest = fresh_manifest(pipeline, &corpus, &report)?;

    // What this process writes, where it records it, and what it may reuse.
    let (shards, record, previous) = match opts.part {
        Some(part) => {
            let plan = Plan::load(out)?;
            plan.check(&manifest, out)?;
            plan.check_indexes(out)?;
            if plan.parts != part.count {
                return Err(Error::Manifest {
                    path: out.join(PLAN_FILE),
                    message: format!(
                        "the plan has {} parts, not {}: use --num-shards {}",
                        plan.parts, part.count, plan.parts
                    ),
                });
            }
            let previous = match opts.force {
                true => Vec::new(),
                false => crate::run::plan::load_record(out, part)?,
            };
            (
                part.shards(manifest.num_shards),
                Record::Part(part),
                previous,
            )
        }
        None => {
            let manifest_path = out.join(MANIFEST);
            let previous = match manifest_path.exists() && !opts.force {
                true => Manifest::load(&manifest_path)
                    .ok()
                    .filter(|m| m.same_plan(&manifest))
                    .map(|m| m.shards)
                    .unwrap_or_default(),
                false => Vec::new(),
            };
            (
                0..manifest.num_shards,
                Record::Manifest(manifest_path),
                previous,
            )
        }
    };
    let reusable: Vec<Option<ShardEntry>> = shards
        .clone()
        .map(|i| {
            previous
                .iter()
                .find(|s| s.index == i)
                .filter(|s| s.first_row == i * manifest.rows_per_shard && s.verify(out))
                .cloned()
        })
        .collect();
    remove_stale_files(out, &shards, opts.part.is_none())?;
    if let Some(part) = opts.part {
        crate::run::plan::remove_record_temps(out, part)?;
    }

    let reused = reusable.iter().flatten().count();
    manifest.shards = reusable.iter().flatten().cloned().collect();
    record.save(out, &mut manifest)?;

    let (per, total) = (manifest.rows_per_shard, corpus.pairs.len());
    let rows_of = |range: &std::ops::Range<usize>| {
        (range.end * per).min(total) - (range.start * per).min(total)
    };
    let bar = progress_bar(opts.progress, rows_of(&shards) as u64, "pairs");
    bar.inc(manifest.shards.iter().map(|s| s.rows as u64).sum());
    // Corpus-wide stage state is built only when some shard needs writing.
    let mut stages: Option<Sequence> = None;
    let mut written = 0;
    for (index, entry) in shards.clone().zip(&reusable) {
        if entry.is_some() {
            continue;
        }
        let stages = match &mut stages {
            Some(s) => s,
            None => {
                bar.set_message("building stages");
                let context = BuildContext {
                    cache_dir: &opts.cache_dir,
                    seed: pipeline.seed,
                    out_dir: out,
                    progress: opts.progress,
                    // A worker must see the plan's indexes, never build its own.
                    indexes: match opts.part {
                        Some(_) => IndexPolicy::ReuseOnly,
                        None => IndexPolicy::Build,
                    },
                };
                let built = stages.insert(Sequence::build(&pipeline.stages, &corpus, &context)?);
                fault::point("stages_built");
                built
            }
        };
        bar.set_message(shard_file(index));
        let entry = write_shard(pipeline, &corpus, stages, index, out)?;
        fault::point("shard_done");
        bar.inc(entry.rows as u64);
        manifest.shards.push(entry);
        manifest.shards.sort_by_key(|s| s.index);
        record.save(out, &mut manifest)?;
        written += 1;
    }
    bar.finish_and_clear();
    Ok(RunSummary {
        manifest: record.path(out),
        shards_written: written,
        shards_reused: reused,
        rows: rows_of(&shards),
        rejected: report.rejects.len(),
    })
}

/// Where a run records the shards it has written.
enum Record {
    /// The run's manifest: a whole run.
    Manifest(PathBuf),
    /// The part's record under `OUT/parts`: a worker (`cmcl merge` joins them).
    Part(Part),
}

impl Record {
    fn save(&self, out: &Path, manifest: &mut Manifest) -> Result<()> {
        match self {
            Record::Manifest(path) => {
                manifest.recompute_totals();
                manifest.save(path)
            }
            Record::Part(part) => save_record(out, *part, &manifest.shards),
        }
    }

    fn path(&self, out: &Path) -> PathBuf {
        match self {
            Record::Manifest(path) => path.clone(),
            Record::Part(part) => part.record_path(out),
        }
    }
}

/// `cmcl plan`: ingests, writes the rejects and `OUT/plan.json` for `parts` workers, and
/// builds every index the stages read.
pub fn plan_run(pipeline: &Pipeline, out: &Path, parts: usize, progress: bool) -> Result<Plan> {
    let _lock = OutputLock::acquire(out)?;
    if parts == 0 {
        return Err(Error::Config {
            path: PathBuf::from("--num-shards"),
            message: "a plan needs at least one part".into(),
        });
    }
    let (corpus, report) = ingest(&pipeline.inputs, &pipeline.ingest)?;
    let rejects_path = out.join(REJECTS_FILE);
    write_rejects(&rejects_path, &report)?;
    check_reject_share(&report, &pipeline.ingest, &rejects_path)?;
    let manifest = fresh_manifest(pipeline, &corpus, &report)?;
    let options = IndexOptions {
        progress,
        summarize: false,
        search: false,
    };
    build_indexes(pipeline, &corpus, out, options)?;
    let indexes = IndexManifest::load(&index_dir(out));
    let plan = Plan {
        parts,
        manifest,
        indexes,
    };
    plan.save(out)?;
    Ok(plan)
}

/// The manifest of this run before any shard is written.
fn fresh_manifest(pipeline: &Pipeline, corpus: &Corpus, report: &IngestReport) -> Result<Manifest> {
    let inputs = &pipeline.inputs;
    let mut files = Vec::new();
    for (role, sources) in [
        ("pairs", &inputs.pairs),
        ("image_corpus", &inputs.image_corpus),
        ("text_corpus", &inputs.text_corpus),
    ] {
        for source in sources {
            for file in source_files(source)? {
                files.push(input_file(role, &file)?);
            }
            if let Some(instances) = &source.instances {
                files.push(input_file("instances", instances)?);
            }
        }
    }
    let rows_per_shard = pipeline.output.rows_per_shard;
    let total_rows = corpus.pairs.len();
    Ok(Manifest {
        tool: "cmcl".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        build: crate::store::manifest::build_id(),
        schema_version: SCHEMA_VERSION.into(),
        pipeline: pipeline.name.clone(),
        config_hash: pipeline.content_hash(),
        seed: pipeline.seed,
        inputs: files,
        rows_per_shard,
        total_rows,
        num_shards: total_rows.div_ceil(rows_per_shard),
        ingest: IngestSummary {
            read: report.read,
            pairs: corpus.pairs.len(),
            corpus_images: corpus.images.len(),
            corpus_texts: corpus.texts.len(),
            rejected: report.counts(),
            rejects_file: REJECTS_FILE.into(),
        },
        shards: Vec::new(),
        stages: Stats::new(),
        complete: false,
    })
}

fn write_shard(
    pipeline: &Pipeline,
    corpus: &Corpus,
    stages: &Sequence,
    index: usize,
    out: &Path,
) -> Result<ShardEntry> {
    let per = pipeline.output.rows_per_shard;
    let rows = index * per..((index + 1) * per).min(corpus.pairs.len());
    let mut augmented = vec![Augmented::default(); rows.len()];
    let mut stats = Stats::new();
    stages.augment(Batch {
        corpus,
        rows: rows.clone(),
        out: &mut augmented,
        stats: &mut stats,
    })?;
    let batch = build_batch(&corpus.pairs[rows.clone()], &augmented)?;
    let file = shard_file(index);
    let path = out.join(&file);
    // Parquet first: the Arrow file is what marks the shard done.
    let parquet = match pipeline.output.parquet {
        true => {
            let name = parquet_file(&file);
            let parquet_path = out.join(&name);
            write_parquet(&parquet_path, &batch)?;
            Some(FileChecksum {
                file: name,
                sha256: sha256_file(&parquet_path)?,
            })
        }
        false => None,
    };
    write_ipc(&path, &batch)?;
    Ok(ShardEntry {
        index,
        file,
        first_row: rows.start,
        rows: rows.len(),
        bytes: std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len(),
        sha256: sha256_file(&path)?,
        parquet,
        stats,
    })
}

fn write_rejects(path: &Path, report: &IngestReport) -> Result<()> {
    write_atomic(path, |w| {
        for reject in &report.rejects {
            serde_json::to_writer(&mut *w, reject).map_err(|e| Error::io(path, e.into()))?;
            std::io::Write::write_all(w, b"\n").map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    })
}

/// Removes temp files that killed runs left of `shards`, and with `beyond`, shards past
/// the end of the plan. A worker touches only its own shards: the others' temp files
/// may belong to workers still running.
fn remove_stale_files(out: &Path, shards: &std::ops::Range<usize>, beyond: bool) -> Result<()> {
    let entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(out, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let temp = name.starts_with('.') && name.contains(".tmp-");
        let shard_index = name
            .trim_start_matches('.')
            .strip_prefix("shard-")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<usize>().ok());
        let stale = match shard_index {
            Some(i) if temp => shards.contains(&i),
            Some(i) => beyond && i >= shards.end,
            None => temp && beyond,
        };
        if stale {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}
