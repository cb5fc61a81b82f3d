//! cmcl: turns image-caption data into training samples for cross-modal contrastive
//! learning (UNIMO, Li et al., ACL 2021). See ARCHITECTURE.md for the layers and the
//! data flow.
//!
//! Layers, lowest first; a module imports only from layers below its own (and from its
//! own folder), which `tests/layers.rs` checks: `core`, `text`, `index`, `embed`,
//! `store`, `ingest`, `synth`, `stages`, `train`, `report`, `run`.

pub mod core;
pub mod embed;
pub mod index;
pub mod ingest;
pub mod report;
pub mod run;
pub mod stages;
pub mod store;
pub mod synth;
pub mod text;
pub mod train;

pub use crate::core::error::{Error, Result};

/// ../shared/data beside the checkout, or `CMCL_DATA`: real data for unit tests.
#[cfg(test)]
pub(crate) fn test_data_dir() -> std::path::PathBuf {
    std::env::var_os("CMCL_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
}
