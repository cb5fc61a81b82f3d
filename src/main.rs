//! The `cmcl` command line. Library errors are typed; here they become `anyhow` reports.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cmcl::augment::{self, RunOptions};
use cmcl::config::Pipeline;
use cmcl::synth::{self, SynthConfig};

#[derive(Parser)]
#[command(
    name = "cmcl",
    version,
    about = "Turn image-caption data into training samples for cross-modal contrastive learning",
    long_about = "Turn image-caption data into training samples for cross-modal contrastive learning \
(UNIMO, Li et al. 2021).\n\nA pipeline (TOML, see pipelines/) names the inputs and an ordered list of \
stages; `cmcl augment` runs it and writes Arrow IPC shards plus manifest.json into the output folder. \
Re-running resumes: shards whose checksum matches the manifest are kept."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What a pipeline run needs: the pipeline, where it writes, and how it runs.
#[derive(clap::Args)]
struct RunArgs {
    /// Pipeline TOML file.
    #[arg(long)]
    pipeline: PathBuf,
    /// Output folder [default: out/<pipeline name>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads [default: all cores]. Output bytes do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Hide the progress bars.
    #[arg(long)]
    no_progress: bool,
}

impl RunArgs {
    /// The loaded pipeline and its output folder, with the thread pool sized.
    fn start(&self) -> anyhow::Result<(Pipeline, PathBuf)> {
        let p = Pipeline::load(&self.pipeline)?;
        if let Some(n) = self.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .context("setting up the thread pool")?;
        }
        let out_dir = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("out").join(&p.name));
        Ok((p, out_dir))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Generate the synthetic default dataset (rendered shape scenes with captions and gold scene graphs).
    Synth {
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = SynthConfig::default().seed)]
        seed: u64,
        /// Captioned images to render.
        #[arg(long, default_value_t = SynthConfig::default().images)]
        images: usize,
        /// Images of the image-only corpus.
        #[arg(long, default_value_t = SynthConfig::default().corpus_images)]
        corpus_images: usize,
        /// Texts of the text-only corpus.
        #[arg(long, default_value_t = SynthConfig::default().corpus_texts)]
        corpus_texts: usize,
    },
    /// Check a pipeline file (syntax, unknown fields, values) without running it.
    Validate { pipeline: PathBuf },
    /// Run a pipeline: ingest, stages, shards and manifest. Resumes an interrupted run.
    Augment {
        #[command(flatten)]
        run: RunArgs,
        /// Redo every shard, even those a previous run wrote and verified.
        #[arg(long)]
        force: bool,
        /// Folder for caches shared between runs, such as translations.
        #[arg(long, default_value = ".cache/cmcl")]
        cache_dir: PathBuf,
    },
    /// Build the retrieval indexes of a pipeline's `retrieval` stage (text and image HNSW
    /// under OUT/index) ahead of `augment`, which reuses them. Unchanged inputs: nothing
    /// to do. Prints what was built and how much the image neighbours' object labels
    /// overlap, against random pairs.
    Index {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Print a shard's schema and first rows (a shard file, or a run folder).
    Inspect {
        path: PathBuf,
        /// Rows to show.
        #[arg(long, short = 'n', default_value_t = 3)]
        rows: usize,
    },
    /// Summarise a run folder's manifest: inputs, rejects, shards, per-stage statistics.
    Stats { dir: PathBuf },
    /// Score the scene-graph parser on gold graphs: FACTUAL-format CSV
    /// (image_id,region_id,caption,scene_graph) or cmcl synth JSONL (pairs.jsonl).
    ///
    /// Prints triple precision, recall and F1 (all, attributes, relations) and the exact
    /// set-match rate; the matching rule is in ARCHITECTURE.md. With --predictions, scores
    /// another parser's output (same CSV format, same rows) by the same rule instead.
    EvalParser {
        gold: PathBuf,
        /// Another parser's predictions to score instead of parsing.
        #[arg(long)]
        predictions: Option<PathBuf>,
        /// WordNet 3.0 database folder (Debian: wordnet-base).
        #[arg(long, default_value = cmcl::scene_graph::lexicon::DEFAULT_WORDNET_DIR)]
        wordnet: PathBuf,
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Print the scene graph of each caption given (or of each line on standard input).
    Parse {
        captions: Vec<String>,
        #[arg(long, default_value = cmcl::scene_graph::lexicon::DEFAULT_WORDNET_DIR)]
        wordnet: PathBuf,
        /// Also print each word's tag, to see why a caption parsed as it did.
        #[arg(long)]
        tags: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Synth {
            out,
            seed,
            images,
            corpus_images,
            corpus_texts,
        } => {
            let config = SynthConfig {
                seed,
                images,
                corpus_images,
                corpus_texts,
                ..SynthConfig::default()
            };
            let summary = synth::generate(&config, &out)?;
            eprintln!(
                "wrote {} pairs over {} images, {} corpus images, {} corpus texts to {}",
                summary.pairs,
                summary.images,
                summary.corpus_images,
                summary.corpus_texts,
                out.display()
            );
        }
        Command::Validate { pipeline } => {
            let p = Pipeline::load(&pipeline)?;
            println!(
                "{}: ok (pipeline {:?}, {} stage(s))",
                pipeline.display(),
                p.name,
                p.stages.len()
            );
        }
        Command::Augment {
            run,
            force,
            cache_dir,
        } => {
            let (p, out_dir) = run.start()?;
            let pipeline = &run.pipeline;
            let options = RunOptions {
                out_dir: out_dir.clone(),
                force,
                progress: !run.no_progress,
                cache_dir,
            };
            let summary = augment::run(&p, &options)
                .with_context(|| format!("pipeline {}", pipeline.display()))?;
            eprintln!(
                "{} pairs ({} rejected, see {}): {} shard(s) written, {} reused; manifest {}",
                summary.rows,
                summary.rejected,
                out_dir.join(augment::REJECTS_FILE).display(),
                summary.shards_written,
                summary.shards_reused,
                summary.manifest.display()
            );
        }
        Command::Index { run } => {
            let (p, out_dir) = run.start()?;
            let config = p
                .stages
                .iter()
                .find_map(|s| match s {
                    cmcl::config::StageConfig::Retrieval(c) => Some(c),
                    _ => None,
                })
                .with_context(|| format!("{} has no retrieval stage", run.pipeline.display()))?;
            let (corpus, _) = cmcl::ingest::ingest(&p.inputs, &p.ingest)?;
            let dir = cmcl::retrieval::index::index_dir(&out_dir);
            let _lock = augment::OutputLock::acquire(&out_dir)?;
            let indexes =
                cmcl::retrieval::index::build_or_open(config, &corpus, &dir, !run.no_progress)?;
            for (name, record) in [
                ("text", &indexes.manifest.text),
                ("image", &indexes.manifest.image),
            ] {
                if let Some(r) = record {
                    let how = match indexes.built.contains(&name) {
                        true => format!("built in {:.1} s", r.build_seconds),
                        false => "unchanged, reused".to_string(),
                    };
                    eprintln!(
                        "{name} index: {} vectors of {} ({}), {how}",
                        r.count, r.dim, r.embedding
                    );
                }
            }
            let overlap = cmcl::retrieval::object_overlap(
                &indexes.entries,
                &corpus,
                &indexes.image,
                config.image_k.max(1),
                config.ef,
                p.seed,
            )?;
            if let Some((near, random)) = overlap {
                eprintln!(
                    "object labels: mean Jaccard {near:.3} with the {} nearest images, {random:.3} for random pairs",
                    config.image_k.max(1)
                );
            }
            eprintln!("indexes are in {}", dir.display());
        }
        Command::Inspect { path, rows } => print!("{}", cmcl::inspect::inspect(&path, rows)?),
        Command::Stats { dir } => print!("{}", cmcl::inspect::stats(&dir)?),
        Command::EvalParser {
            gold,
            predictions,
            wordnet,
            json,
        } => {
            use cmcl::scene_graph::{eval, Lexicon, Parser};
            let captions = eval::read_gold(&gold)?;
            let report = match predictions {
                Some(path) => {
                    let lexicon = Lexicon::load(&wordnet)?;
                    let predicted = eval::read_predictions(&path, &captions)?;
                    eval::score(&lexicon, &captions, &predicted)
                }
                None => eval::evaluate(&Parser::load(&wordnet)?, &captions),
            };
            println!("{report}");
            if let Some(path) = json {
                let text = serde_json::to_vec_pretty(&report)?;
                cmcl::fsutil::write_atomic(&path, |f| {
                    std::io::Write::write_all(f, &text).map_err(|e| cmcl::Error::io(&path, e))
                })?;
            }
        }
        Command::Parse {
            captions,
            wordnet,
            tags,
        } => {
            let parser = cmcl::scene_graph::Parser::load(&wordnet)?;
            let captions = if captions.is_empty() {
                std::io::stdin().lines().collect::<Result<Vec<_>, _>>()?
            } else {
                captions
            };
            for caption in captions {
                let graph = parser.parse(&caption);
                let triples: Vec<String> = graph
                    .triples()
                    .iter()
                    .map(|t| format!("( {} , {} , {} )", t[0], t[1], t[2]))
                    .collect();
                println!("{caption}\t{}", triples.join(" , "));
                if tags {
                    let tokens = cmcl::scene_graph::tagger::tag(parser.lexicon(), &caption);
                    let tagged: Vec<String> = tokens
                        .iter()
                        .map(|t| format!("{}/{:?}", t.word, t.tag))
                        .collect();
                    println!("  {}", tagged.join(" "));
                }
            }
        }
    }
    Ok(())
}
