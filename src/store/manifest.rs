//! The manifest: a JSON file beside the shards that says what produced them (tool
//! version, config hash, input checksums), what each shard holds (rows, SHA-256) and
//! what each stage did. A resumed run trusts a shard only when its manifest entry, the
//! plan and the file's checksum all agree.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Result};
use crate::core::fs::{sha256_file, write_json_atomic};
use crate::core::sample::Stats;

pub const FILE_NAME: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub tool: String,
    pub version: String,
    /// SHA-256 of the cmcl executable that wrote the shards ([`build_id`]). Shards of
    /// another build are made again: its stages may make other samples from the same
    /// inputs, and a resumed run must not mix the two.
    #[serde(default)]
    pub build: String,
    pub schema_version: String,
    pub pipeline: String,
    pub config_hash: String,
    pub seed: u64,
    pub inputs: Vec<InputFile>,
    pub rows_per_shard: usize,
    pub total_rows: usize,
    pub num_shards: usize,
    pub ingest: IngestSummary,
    pub shards: Vec<ShardEntry>,
    /// Per-stage totals over all shards.
    pub stages: Stats,
    /// True once every shard of the plan is present and valid.
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    pub role: String,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestSummary {
    pub read: u64,
    pub pairs: usize,
    pub corpus_images: usize,
    pub corpus_texts: usize,
    pub rejected: BTreeMap<String, u64>,
    pub rejects_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub index: usize,
    pub file: String,
    pub first_row: usize,
    pub rows: usize,
    pub bytes: u64,
    pub sha256: String,
    pub parquet: Option<FileChecksum>,
    pub stats: Stats,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChecksum {
    pub file: String,
    pub sha256: String,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        write_json_atomic(path, self)
    }

    /// Whether shards from `self` may be reused by a run described by `other`.
    pub fn same_plan(&self, other: &Manifest) -> bool {
        self.version == other.version
            && self.build == other.build
            && self.schema_version == other.schema_version
            && self.config_hash == other.config_hash
            && self.inputs == other.inputs
            && self.rows_per_shard == other.rows_per_shard
            && self.total_rows == other.total_rows
    }

    pub fn recompute_totals(&mut self) {
        let mut totals = Stats::new();
        for shard in &self.shards {
            for (name, stats) in &shard.stats {
                totals.entry(name.clone()).or_default().add(stats);
            }
        }
        self.stages = totals;
        self.complete = self.shards.len() == self.num_shards;
    }
}

impl ShardEntry {
    /// True when the files on disk are exactly the ones this entry describes.
    pub fn verify(&self, dir: &Path) -> bool {
        let matches = |file: &str, sha: &str| sha256_file(&dir.join(file)).is_ok_and(|s| s == sha);
        matches(&self.file, &self.sha256)
            && self
                .parquet
                .as_ref()
                .is_none_or(|p| matches(&p.file, &p.sha256))
    }
}

/// Checksums an input file.
/// SHA-256 of the running executable, read once per process; the crate version where
/// the executable cannot be read.
pub fn build_id() -> String {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| sha256_file(&exe).ok())
            .unwrap_or_else(|| format!("cmcl {}", env!("CARGO_PKG_VERSION")))
    })
    .clone()
}

pub fn input_file(role: &str, path: &Path) -> Result<InputFile> {
    let bytes = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok(InputFile {
        role: role.to_string(),
        path: path.display().to_string(),
        bytes,
        sha256: sha256_file(path)?,
    })
}
