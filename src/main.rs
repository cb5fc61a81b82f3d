//! The `cmcl` command line: parses the arguments and hands each subcommand to its
//! function in `cli/`.

mod cli;

use clap::{Parser, Subcommand};

use cli::{corpus, inspect, parse, pipeline, train};

#[derive(Parser)]
#[command(
    name = "cmcl",
    version,
    about = "Turn image-caption data into training samples for cross-modal contrastive learning",
    long_about = "Turn image-caption data into training samples for cross-modal contrastive learning \
(UNIMO, Li et al. 2021).\n\nA pipeline (TOML, see pipelines/) names the inputs and an ordered list of \
stages; `cmcl augment` runs it and writes Arrow IPC shards plus manifest.json into the output folder. \
Re-running resumes: shards whose checksum matches the manifest, made by the same cmcl build, are kept."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate the synthetic default dataset (rendered shape scenes with captions and gold scene graphs).
    Synth(corpus::SynthArgs),
    /// Check a pipeline file (syntax, unknown fields, values) without running it.
    Validate(pipeline::ValidateArgs),
    /// Run a pipeline: ingest, stages, shards and manifest. Resumes an interrupted run.
    Augment(pipeline::AugmentArgs),
    /// Plan a run as N worker processes (a Slurm array, a Kubernetes Indexed Job, ...).
    ///
    /// Ingests once, writes OUT/plan.json and the rejects, and builds every index the
    /// stages read, so that no worker builds one. Then run `cmcl augment --shard-index I
    /// --num-shards N` for each I (in any order, anywhere that sees OUT), and `cmcl
    /// merge`. N workers write the same bytes as one process. Templates: deploy/.
    Plan(pipeline::PlanArgs),
    /// Join the parts of a shard plan into OUT/manifest.json.
    ///
    /// Checks that every shard is present and matches the checksum its worker recorded;
    /// otherwise names each missing or changed shard and the part to rerun.
    Merge(pipeline::MergeArgs),
    /// Build a pipeline's indexes under OUT/index ahead of `augment`, which reuses them.
    ///
    /// Builds a BM25 index of every text (tantivy; `cmcl search` and `method = "bm25"` use it)
    /// and, with a `retrieval` stage, text and image HNSW indexes. Unchanged inputs:
    /// nothing to do. Prints what was built and how much the image neighbours' object
    /// labels overlap, against random pairs.
    Index(pipeline::IndexArgs),
    /// Search a run's BM25 text index (captions and text corpus) from the shell.
    ///
    /// INDEX is a run's output folder, its index folder, or the BM25 folder itself.
    /// Prints rank, BM25 score, source (caption: id is the pair uid; text: the text id),
    /// id and text, one hit a line.
    Search(corpus::SearchArgs),
    /// Train the bundled dual encoder on a run's shards with the CMCL loss (the
    /// pipeline's `[train]` table), evaluating on held-out images after every epoch.
    ///
    /// Writes OUT/train/RUN/: config.json, epoch-NNNN/{model,optimizer}.safetensors,
    /// state.json, metrics.jsonl, metrics.csv and metrics.svg. Re-running resumes from the
    /// last finished epoch. RUN defaults to "cmcl", or "without-X" for each --without X.
    Train(train::TrainArgs),
    /// Evaluate every training run under OUT/train (or those named) on the held-out
    /// images and print one table: recall@1/5 both ways and hard-negative accuracy per
    /// kind.
    Eval(train::EvalArgs),
    /// Print a shard's schema and first rows (a shard file, or a run folder).
    Inspect(inspect::InspectArgs),
    /// Summarise a run folder's manifest: inputs, rejects, shards, per-stage statistics.
    Stats(inspect::StatsArgs),
    /// Count a synthetic-set run's negatives that are true of their own image.
    ///
    /// Parses every negative (and, as a check of the judge, every anchor caption) and
    /// reads it against the image's gold scene from `cmcl synth` (scenes.jsonl). Prints,
    /// per kind, how many are true, false and unknown (outside the scene vocabulary), with
    /// examples of true ones.
    CheckNegatives(inspect::CheckNegativesArgs),
    /// Write a static HTML report of a run folder, to open in a browser from disk.
    ///
    /// index.html: the manifest (ingest, shards, each stage's counts, rejection reasons),
    /// items per kind over every shard, and a histogram of each kind's scores.
    /// samples.html: a seeded random sample of pairs with image thumbnails, positives,
    /// negatives with the changed words marked, and neighbours; filter by kind, score
    /// range and words. Shards are read one at a time, so any run size fits in memory.
    Report(inspect::ReportArgs),
    /// Score the scene-graph parser on gold graphs: FACTUAL-format CSV
    /// (image_id,region_id,caption,scene_graph) or cmcl synth JSONL (pairs.jsonl).
    ///
    /// Prints triple precision, recall and F1 (all, attributes, relations) and the exact
    /// set-match rate; the matching rule is in ARCHITECTURE.md. With --predictions, scores
    /// another parser's output (same CSV format, same rows) by the same rule instead.
    EvalParser(parse::EvalParserArgs),
    /// Print the scene graph of each caption given (or of each line on standard input).
    Parse(parse::ParseArgs),
}

fn main() -> anyhow::Result<()> {
    // A write past the file-size limit (ulimit -f) then fails with an error naming the
    // file, instead of the signal killing the process.
    #[cfg(unix)]
    // SAFETY: setting a signal to be ignored, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    match Cli::parse().command {
        Command::Synth(args) => corpus::synth(args),
        Command::Validate(args) => pipeline::validate(args),
        Command::Augment(args) => pipeline::augment(args),
        Command::Plan(args) => pipeline::plan(args),
        Command::Merge(args) => pipeline::merge(args),
        Command::Index(args) => pipeline::index(args),
        Command::Search(args) => corpus::search(args),
        Command::Train(args) => train::train(args),
        Command::Eval(args) => train::eval(args),
        Command::Inspect(args) => inspect::inspect(args),
        Command::Stats(args) => inspect::stats(args),
        Command::Report(args) => inspect::report(args),
        Command::CheckNegatives(args) => inspect::check_negatives(args),
        Command::EvalParser(args) => parse::eval_parser(args),
        Command::Parse(args) => parse::parse(args),
    }
}
