//! Building a run's corpus-wide artifacts ahead of the stages that read them, written
//! once for `cmcl plan` (so that no worker builds one) and `cmcl index`.

use std::path::Path;

use crate::core::error::Result;
use crate::core::record::Corpus;
use crate::run::config::Pipeline;
use crate::stages::tfidf::bm25::Bm25Index;
use crate::stages::IndexRun;
use crate::store::artifact::IndexPolicy;
use crate::store::layout::index_dir;

/// What [`build_indexes`] builds besides the stages' own artifacts.
#[derive(Debug, Clone, Copy)]
pub struct IndexOptions {
    pub progress: bool,
    /// Also measure what the artifacts are worth (e.g. the image neighbours' label
    /// overlap), for `cmcl index`.
    pub summarize: bool,
    /// Also build the BM25 index of every text, for `cmcl search`.
    pub search: bool,
}

/// Builds, or checks and keeps, every artifact the pipeline's stages read under
/// `OUT/index`; returns a line per artifact saying what it holds.
pub fn build_indexes(
    pipeline: &Pipeline,
    corpus: &Corpus,
    out: &Path,
    options: IndexOptions,
) -> Result<Vec<String>> {
    let dir = index_dir(out);
    let mut lines = Vec::new();
    if options.search {
        let opened = Bm25Index::build_or_open(&dir, corpus, options.progress, IndexPolicy::Build)?;
        lines.push(Bm25Index::describe(&opened));
    }
    let run = IndexRun {
        dir: &dir,
        progress: options.progress,
        seed: pipeline.seed,
        summarize: options.summarize,
    };
    for stage in &pipeline.stages {
        for line in stage.spec().build_indexes(corpus, &run)? {
            // Two stages (or `search` and a stage) may read one artifact: say it once.
            let artifact = line.split(':').next();
            if !lines.iter().any(|l| l.split(':').next() == artifact) {
                lines.push(line);
            }
        }
    }
    Ok(lines)
}
