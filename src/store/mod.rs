//! The run folder: where each file lives (`layout`), the lock, the shards, the run's
//! manifest, and the one scheme every corpus-wide artifact is built, checked and
//! reused by (`artifact`). Imports `core` only.

pub mod artifact;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod shard;
