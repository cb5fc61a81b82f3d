//! Looking at a run: `cmcl inspect`, `cmcl stats` and `cmcl report`.

use std::path::PathBuf;

use cmcl::core::fs::write_json_atomic;
use cmcl::report::{self, gold, inspect, ReportOptions};
use cmcl::store::layout::REPORT_DIR;
use cmcl::text::parse::lexicon::DEFAULT_WORDNET_DIR;
use cmcl::text::parse::Parser;

#[derive(clap::Args)]
pub struct InspectArgs {
    path: PathBuf,
    /// Rows to show.
    #[arg(long, short = 'n', default_value_t = 3)]
    rows: usize,
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    print!("{}", inspect::inspect(&args.path, args.rows)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct StatsArgs {
    dir: PathBuf,
}

pub fn stats(args: StatsArgs) -> anyhow::Result<()> {
    print!("{}", inspect::stats(&args.dir)?);
    Ok(())
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// The run folder (holds manifest.json and the shards).
    dir: PathBuf,
    /// Where to write the report [default: DIR/report]. Replaced when complete.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Pairs in the sample page.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Seed of the sample [default: the run's seed].
    #[arg(long)]
    seed: Option<u64>,
    /// Hide the progress bar.
    #[arg(long)]
    no_progress: bool,
}

pub fn report(args: ReportArgs) -> anyhow::Result<()> {
    let options = ReportOptions {
        out: args.out.unwrap_or_else(|| args.dir.join(REPORT_DIR)),
        samples: args.samples,
        seed: args.seed,
        progress: !args.no_progress,
    };
    let done = report::write(&args.dir, &options)?;
    println!(
        "report of {} pairs ({} sampled, {} thumbnails) in {}",
        done.pairs,
        done.sampled,
        done.thumbnails,
        options.out.join("index.html").display()
    );
    if !done.unreadable_images.is_empty() {
        println!(
            "{} images could not be read; the summary page lists them",
            done.unreadable_images.len()
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct CheckNegativesArgs {
    /// The run folder (holds manifest.json and the shards), made from `cmcl synth` data.
    dir: PathBuf,
    /// The gold scenes `cmcl synth` wrote beside pairs.jsonl.
    #[arg(long, default_value = "data/synth/scenes.jsonl")]
    scenes: PathBuf,
    /// WordNet 3.0 database folder (Debian: wordnet-base).
    #[arg(long, default_value = DEFAULT_WORDNET_DIR)]
    wordnet: PathBuf,
    /// Also write the counts as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn check_negatives(args: CheckNegativesArgs) -> anyhow::Result<()> {
    let parser = Parser::load(&args.wordnet)?;
    let check = gold::check_negatives(&args.dir, &args.scenes, &parser)?;
    print!("{check}");
    if let Some(path) = args.json {
        write_json_atomic(&path, &check)?;
    }
    Ok(())
}
