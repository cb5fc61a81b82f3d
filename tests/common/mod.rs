//! Shared helpers for the integration tests: they run the real `cmcl` binary on
//! temporary folders.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn cmcl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cmcl"))
}

/// Runs cmcl, returns its output; never panics itself, so callers can check failures.
pub fn run(args: &[&str]) -> Output {
    cmcl().args(args).output().expect("cmcl binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmcl augment` on `pipeline` into `out` without a progress bar; `extra` flags last.
pub fn run_augment(pipeline: &Path, out: &Path, extra: &[&str]) -> Output {
    run_pipeline("augment", pipeline, out, extra)
}

/// Runs a pipeline command (`augment`, `index`, `train`, ...) on `pipeline` into `out`
/// without a progress bar; `extra` flags last. A panic fails the test.
pub fn run_pipeline(command: &str, pipeline: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        command,
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let result = run(&args);
    assert!(!stderr(&result).contains("panicked"), "{}", stderr(&result));
    result
}

/// Runs cmcl and fails the test with its stderr when it does not succeed.
pub fn ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "cmcl {args:?} failed:\n{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    out
}

/// Generates a small synthetic dataset into `dir/synth`.
pub fn synth(dir: &Path, images: usize) -> PathBuf {
    let out = dir.join("synth");
    let images = images.to_string();
    ok(&[
        "synth",
        "--out",
        out.to_str().unwrap(),
        "--images",
        &images,
        "--corpus-images",
        "20",
        "--corpus-texts",
        "40",
    ]);
    out
}

/// A pipeline over `dir/synth` with a tfidf stage, written to `dir/pipeline.toml`.
pub fn synth_pipeline(dir: &Path, rows_per_shard: usize, extra: &str) -> PathBuf {
    synth_pipeline_with(
        dir,
        "[[stages]]\ntype = \"tfidf\"\nk = 4",
        rows_per_shard,
        extra,
    )
}

/// A pipeline over `dir/synth` (pairs with objects, image and text corpora) with these
/// `stages` (TOML), written to `dir/pipeline.toml`; `extra` goes into `[output]`.
pub fn synth_pipeline_with(
    dir: &Path,
    stages: &str,
    rows_per_shard: usize,
    extra: &str,
) -> PathBuf {
    let text = format!(
        r#"
name = "t"
seed = 1
[[inputs.pairs]]
format = "jsonl"
path = "synth/pairs.jsonl"
dataset = "synth"
columns = {{ image_id = "image_id", caption = "caption", id = "caption_id", image_path = "image_path", objects = "objects" }}
[[inputs.image_corpus]]
format = "jsonl"
path = "synth/image_corpus.jsonl"
[[inputs.text_corpus]]
format = "jsonl"
path = "synth/text_corpus.jsonl"
columns = {{ image_id = "image_id", caption = "text", id = "text_id" }}
{stages}
[output]
rows_per_shard = {rows_per_shard}
{extra}
"#
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Every stage (Apertium back-translation, TF-IDF, scene graphs, retrieval with a
/// reproducible index) over `images` synthetic images in `dir/synth`.
pub fn every_stage_pipeline(dir: &Path, images: usize, rows_per_shard: usize) -> PathBuf {
    synth(dir, images);
    let minilm = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let stages = format!(
        "[[stages]]\ntype = \"backtranslate\"\nbackend = \"apertium\"\npivots = [\"spa\"]\n\
         encoder = \"{m}\"\nfilter = {{ min_similarity = 0.75 }}\n\
         [[stages]]\ntype = \"rewrite\"\n\
         [[stages]]\ntype = \"siblings\"\n\
         [[stages]]\ntype = \"tfidf\"\nk = 2\n\
         [[stages]]\ntype = \"scene_graph\"\nmin_candidate_count = 1\n\
         [[stages]]\ntype = \"retrieval\"\nimage_k = 2\ntext_k = 2\ntext_encoder = \"{m}\"\n\
         reproducible = true\nimage_embeddings = {{ source = \"descriptor\", grid = 2, size = 32 }}\n",
        m = minilm.display()
    );
    synth_pipeline_with(dir, &stages, rows_per_shard, "")
}

/// `cmcl plan` of `pipeline` into `out` for `parts` workers.
pub fn plan(pipeline: &Path, out: &Path, parts: usize) -> Output {
    run_pipeline("plan", pipeline, out, &["--num-shards", &parts.to_string()])
}

/// `cmcl merge` of the parts in `out`.
pub fn merge(pipeline: &Path, out: &Path) -> Output {
    run_pipeline("merge", pipeline, out, &[])
}

/// Shard files of a run folder, sorted, with their bytes.
pub fn shard_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut shards: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "arrow" || e == "parquet")
        })
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    shards.sort();
    shards
}

pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// The shared data folder beside the checkout (CI has it too).
pub fn shared_data() -> PathBuf {
    let dir = std::env::var("CMCL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    assert!(
        dir.join("README.md").exists(),
        "shared data not found at {}; set CMCL_DATA",
        dir.display()
    );
    dir
}

/// The Python with pyarrow and polars that `make test` sets up (CMCL_TEST_PYTHON).
pub fn test_python() -> PathBuf {
    std::env::var("CMCL_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/venv/bin/python");
        assert!(venv.exists(), "no Python with pyarrow and polars: run `make test` (it creates .cache/venv), or set CMCL_TEST_PYTHON");
        venv
    })
}

/// Runs the repository's Python script `tests/SCRIPT` with `args` under
/// [`test_python`]; fails the test with its output when it fails, else gives stdout.
pub fn python_script(script: &str, args: &[&Path]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let result = Command::new(test_python())
        .arg(&path)
        .args(args)
        .env(
            "PYTHONPATH",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("python"),
        )
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "{script} failed:\n{}\n{}",
        stdout(&result),
        stderr(&result)
    );
    stdout(&result)
}

/// What must agree between two runs: every shard's identity and checksum, and what the
/// stages produced (their timings differ).
pub fn outcome(out: &Path) -> serde_json::Value {
    let m = manifest(out);
    let shards: Vec<serde_json::Value> = m["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            serde_json::json!([
                s["index"],
                s["file"],
                s["first_row"],
                s["rows"],
                s["sha256"]
            ])
        })
        .collect();
    let produced: serde_json::Map<String, serde_json::Value> = m["stages"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["produced"].clone()))
        .collect();
    serde_json::json!({ "shards": shards, "produced": produced, "complete": m["complete"] })
}
