//! A pipeline run as a shard plan: `cmcl plan`, 4 worker processes at once, `cmcl
//! merge`, against one process; plus the checks that keep workers honest (plan
//! mismatch, artifacts rebuilt since the plan, a part already being written, a part
//! missing at merge time).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn worker(pipeline: &Path, out: &Path, cache: &Path, index: usize) -> Command {
    let mut command = cmcl();
    command.args([
        "augment",
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--no-progress",
        "--num-shards",
        "4",
    ]);
    // Workers take their index from the scheduler's variable, as under Slurm.
    command.env("SLURM_ARRAY_TASK_ID", index.to_string());
    command
}

#[test]
fn four_workers_and_a_merge_write_the_bytes_of_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = every_stage_pipeline(dir.path(), 16, 8);
    let cache = dir.path().join("cache");

    let single = dir.path().join("single");
    let output = run_pipeline(
        "augment",
        &pipeline,
        &single,
        &["--cache-dir", cache.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stderr(&output));

    let out = dir.path().join("workers");
    let planned = plan(&pipeline, &out, 4);
    assert!(planned.status.success(), "{}", stderr(&planned));
    assert!(
        stdout(&planned).contains("part 3: shards"),
        "{}",
        stdout(&planned)
    );
    assert!(out.join("plan.json").is_file());
    for artifact in ["text.hnsw", "image.hnsw", "tfidf.bin", "ngram.bin"] {
        assert!(out.join("index").join(artifact).is_file(), "{artifact}");
    }

    // All four at once, sharing the output folder and the translation cache.
    let workers: Vec<_> = (0..4)
        .map(|i| worker(&pipeline, &out, &cache, i).spawn().unwrap())
        .collect();
    for (i, w) in workers.into_iter().enumerate() {
        let output = w.wait_with_output().unwrap();
        assert!(output.status.success(), "worker {i}: {}", stderr(&output));
    }
    assert!(
        !out.join("manifest.json").exists(),
        "workers never write the manifest"
    );
    let merged = merge(&pipeline, &out);
    assert!(merged.status.success(), "{}", stderr(&merged));

    assert_eq!(outcome(&out), outcome(&single));
    assert_eq!(shard_bytes(&out), shard_bytes(&single));
    assert_eq!(
        std::fs::read(out.join("rejects.jsonl")).unwrap(),
        std::fs::read(single.join("rejects.jsonl")).unwrap()
    );
}

#[test]
fn workers_refuse_a_stale_plan_a_busy_part_and_merge_names_missing_parts() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 8);
    let pipeline = synth_pipeline(dir.path(), 4, "");
    let out = dir.path().join("out");
    let cache = dir.path().join("cache");

    // No plan yet.
    let output = worker(&pipeline, &out, &cache, 0).output().unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("cmcl plan"), "{}", stderr(&output));

    assert!(plan(&pipeline, &out, 4).status.success());
    // Another worker holds part 1.
    let lock_path = out.join("parts/.lock-00001");
    let held = std::fs::File::create(&lock_path).unwrap();
    held.try_lock().unwrap();
    let output = worker(&pipeline, &out, &cache, 1).output().unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("another worker is writing this part"),
        "{}",
        stderr(&output)
    );
    drop(held);

    // Parts 0 and 1 only: merge names the shards of parts 2 and 3.
    for i in 0..2 {
        let output = worker(&pipeline, &out, &cache, i).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let output = merge(&pipeline, &out);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("(part 2)") && message.contains("(part 3)"),
        "{message}"
    );
    assert!(!message.contains("(part 0)"), "{message}");

    // An artifact rebuilt since the plan (here by `cmcl index`) is not the plan's.
    std::fs::remove_file(out.join("index/tfidf.bin")).unwrap();
    let output = run_pipeline("index", &pipeline, &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(out.join("index/tfidf.bin").is_file());
    let output = worker(&pipeline, &out, &cache, 2).output().unwrap();
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("tfidf") && message.contains("differ from those `cmcl plan` built"),
        "{message}"
    );
    assert!(plan(&pipeline, &out, 4).status.success());

    // A worker of a pipeline changed since the plan refuses to run.
    let changed = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("k = 4", "k = 3");
    std::fs::write(&pipeline, changed).unwrap();
    let output = worker(&pipeline, &out, &cache, 2).output().unwrap();
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("differ from the plan"),
        "{}",
        stderr(&output)
    );
}
