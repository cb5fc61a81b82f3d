//! Running one pipeline as many processes, under a scheduler that is already there
//! (Slurm job arrays, Kubernetes Indexed Jobs, GNU parallel):
//!
//! 1. `cmcl plan --num-shards N` ingests once, writes `OUT/plan.json` (the run's
//!    manifest before any shard, and N) and `OUT/rejects.jsonl`, and builds every
//!    index a stage reads, so no worker ever builds one.
//! 2. `cmcl augment --shard-index i --num-shards N` (i from `SLURM_ARRAY_TASK_ID` or
//!    `JOB_COMPLETION_INDEX` when not given) writes the shards of part i only and
//!    records them in `OUT/parts/part-i.json`. It refuses to run when its pipeline or
//!    inputs differ from the plan, or when an index is missing or stale.
//! 3. `cmcl merge` checks every shard of the plan against its part's record (present,
//!    SHA-256) and writes `OUT/manifest.json`.
//!
//! A shard's bytes depend only on its rows and on corpus-wide state that every process
//! derives the same way (or reads from the plan's indexes), so N workers write the same
//! bytes as one process. Part i holds a contiguous run of shards.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Result};
use crate::core::fs::write_json_atomic;
use crate::store::artifact::IndexManifest;
use crate::store::layout::{index_dir, part_record, shard_file, MANIFEST, PARTS_DIR, PLAN_FILE};
use crate::store::manifest::{Manifest, ShardEntry};

/// Environment variables that schedulers set to a worker's index, in the order tried.
pub const INDEX_VARIABLES: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

/// Worker `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: usize,
    pub count: usize,
}

impl Part {
    /// The part of `--shard-index` (or of the scheduler's variable) out of `count`.
    pub fn new(index: Option<usize>, count: usize) -> Result<Part> {
        let index = match index {
            Some(i) => i,
            None => from_environment()?,
        };
        if count == 0 || index >= count {
            return Err(Error::Config {
                path: PathBuf::from("--shard-index"),
                message: format!("shard index {index} is not in 0..{count}"),
            });
        }
        Ok(Part { index, count })
    }

    /// The shards this part writes, of `num_shards`.
    pub fn shards(&self, num_shards: usize) -> Range<usize> {
        num_shards * self.index / self.count..num_shards * (self.index + 1) / self.count
    }

    /// Where this part records the shards it wrote.
    pub fn record_path(&self, out: &Path) -> PathBuf {
        part_record(out, self.index)
    }
}

fn from_environment() -> Result<usize> {
    for name in INDEX_VARIABLES {
        if let Ok(value) = std::env::var(name) {
            return value.trim().parse().map_err(|_| Error::Config {
                path: PathBuf::from(name),
                message: format!("{name}={value:?} is not a shard index"),
            });
        }
    }
    Err(Error::Config {
        path: PathBuf::from("--shard-index"),
        message: format!(
            "--num-shards needs --shard-index, or one of {} set by the scheduler",
            INDEX_VARIABLES.join(", ")
        ),
    })
}

/// `OUT/plan.json`: the manifest of the run before any shard, and how many parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub parts: usize,
    pub manifest: Manifest,
    /// The index manifest as the plan built it: workers refuse any other artifacts.
    #[serde(default)]
    pub indexes: IndexManifest,
}

impl Plan {
    pub fn load(out: &Path) -> Result<Plan> {
        let path = out.join(PLAN_FILE);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Manifest {
                path: path.clone(),
                message: "no shard plan here: run `cmcl plan --num-shards N` first".into(),
            },
            _ => Error::io(&path, e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path,
            message: e.to_string(),
        })
    }

    pub fn save(&self, out: &Path) -> Result<()> {
        write_json_atomic(&out.join(PLAN_FILE), self)
    }

    /// An error unless the artifacts under `OUT/index` are the ones this plan built,
    /// naming each that differs (rebuilt, removed or added since).
    pub fn check_indexes(&self, out: &Path) -> Result<()> {
        let dir = index_dir(out);
        let now = IndexManifest::load(&dir);
        let (planned, found) = (&self.indexes.artifacts, &now.artifacts);
        let names: BTreeSet<&str> = planned
            .keys()
            .chain(found.keys())
            .map(String::as_str)
            .collect();
        let changed: Vec<&str> = names
            .into_iter()
            .filter(|name| planned.get(*name) != found.get(*name))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        Err(Error::Index {
            message: format!(
                "the {} index artifacts in {} differ from those `cmcl plan` built \
                 (recorded in {}); run `cmcl plan` again",
                changed.join(", "),
                dir.display(),
                out.join(PLAN_FILE).display()
            ),
        })
    }

    /// An error unless a run described by `fresh` may work under this plan.
    pub fn check(&self, fresh: &Manifest, out: &Path) -> Result<()> {
        if self.manifest.same_plan(fresh) {
            return Ok(());
        }
        Err(Error::Manifest {
            path: out.join(PLAN_FILE),
            message: "the pipeline, its inputs or this cmcl differ from the plan's; \
                      run `cmcl plan` again"
                .into(),
        })
    }
}

