//! Fault injection: a run killed (SIGKILL) at 20 seeded points across ingest, every
//! stage and every kind of file write, then resumed, ends with the bytes of a run that
//! was never interrupted; a full disk gives a clean error and leaves no shard a later
//! run would trust. (A hung translator is restarted: src/backtranslate/apertium.rs; a
//! corrupted shard is redone and a second run on one folder refused: tests/augment.rs.)

mod common;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Output};

use common::*;
use rand::seq::SliceRandom;
use rand::SeedableRng;

const SEED: u64 = 20261129;
const KILLS: usize = 20;

fn augment(pipeline: &Path, out: &Path, cache: &Path) -> Command {
    let mut command = cmcl();
    command.args(["augment", "--pipeline", pipeline.to_str().unwrap()]);
    command.args(["--out", out.to_str().unwrap(), "--no-progress"]);
    command.args(["--cache-dir", cache.to_str().unwrap(), "--threads", "1"]);
    command
}

fn succeed(mut command: Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    output
}

/// Files a killed run may have left half-written, by name.
fn temp_files(out: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for dir in [out.to_path_buf(), out.join("index"), out.join("parts")] {
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.contains(".tmp-") {
                found.push(name);
            }
        }
    }
    found
}

/// The kill points: each named point with the visit it fires on. Every one is reached
/// by a run of this pipeline (6 shards; at least 8 atomic writes: the rejects, the
/// manifest, and a shard and the manifest per shard).
fn kill_points() -> Vec<String> {
    let mut points = vec!["ingested:1".to_string(), "stages_built:1".to_string()];
    for stage in ["backtranslate", "tfidf", "scene_graph", "retrieval"] {
        points.extend((1..=6).map(|n| format!("stage.{stage}:{n}")));
    }
    for point in ["temp_written", "renamed"] {
        points.extend((1..=8).map(|n| format!("{point}:{n}")));
    }
    points.extend((1..=6).map(|n| format!("shard_done:{n}")));
    points
}

// Two halves of the seeded points, so that the test harness runs them side by side.
#[test]
fn runs_killed_at_the_first_ten_seeded_points_resume_to_the_same_bytes() {
    kill_and_resume(0..KILLS / 2);
}

#[test]
fn runs_killed_at_the_last_ten_seeded_points_resume_to_the_same_bytes() {
    kill_and_resume(KILLS / 2..KILLS);
}

fn kill_and_resume(chosen: std::ops::Range<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = every_stage_pipeline(dir.path(), 12, 8);
    let cache = dir.path().join("cache");
    let reference = dir.path().join("reference");
    succeed(augment(&pipeline, &reference, &cache));
    let expected = shard_bytes(&reference);
    assert_eq!(expected.len(), 6);

    let mut points = kill_points();
    points.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(SEED));
    for point in &points[chosen] {
        let out = dir.path().join(point.replace([':', '.'], "-"));
        let killed = augment(&pipeline, &out, &cache)
            .env(cmcl::core::fault::VARIABLE, point)
            .output()
            .unwrap();
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{point}: the run was not killed there: {}",
            stderr(&killed)
        );
        succeed(augment(&pipeline, &out, &cache));
        assert_eq!(
            shard_bytes(&out),
            expected,
            "{point}: resumed shards differ"
        );
        assert_eq!(manifest(&out)["complete"], true, "{point}");
        assert_eq!(
            temp_files(&out),
            Vec::<String>::new(),
            "{point}: temp files left"
        );
    }
}

/// Workers of a two-part plan killed at seeded points: the killed part resumes, and
/// the merge gives the bytes of one process.
#[test]
fn killed_workers_resume_and_merge_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = every_stage_pipeline(dir.path(), 12, 8);
    let cache = dir.path().join("cache");
    let reference = dir.path().join("reference");
    succeed(augment(&pipeline, &reference, &cache));
    let expected = shard_bytes(&reference);

    // Points a worker of 3 shards reaches (no ingest rejects or index writes of its own).
    let mut points: Vec<String> = ["stages_built:1".to_string()]
        .into_iter()
        .chain(
            ["tfidf", "scene_graph", "retrieval"]
                .iter()
                .flat_map(|s| (1..=3).map(move |n| format!("stage.{s}:{n}"))),
        )
        .chain((1..=3).map(|n| format!("shard_done:{n}")))
        .chain((1..=4).map(|n| format!("temp_written:{n}")))
        .collect();
    points.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(SEED + 1));
    for (i, point) in points[..4].iter().enumerate() {
        let out = dir.path().join(format!("workers-{i}"));
        let mut plan = cmcl();
        plan.args(["plan", "--pipeline", pipeline.to_str().unwrap()]);
        plan.args([
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
            "--num-shards",
            "2",
        ]);
        succeed(plan);
        let worker = |index: usize| {
            let mut command = augment(&pipeline, &out, &cache);
            command.args(["--shard-index", &index.to_string(), "--num-shards", "2"]);
            command
        };
        let killed = worker(i % 2)
            .env(cmcl::core::fault::VARIABLE, point)
            .output()
            .unwrap();
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{point}: {}",
            stderr(&killed)
        );
        succeed(worker(0));
        succeed(worker(1));
        let merged = merge(&pipeline, &out);
        assert!(merged.status.success(), "{}", stderr(&merged));
        assert_eq!(shard_bytes(&out), expected, "{point}: merged shards differ");
        assert_eq!(
            temp_files(&out),
            Vec::<String>::new(),
            "{point}: temp files left"
        );
    }
}

#[test]
fn a_full_disk_is_a_clean_error_and_leaves_no_trusted_shard() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 40);
    let pipeline = synth_pipeline(dir.path(), 80, "");
    let cache = dir.path().join("cache");
    let reference = dir.path().join("reference");
    succeed(augment(&pipeline, &reference, &cache));
    let shard_size = std::fs::metadata(reference.join("shard-00000.arrow"))
        .unwrap()
        .len();

    // Files may grow to half a shard: the manifest fits, no shard does.
    let limit = shard_size / 2;
    let out = dir.path().join("out");
    let mut command = augment(&pipeline, &out, &cache);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            match libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("shard-00000.arrow") && message.contains("File too large"),
        "{message}"
    );
    // Nothing that a later run would take for a finished shard.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("shard-") && !n.contains(".tmp-")),
        "{names:?}"
    );
    assert_eq!(manifest(&out)["shards"], serde_json::json!([]));

    // With space again, the run completes as if nothing had happened.
    succeed(augment(&pipeline, &out, &cache));
    assert_eq!(shard_bytes(&out), shard_bytes(&reference));
}
