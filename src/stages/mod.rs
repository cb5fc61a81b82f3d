//! Stages: what turns a corpus into samples. A stage is built once per run from its
//! config and the whole corpus (corpus-wide state such as IDF tables lives in it), then
//! asked to augment one shard's rows at a time. A [`Sequence`] of stages is itself a
//! stage.
//!
//! Each stage is one folder here; [`StageConfig`] is the only list of them. A stage's
//! config implements [`StageSpec`] (validation, paths, build, indexes), so adding
//! a stage is its folder plus one line in the `stages!` list below (which also declares
//! the folder's module). A stage never
//! imports a sibling: what two stages share lives in a lower layer.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::core::error::Result;
use crate::core::fault;
use crate::core::record::Corpus;
use crate::core::sample::{Augmented, Stats};
use crate::embed::image::ImageNeed;
use crate::store::artifact::IndexPolicy;

pub mod caption_lm;

pub trait Stage: Send + Sync {
    fn name(&self) -> &str;

    /// Adds this stage's items to `out[i]` for pair `rows.start + i` of the corpus.
    /// Output must depend only on the corpus, the config and the seed: never on thread
    /// count or on which other rows share the call.
    fn augment(&self, batch: Batch) -> Result<()>;
}

/// One call's work: pairs `rows` of the corpus, the items attached to them so far
/// (`out[i]` is pair `rows.start + i`), and the run's statistics by stage name.
pub struct Batch<'a> {
    pub corpus: &'a Corpus,
    pub rows: Range<usize>,
    pub out: &'a mut [Augmented],
    pub stats: &'a mut Stats,
}

/// What every stage's config provides; implemented once in each stage's folder.
pub trait StageSpec {
    /// Checks the settings; the message names the field at fault.
    fn validate(&self) -> std::result::Result<(), String>;

    /// What the stage reads of the pairs' images, if anything; checked against the
    /// inputs before a run reads them.
    fn image_need(&self) -> Option<ImageNeed> {
        None
    }

    /// The settings that are paths, resolved against the pipeline file's folder.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        Vec::new()
    }

    /// The stage, ready to augment rows.
    fn build(&self, corpus: &Corpus, context: &BuildContext) -> Result<Box<dyn Stage>>;

    /// Builds, or checks and keeps, the corpus-wide artifacts the stage reads (for `cmcl
    /// index` and `cmcl plan`, so that no worker builds one), and says what they hold,
    /// a line each.
    fn build_indexes(&self, _corpus: &Corpus, _run: &IndexRun) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// A built stage behind the trait, for [`StageSpec::build`].
pub fn boxed<S: Stage + 'static>(stage: S) -> Box<dyn Stage> {
    Box::new(stage)
}

/// How [`StageSpec::build_indexes`] runs.
pub struct IndexRun<'a> {
    /// The run's index folder.
    pub dir: &'a Path,
    pub progress: bool,
    /// The pipeline's seed.
    pub seed: u64,
    /// Also measure what the artifacts are worth (slower; `cmcl index` asks for it).
    pub summarize: bool,
}

/// Declares each stage's module (its folder), [`StageConfig`] with one variant a stage,
/// and the one match over it.
macro_rules! stages {
    ($($(#[$doc:meta])* $module:ident::$variant:ident($config:ident),)*) => {
        $(pub mod $module;)*

        /// A stage and its typed settings, tagged by `type` as in `[[stages]] type = "tfidf"`.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum StageConfig {
            $($(#[$doc])* $variant($module::$config),)*
        }

        impl StageConfig {
            /// The stage's `type` in the pipeline (its folder's name).
            pub fn name(&self) -> &'static str {
                match self {
                    $(StageConfig::$variant(_) => stringify!($module),)*
                }
            }

            pub fn spec(&self) -> &dyn StageSpec {
                match self {
                    $(StageConfig::$variant(config) => config,)*
                }
            }

            pub fn spec_mut(&mut self) -> &mut dyn StageSpec {
                match self {
                    $(StageConfig::$variant(config) => config,)*
                }
            }
        }
    };
}

stages! {
    /// Sentence-level hard negatives: other images' captions by TF-IDF (or BM25).
    tfidf::Tfidf(TfidfConfig),
    /// Positives: round trips through pivot languages that keep the meaning.
    backtranslate::Backtranslate(BacktranslateConfig),
    /// Phrase- and word-level hard negatives: one scene-graph node replaced or swapped.
    scene_graph::SceneGraph(SceneGraphConfig),
    /// Extra positive context: nearest images and texts.
    retrieval::Retrieval(RetrievalConfig),
    /// Positives: the other captions of the same image.
    siblings::Siblings(SiblingsConfig),
    /// Positives: the caption in another construction with the same scene graph.
    rewrite::Rewrite(RewriteConfig),
}

/// What stages may need from the run besides their config and the corpus.
pub struct BuildContext<'a> {
    /// Where stages keep caches that outlive a run (translations, ...).
    pub cache_dir: &'a Path,
    /// The pipeline's seed, for stages that sample.
    pub seed: u64,
    /// The run's output folder (its index folder holds the artifacts).
    pub out_dir: &'a Path,
    /// Show progress bars for long set-up work (index builds).
    pub progress: bool,
    /// Whether a missing or stale artifact may be built.
    pub indexes: IndexPolicy,
}

/// Stages run in order; itself a stage.
pub struct Sequence {
    stages: Vec<Box<dyn Stage>>,
}

impl Sequence {
    pub fn build(
        configs: &[StageConfig],
        corpus: &Corpus,
        context: &BuildContext,
    ) -> Result<Sequence> {
        let stages = configs
            .iter()
            .map(|config| config.spec().build(corpus, context))
            .collect::<Result<_>>()?;
        Ok(Sequence { stages })
    }
}

impl Stage for Sequence {
    fn name(&self) -> &str {
        "sequence"
    }

    fn augment(&self, batch: Batch) -> Result<()> {
        let (corpus, rows, out, stats) = (batch.corpus, batch.rows, batch.out, batch.stats);
        for stage in &self.stages {
            fault::stage(stage.name());
            let started = Instant::now();
            stage.augment(Batch {
                corpus,
                rows: rows.clone(),
                out: &mut *out,
                stats: &mut *stats,
            })?;
            stats.entry(stage.name().to_string()).or_default().seconds +=
                started.elapsed().as_secs_f64();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_is_named_by_its_type() {
        for json in [
            r#"{"type": "tfidf"}"#,
            r#"{"type": "backtranslate", "pivots": ["spa"], "encoder": "m"}"#,
            r#"{"type": "scene_graph"}"#,
            r#"{"type": "retrieval", "text_encoder": "m"}"#,
        ] {
            let config: StageConfig = serde_json::from_str(json).unwrap();
            let written = serde_json::to_value(&config).unwrap();
            assert_eq!(written["type"], config.name(), "{json}");
        }
    }
}
