//! The names of everything in a run folder, in one place:
//!
//! ```text
//! OUT/manifest.json        the run's manifest (inputs, shards, per-stage statistics)
//! OUT/shard-NNNNN.arrow    the shards (and .parquet beside them, when asked for)
//! OUT/rejects.jsonl        input records rejected at ingest, with file:line and reason
//! OUT/.lock                held by whoever writes the folder
//! OUT/plan.json            a shard plan (`cmcl plan`)
//! OUT/parts/part-NNNNN.json  the shards each worker of the plan wrote
//! OUT/index/               corpus-wide artifacts and their manifest.json
//! OUT/train/RUN/           the bundled trainer's runs
//! OUT/report/              `cmcl report`
//! ```

use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";
pub const REJECTS_FILE: &str = "rejects.jsonl";
pub const LOCK_FILE: &str = ".lock";
pub const PLAN_FILE: &str = "plan.json";
pub const PARTS_DIR: &str = "parts";
pub const INDEX_DIR: &str = "index";
/// The artifacts' manifest, inside the index folder.
pub const INDEX_MANIFEST: &str = "manifest.json";
pub const TRAIN_DIR: &str = "train";
/// The report's folder under a run folder, unless told otherwise.
pub const REPORT_DIR: &str = "report";

pub fn shard_file(index: usize) -> String {
    format!("shard-{index:05}.arrow")
}

/// The Parquet copy of a shard.
pub fn parquet_file(shard_file: &str) -> String {
    shard_file.replace(".arrow", ".parquet")
}

/// The shards worker `part` of a plan wrote.
pub fn part_record(out: &Path, part: usize) -> PathBuf {
    out.join(PARTS_DIR).join(format!("part-{part:05}.json"))
}

/// The lock of one part of a plan, held by its worker.
pub fn part_lock(out: &Path, part: usize) -> PathBuf {
    out.join(PARTS_DIR).join(format!(".lock-{part:05}"))
}

pub fn index_dir(out: &Path) -> PathBuf {
    out.join(INDEX_DIR)
}
