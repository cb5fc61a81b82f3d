//! The stage interface. A stage is built once per run from its config and the whole
//! corpus (corpus-wide state such as IDF tables lives in it), then asked to augment one
//! shard's rows at a time. A [`Sequence`] of stages is itself a stage.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::StageConfig;
use crate::error::Result;
use crate::record::Corpus;

/// One generated sample attached to a pair: a positive, a negative or a neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The text, for text items.
    pub text: Option<String>,
    /// The id of what it refers to: another pair's uid, an image or text id.
    pub ref_id: Option<String>,
    /// What it is, e.g. `tfidf`, `backtranslation`, `replace_attribute`.
    pub kind: String,
    /// The stage that made it.
    pub generator: String,
    /// Generator parameters and details as a JSON object (edit spans, rank, pivot, ...).
    pub params: String,
    /// Similarity or distance, as the kind documents.
    pub score: f32,
}

/// Everything the stages attached to one pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Augmented {
    pub positives: Vec<Item>,
    pub negatives: Vec<Item>,
    pub neighbours: Vec<Item>,
}

/// What one stage did: items produced, candidates rejected by reason, time taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub produced: u64,
    pub rejected: BTreeMap<String, u64>,
    pub seconds: f64,
    /// Anything else worth counting (cache hits, translator starts, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

impl StageStats {
    pub fn reject(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.rejected.entry(reason.to_string()).or_insert(0) += n;
        }
    }

    pub fn count(&mut self, counter: &str, n: u64) {
        *self.counters.entry(counter.to_string()).or_insert(0) += n;
    }

    pub fn add(&mut self, other: &StageStats) {
        self.produced += other.produced;
        for (reason, n) in &other.rejected {
            self.reject(reason, *n);
        }
        for (counter, n) in &other.counters {
            self.count(counter, *n);
        }
        self.seconds += other.seconds;
    }
}

/// Stage name -> statistics.
pub type Stats = BTreeMap<String, StageStats>;

pub trait Stage: Send + Sync {
    fn name(&self) -> &str;

    /// Adds this stage's items to `out[i]` for pair `rows.start + i` of the corpus.
    /// Output must depend only on the corpus, the config and the seed: never on thread
    /// count or on which other rows share the call.
    fn augment(
        &self,
        corpus: &Corpus,
        rows: Range<usize>,
        out: &mut [Augmented],
        stats: &mut Stats,
    ) -> Result<()>;
}

/// Stages run in order; itself a stage.
pub struct Sequence {
    stages: Vec<Box<dyn Stage>>,
}

/// What stages may need from the run besides their config and the corpus.
pub struct BuildContext<'a> {
    /// Where stages keep caches that outlive a run (translations, ...).
    pub cache_dir: &'a Path,
    /// The pipeline's seed, for stages that sample.
    pub seed: u64,
    /// The run's output folder (the retrieval indexes live in it).
    pub out_dir: &'a Path,
    /// Show progress bars for long set-up work (index builds).
    pub progress: bool,
    /// Whether a missing or stale index may be built.
    pub indexes: IndexPolicy,
}

/// Whether a stage may build the run's indexes when they are missing or stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexPolicy {
    /// Build what is missing: a whole run, `cmcl index`, `cmcl plan`.
    Build,
    /// Reuse only: a worker of a shard plan must see the indexes `cmcl plan` built, as
    /// every other worker does (a parallel build is not byte-reproducible).
    ReuseOnly,
}

impl Sequence {
    pub fn build(
        configs: &[StageConfig],
        corpus: &Corpus,
        context: &BuildContext,
    ) -> Result<Sequence> {
        let stages =
            configs
                .iter()
                .map(|config| -> Result<Box<dyn Stage>> {
                    Ok(match config {
                        StageConfig::Tfidf(c) => {
                            Box::new(crate::tfidf::TfidfStage::build(c.clone(), corpus, context)?)
                        }
                        StageConfig::Backtranslate(c) => {
                            Box::new(crate::backtranslate::BacktranslateStage::build(
                                c.clone(),
                                context.cache_dir,
                            )?)
                        }
                        StageConfig::SceneGraph(c) => {
                            Box::new(crate::scene_graph::negatives::SceneGraphStage::build(
                                c.clone(),
                                corpus,
                                context,
                            )?)
                        }
                        StageConfig::Retrieval(c) => Box::new(
                            crate::retrieval::RetrievalStage::build(c.clone(), corpus, context)?,
                        ),
                    })
                })
                .collect::<Result<_>>()?;
        Ok(Sequence { stages })
    }
}

impl Stage for Sequence {
    fn name(&self) -> &str {
        "sequence"
    }

    fn augment(
        &self,
        corpus: &Corpus,
        rows: Range<usize>,
        out: &mut [Augmented],
        stats: &mut Stats,
    ) -> Result<()> {
        for stage in &self.stages {
            crate::fault::stage(stage.name());
            let started = Instant::now();
            stage.augment(corpus, rows.clone(), out, stats)?;
            stats.entry(stage.name().to_string()).or_default().seconds +=
                started.elapsed().as_secs_f64();
        }
        Ok(())
    }
}
