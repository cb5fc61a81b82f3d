//! The deploy/ templates under real schedulers: `deploy/slurm.sh` as a 4-task job array
//! on a throwaway one-node Slurm cluster (tools/slurm-cluster.sh), and
//! `deploy/parallel.sh` with GNU parallel; each run's shards are the bytes of one
//! process. Skipped, saying why, only where `make sched-deps` could not set them up
//! (it then writes the reason into `.cache/sched/unavailable`); `make test` sets
//! CMCL_REQUIRE_SCHEDULER to insist.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why the schedulers cannot run here, or nothing; a failure where they are required.
fn unavailable() -> Option<String> {
    let check = Command::new(repo().join("tools/slurm-cluster.sh"))
        .arg("check")
        .output()
        .unwrap();
    let parallel = Command::new("parallel").arg("--version").output();
    let why = match (check.status.success(), parallel) {
        (false, _) => stderr(&check).trim().to_string(),
        (true, Err(e)) => format!("GNU parallel: {e}"),
        (true, Ok(_)) => return None,
    };
    let why = format!("scheduler test SKIPPED: {why}; run `make sched-deps` as root");
    let required = std::env::var("CMCL_REQUIRE_SCHEDULER").is_ok_and(|v| v == "1");
    assert!(!required, "{why}");
    eprintln!("{why}");
    Some(why)
}

/// PATH with the tested cmcl binary first, as a user's install would be.
fn path_with_cmcl() -> String {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cmcl"));
    let dir = bin.parent().unwrap().display().to_string();
    format!("{dir}:{}", std::env::var("PATH").unwrap_or_default())
}

fn succeeded(what: &str, output: Output) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// The every-stage pipeline over 16 synthetic images in `dir`, run by one process.
fn reference(dir: &Path) -> (PathBuf, PathBuf) {
    let pipeline = every_stage_pipeline(dir, 16, 8);
    let single = dir.join("single");
    let cache = dir.join("cache");
    let output = run_augment(
        &pipeline,
        &single,
        &["--cache-dir", cache.to_str().unwrap()],
    );
    succeeded("one process", output);
    (pipeline, single)
}

/// Stops the cluster in its folder however the test ends.
struct Cluster(PathBuf);

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("tools/slurm-cluster.sh"))
            .arg("stop")
            .arg(&self.0)
            .output();
    }
}

#[test]
fn a_slurm_job_array_writes_the_bytes_of_one_process() {
    if unavailable().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, single) = reference(dir.path());
    let out = dir.path().join("slurm-out");
    succeeded("plan", plan(&pipeline, &out, 4));

    let cluster = Cluster(dir.path().join("slurm"));
    let script = repo().join("tools/slurm-cluster.sh");
    succeeded(
        "cluster start",
        Command::new(&script)
            .arg("start")
            .arg(&cluster.0)
            .output()
            .unwrap(),
    );
    // The template asks for 4 CPUs and 8 GB a task; this node has fewer.
    let submitted = Command::new("sbatch")
        .args([
            "--parsable",
            "--array=0-3",
            "--cpus-per-task=1",
            "--mem=100M",
            "--chdir",
        ])
        .arg(dir.path())
        .arg(repo().join("deploy/slurm.sh"))
        .arg(&pipeline)
        .arg(&out)
        .env("SLURM_CONF", cluster.0.join("slurm.conf"))
        .env("PATH", path_with_cmcl())
        .output()
        .unwrap();
    let job = succeeded("sbatch", submitted).trim().to_string();
    let waited = Command::new(&script)
        .arg("wait")
        .arg(&cluster.0)
        .arg(&job)
        .arg("600")
        .env("SLURM_CONF", cluster.0.join("slurm.conf"))
        .output()
        .unwrap();
    let logs: Vec<String> = (0..4)
        .map(|i| {
            let log = dir.path().join(format!("cmcl-{job}_{i}.log"));
            format!(
                "{}:\n{}",
                log.display(),
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
        .collect();
    assert!(
        waited.status.success(),
        "{}\n{}",
        stderr(&waited),
        logs.join("\n")
    );
    drop(cluster);

    succeeded("merge", merge(&pipeline, &out));
    assert_eq!(outcome(&out), outcome(&single));
    assert_eq!(shard_bytes(&out), shard_bytes(&single));
}

#[test]
fn gnu_parallel_workers_write_the_bytes_of_one_process() {
    if unavailable().is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (pipeline, single) = reference(dir.path());
    let out = dir.path().join("parallel-out");
    let ran = Command::new(repo().join("deploy/parallel.sh"))
        .arg(&pipeline)
        .arg(&out)
        .arg("4")
        .current_dir(dir.path())
        .env("PATH", path_with_cmcl())
        .output()
        .unwrap();
    succeeded("deploy/parallel.sh", ran);
    assert_eq!(outcome(&out), outcome(&single));
    assert_eq!(shard_bytes(&out), shard_bytes(&single));
}
