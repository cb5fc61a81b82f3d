//! cmcl: turns image-caption data into training samples for cross-modal contrastive
//! learning (UNIMO, Li et al., ACL 2021). See ARCHITECTURE.md for the data flow.

pub mod augment;
pub mod backtranslate;
pub mod config;
pub mod error;
pub mod fsutil;
pub mod ingest;
pub mod inspect;
pub mod manifest;
pub mod record;
pub mod shard;
pub mod stage;
pub mod synth;
pub mod text_encoder;
pub mod tfidf;

pub use error::{Error, Result};
