//! cmcl: turns image-caption data into training samples for cross-modal contrastive
//! learning (UNIMO, Li et al., ACL 2021). See ARCHITECTURE.md for the data flow.

pub mod artifact;
pub mod augment;
pub mod backtranslate;
pub mod binfile;
pub mod bm25;
pub mod config;
pub mod error;
pub mod fault;
pub mod fsutil;
pub mod hnsw;
pub mod ingest;
pub mod inspect;
pub mod manifest;
pub mod ngram;
pub mod npy;
pub mod plan;
pub mod random_weights;
pub mod record;
pub mod report;
pub mod retrieval;
pub mod scene_graph;
pub mod shard;
pub mod stage;
pub mod synth;
pub mod text_encoder;
pub mod tfidf;
pub mod train;
pub mod wordnet;

pub use error::{Error, Result};

/// ../shared/data beside the checkout, or `CMCL_DATA`: real data for unit tests.
#[cfg(test)]
pub(crate) fn test_data_dir() -> std::path::PathBuf {
    std::env::var_os("CMCL_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}