/// The shards part `part` has written so far (none when it has not started).
pub fn load_record(out: &Path, part: Part) -> Result<Vec<ShardEntry>> {
    let path = part.record_path(out);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
            path,
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(&path, e)),
    }
}

/// Removes temp copies of part `part`'s record that a killed worker left.
pub fn remove_record_temps(out: &Path, part: Part) -> Result<()> {
    let dir = out.join(PARTS_DIR);
    let prefix = format!(".part-{:05}.json.tmp-", part.index);
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

pub fn save_record(out: &Path, part: Part, shards: &[ShardEntry]) -> Result<()> {
    // The parts folder is created by the atomic write.
    write_json_atomic(&part.record_path(out), shards)
}

/// Joins the parts' records into the run's manifest. Every shard of the plan must be
/// present and match its recorded SHA-256; the error names each that does not, with
/// the part that should rerun.
pub fn merge(out: &Path) -> Result<Manifest> {
    let plan = Plan::load(out)?;
    let mut manifest = plan.manifest.clone();
    let num_shards = manifest.num_shards;
    let mut found: Vec<Option<ShardEntry>> = vec![None; num_shards];
    let mut problems = Vec::new();
    for index in 0..plan.parts {
        let part = Part {
            index,
            count: plan.parts,
        };
        for entry in load_record(out, part)? {
            let expected = entry.index < num_shards
                && part.shards(num_shards).contains(&entry.index)
                && entry.first_row == entry.index * manifest.rows_per_shard;
            if !expected {
                problems.push(format!("{}: not a shard of part {index}", entry.file));
            } else if !entry.verify(out) {
                problems.push(format!(
                    "{}: missing or changed since part {index} wrote it",
                    entry.file
                ));
            } else {
                let slot = entry.index;
                found[slot] = Some(entry);
            }
        }
    }
    for (index, entry) in found.iter().enumerate() {
        if entry.is_none() {
            let owner = (0..plan.parts)
                .find(|&p| {
                    Part {
                        index: p,
                        count: plan.parts,
                    }
                    .shards(num_shards)
                    .contains(&index)
                })
                .unwrap_or_default();
            problems.push(format!("{}: not written (part {owner})", shard_file(index)));
        }
    }
    if !problems.is_empty() {
        problems.dedup();
        return Err(Error::Manifest {
            path: out.join(MANIFEST),
            message: format!(
                "cannot merge: {}; rerun those parts (they resume)",
                problems.join("; ")
            ),
        });
    }
    manifest.shards = found.into_iter().flatten().collect();
    manifest.recompute_totals();
    manifest.save(&out.join(MANIFEST))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parts_cover_every_shard_once_in_order(num_shards in 0usize..200, count in 1usize..40) {
            let mut next = 0;
            for index in 0..count {
                let range = Part { index, count }.shards(num_shards);
                prop_assert_eq!(range.start, next);
                prop_assert!(range.len() <= num_shards.div_ceil(count));
                next = range.end;
            }
            prop_assert_eq!(next, num_shards);
        }
    }

    #[test]
    fn an_index_out_of_range_is_an_error() {
        assert!(Part::new(Some(3), 3).is_err());
        assert!(Part::new(Some(0), 0).is_err());
        assert_eq!(Part::new(Some(2), 3).unwrap(), Part { index: 2, count: 3 });
    }
}
