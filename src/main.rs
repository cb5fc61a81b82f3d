//! The `cmcl` command line. Library errors are typed; here they become `anyhow` reports.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use cmcl::augment::{self, RunOptions};
use cmcl::config::Pipeline;
use cmcl::stage::IndexPolicy;
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
        /// Run as worker I of a shard plan (`cmcl plan`): write only part I's shards.
        /// Defaults to SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX when --num-shards is set.
        #[arg(long, value_name = "I", requires = "num_shards")]
        shard_index: Option<usize>,
        /// The number of parts of the shard plan (as given to `cmcl plan`).
        #[arg(long, value_name = "N")]
        num_shards: Option<usize>,
    },
    /// Plan a run as N worker processes (a Slurm array, a Kubernetes Indexed Job, ...).
    ///
    /// Ingests once, writes OUT/plan.json and the rejects, and builds every index the
    /// stages read, so that no worker builds one. Then run `cmcl augment --shard-index I
    /// --num-shards N` for each I (in any order, anywhere that sees OUT), and `cmcl
    /// merge`. N workers write the same bytes as one process. Templates: deploy/.
    Plan {
        #[command(flatten)]
        run: RunArgs,
        /// The number of workers (parts).
        #[arg(long, value_name = "N")]
        num_shards: usize,
    },
    /// Join the parts of a shard plan into OUT/manifest.json.
    ///
    /// Checks that every shard is present and matches the checksum its worker recorded;
    /// otherwise names each missing or changed shard and the part to rerun.
    Merge {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Build a pipeline's indexes under OUT/index ahead of `augment`, which reuses them.
    ///
    /// Builds a BM25 index of every text (tantivy; `cmcl search` and `method = "bm25"` use it)
    /// and, with a `retrieval` stage, text and image HNSW indexes. Unchanged inputs:
    /// nothing to do. Prints what was built and how much the image neighbours' object
    /// labels overlap, against random pairs.
    Index {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Search a run's BM25 text index (captions and text corpus) from the shell.
    ///
    /// INDEX is a run's output folder, its index folder, or the BM25 folder itself.
    /// Prints rank, BM25 score, source (caption: id is the pair uid; text: the text id),
    /// id and text, one hit a line.
    Search {
        index: PathBuf,
        query: String,
        /// Hits to show.
        #[arg(long, short = 'k', default_value_t = 10)]
        k: usize,
        /// One JSON object a line instead of columns.
        #[arg(long)]
        json: bool,
    },
    /// Train the bundled dual encoder on a run's shards with the CMCL loss (the
    /// pipeline's `[train]` table), evaluating on held-out images after every epoch.
    ///
    /// Writes OUT/train/RUN/: config.json, epoch-NNNN/{model,optimizer}.safetensors,
    /// state.json, metrics.jsonl, metrics.csv and metrics.svg. Re-running resumes from the
    /// last finished epoch. RUN defaults to "cmcl", or "without-X" for each --without X.
    Train {
        #[command(flatten)]
        run: RunArgs,
        /// Switch a source of samples off (an ablation); repeatable.
        #[arg(long, value_enum)]
        without: Vec<cmcl::train::loss::Source>,
        /// Name of the run folder under OUT/train.
        #[arg(long)]
        name: Option<String>,
        /// Start over even when a checkpoint exists.
        #[arg(long)]
        fresh: bool,
        /// Stop after this many more epochs; the next run resumes (for time-limited jobs).
        #[arg(long)]
        stop_after: Option<usize>,
    },
    /// Evaluate every training run under OUT/train (or those named) on the held-out
    /// images and print one table: recall@1/5 both ways and hard-negative accuracy per
    /// kind.
    Eval {
        #[command(flatten)]
        run: RunArgs,
        /// Runs to show [default: all under OUT/train].
        #[arg(long)]
        runs: Vec<String>,
        /// Also write the table as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Which images to score: the held-out ones, or the training ones (how far
        /// held-out scores trail those shows how much the model memorised).
        #[arg(long, value_enum, default_value = "validation")]
        split: cmcl::train::data::Split,
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
    /// Write a static HTML report of a run folder, to open in a browser from disk.
    ///
    /// index.html: the manifest (ingest, shards, each stage's counts, rejection reasons),
    /// items per kind over every shard, and a histogram of each kind's scores.
    /// samples.html: a seeded random sample of pairs with image thumbnails, positives,
    /// negatives with the changed words marked, and neighbours; filter by kind, score
    /// range and words. Shards are read one at a time, so any run size fits in memory.
    Report {
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
    },
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
    // A write past the file-size limit (ulimit -f) then fails with an error naming the
    // file, instead of the signal killing the process.
    #[cfg(unix)]
    // SAFETY: setting a signal to be ignored, before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
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
            shard_index,
            num_shards,
        } => {
            let (p, out_dir) = run.start()?;
            let pipeline = &run.pipeline;
            let part = num_shards
                .map(|count| cmcl::plan::Part::new(shard_index, count))
                .transpose()?;
            let options = RunOptions {
                out_dir: out_dir.clone(),
                force,
                progress: !run.no_progress,
                cache_dir,
                part,
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
        Command::Plan { run, num_shards } => {
            let (p, out_dir) = run.start()?;
            let plan = augment::plan_run(&p, &out_dir, num_shards, !run.no_progress)
                .with_context(|| format!("pipeline {}", run.pipeline.display()))?;
            let shards = plan.manifest.num_shards;
            for index in 0..plan.parts {
                let part = cmcl::plan::Part {
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
                out_dir.join(cmcl::plan::PLAN_FILE).display(),
                run.pipeline.display(),
                out_dir.display(),
                plan.parts
            );
        }
        Command::Merge { run } => {
            let (_, out_dir) = run.start()?;
            let _lock = augment::OutputLock::acquire(&out_dir)?;
            let manifest = cmcl::plan::merge(&out_dir)?;
            eprintln!(
                "{} shards, {} pairs: merged into {}",
                manifest.shards.len(),
                manifest.total_rows,
                out_dir.join(cmcl::manifest::FILE_NAME).display()
            );
        }
        Command::Index { run } => {
            let (p, out_dir) = run.start()?;
            let retrieval = p.stages.iter().find_map(|s| match s {
                cmcl::config::StageConfig::Retrieval(c) => Some(c),
                _ => None,
            });
            let (corpus, _) = cmcl::ingest::ingest(&p.inputs, &p.ingest)?;
            let dir = cmcl::retrieval::index::index_dir(&out_dir);
            let _lock = augment::OutputLock::acquire(&out_dir)?;
            let (bm25, built) = cmcl::bm25::Bm25Index::build_or_open(
                &dir,
                &corpus,
                !run.no_progress,
                IndexPolicy::Build,
            )?;
            match built {
                Some(r) => eprintln!(
                    "bm25 index: {} texts, built in {:.1} s",
                    r.count, r.build_seconds
                ),
                None => eprintln!("bm25 index: {} texts, unchanged, reused", bm25.len()),
            }
            for stage in &p.stages {
                match stage {
                    cmcl::config::StageConfig::Tfidf(c)
                        if c.method == cmcl::tfidf::Method::Exact =>
                    {
                        let index = cmcl::tfidf::TfidfIndex::build_or_open(
                            c,
                            &corpus,
                            &dir,
                            IndexPolicy::Build,
                        )?;
                        eprintln!(
                            "tfidf index: {} captions, {} distinct",
                            index.len(),
                            index.distinct()
                        );
                    }
                    cmcl::config::StageConfig::SceneGraph(c) => {
                        cmcl::scene_graph::negatives::language_model(
                            &c.language_model,
                            &corpus,
                            &dir,
                            IndexPolicy::Build,
                        )?;
                        eprintln!(
                            "caption language model: {} texts",
                            corpus.pairs.len() + corpus.texts.len()
                        );
                    }
                    _ => {}
                }
            }
            let Some(config) = retrieval else {
                eprintln!(
                    "no retrieval stage: no HNSW indexes; indexes are in {}",
                    dir.display()
                );
                return Ok(());
            };
            let indexes = cmcl::retrieval::index::build_or_open(
                config,
                &corpus,
                &dir,
                !run.no_progress,
                IndexPolicy::Build,
            )?;
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
        Command::Search {
            index,
            query,
            k,
            json,
        } => {
            let index = cmcl::bm25::Bm25Index::open(&index)?;
            let hits = index.search(&query, k)?;
            if hits.is_empty() {
                eprintln!(
                    "no text of {} texts shares a term with the query",
                    index.len()
                );
            }
            for hit in hits {
                if json {
                    println!("{}", serde_json::to_string(&hit)?);
                } else {
                    println!(
                        "{:>3}  {:>7.3}  {:<7}  {}  {}",
                        hit.rank, hit.score, hit.source, hit.id, hit.text
                    );
                }
            }
        }
        Command::Train {
            run,
            without,
            name,
            fresh,
            stop_after,
        } => {
            let (p, out_dir) = run.start()?;
            let mut config = p.train.clone().unwrap_or_default();
            let mut parts: Vec<String> = Vec::new();
            for source in &without {
                config.loss.without(*source);
                parts.extend(
                    clap::ValueEnum::to_possible_value(source).map(|v| v.get_name().into()),
                );
            }
            let name = name.unwrap_or_else(|| match parts.is_empty() {
                true => "cmcl".into(),
                false => format!("without-{}", parts.join("-")),
            });
            let options = cmcl::train::TrainOptions {
                run_dir: out_dir.join("train").join(&name),
                shards: out_dir.clone(),
                fresh,
                stop_after,
                progress: !run.no_progress,
            };
            let started = std::time::Instant::now();
            let last = cmcl::train::train(&config, &options)?;
            match last {
                Some(m) => eprintln!(
                    "{name}: epoch {} in {:.0} s: loss {:.3}, image->text R@5 {:.3}, text->image R@5 {:.3}",
                    m.epoch,
                    started.elapsed().as_secs_f64(),
                    m.train_loss,
                    m.eval.image_to_text[1],
                    m.eval.text_to_image[1]
                ),
                None => eprintln!("{name}: already trained for every epoch"),
            }
            eprintln!("run is in {}", options.run_dir.display());
        }
        Command::Eval {
            run,
            runs,
            json,
            split,
        } => {
            let (_, out_dir) = run.start()?;
            let table = cmcl::train::compare(&out_dir.join("train"), &runs, split)?;
            print!("{}", table.markdown());
            if let Some(path) = json {
                cmcl::fsutil::write_bytes_atomic(&path, &serde_json::to_vec_pretty(&table)?)?;
            }
        }
        Command::Inspect { path, rows } => print!("{}", cmcl::inspect::inspect(&path, rows)?),
        Command::Stats { dir } => print!("{}", cmcl::inspect::stats(&dir)?),
        Command::Report {
            dir,
            out,
            samples,
            seed,
            no_progress,
        } => {
            let options = cmcl::report::ReportOptions {
                out: out.unwrap_or_else(|| dir.join(cmcl::report::DIR)),
                samples,
                seed,
                progress: !no_progress,
            };
            let done = cmcl::report::write(&dir, &options)?;
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
        }
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
