//! Running a pipeline: `cmcl validate`, `augment`, `plan`, `merge` and `index`.

use std::path::PathBuf;

use anyhow::Context;

use super::RunArgs;
use cmcl::run::augment::{self, RunOptions};
use cmcl::run::config::Pipeline;
use cmcl::run::index::{build_indexes, IndexOptions};
use cmcl::run::plan::{self, Part};
use cmcl::store::layout::{index_dir, MANIFEST, PLAN_FILE, REJECTS_FILE};
use cmcl::store::lock::OutputLock;

#[derive(clap::Args)]
pub struct ValidateArgs {
    pipeline: PathBuf,
}

pub fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let p = Pipeline::load(&args.pipeline)?;
    p.check_image_inputs(&args.pipeline)?;
    println!(
        "{}: ok (pipeline {:?}, {} stage(s))",
        args.pipeline.display(),
        p.name,
        p.stages.len()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct AugmentArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Redo every shard, even those a previous run wrote and verified.
    #[arg(long)]
    force: bool,
    /// Folder for caches shared between runs, such as translations.
    #[arg(long, default_value = ".cache/cmcl")]
    cache_dir: PathBuf,
    /// Run as worker I of a shard plan (`cmcl plan`): write only part I's shards.
    /// Defaults to SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX when --num-shards is set.
    #[arg(long, value_name = "I", requires = "num_shards")]
    shard_index: Option<usize>,
    /// The number of parts of the shard plan (as given to `cmcl plan`).
    #[arg(long, value_name = "N")]
    num_shards: Option<usize>,
}

pub fn augment(args: AugmentArgs) -> anyhow::Result<()> {
    let (p, out_dir) = args.run.start()?;
    cmcl::embed::text::kernels_single_threaded();
    let part = args
        .num_shards
        .map(|count| Part::new(args.shard_index, count))
        .transpose()?;
    let options = RunOptions {
        out_dir: out_dir.clone(),
        force: args.force,
        progress: !args.run.no_progress,
        cache_dir: args.cache_dir,
        part,
    };
    let summary = augment::run(&p, &options)
        .with_context(|| format!("pipeline {}", args.run.pipeline.display()))?;
    eprintln!(
        "{} pairs ({} rejected, see {}): {} shard(s) written, {} reused; manifest {}",
        summary.rows,
        summary.rejected,
        out_dir.join(REJECTS_FILE).display(),
        summary.shards_written,
        summary.shards_reused,
        summary.manifest.display()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    run: RunArgs,
    /// The number of workers (parts).
    #[arg(long, value_name = "N")]
    num_shards: usize,
}

pub fn plan(args: PlanArgs) -> anyhow::Result<()> {
    let (p, out_dir) = args.run.start()?;
    cmcl::embed::text::kernels_single_threaded();
    let plan = augment::plan_run(&p, &out_dir, args.num_shards, !args.run.no_progress)
        .with_context(|| format!("pipeline {}", args.run.pipeline.display()))?;
    let shards = plan.manifest.num_shards;
    for index in 0..plan.parts {
        let part = Part {
            index,
            count: plan.parts,
        };
        let range = part.shards(shards);
        println!(
            "part {index}: shards {}..{} ({} shards)",
            range.start,
            range.end,
            range.len()
        );
    }
    eprintln!(
        "{} pairs in {shards} shards for {} workers; plan in {}. Next, for each I: \
         cmcl augment --pipeline {} --out {} --shard-index I --num-shards {}; then cmcl merge",
        plan.manifest.total_rows,
        plan.parts,
        out_dir.join(PLAN_FILE).display(),
        args.run.pipeline.display(),
        out_dir.display(),
        plan.parts
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    run: RunArgs,
}

pub fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let (_, out_dir) = args.run.start()?;
    let _lock = OutputLock::acquire(&out_dir)?;
    let manifest = plan::merge(&out_dir)?;
    eprintln!(
        "{} shards, {} pairs: merged into {}",
        manifest.shards.len(),
        manifest.total_rows,
        out_dir.join(MANIFEST).display()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct IndexArgs {
    #[command(flatten)]
    run: RunArgs,
}

pub fn index(args: IndexArgs) -> anyhow::Result<()> {
    let (p, out_dir) = args.run.start()?;
    cmcl::embed::text::kernels_single_threaded();
    let (corpus, _) = cmcl::ingest::ingest(&p.inputs, &p.ingest)?;
    let _lock = OutputLock::acquire(&out_dir)?;
    let options = IndexOptions {
        progress: !args.run.no_progress,
        summarize: true,
        search: true,
    };
    for line in build_indexes(&p, &corpus, &out_dir, options)? {
        eprintln!("{line}");
    }
    eprintln!("indexes are in {}", index_dir(&out_dir).display());
    Ok(())
}
