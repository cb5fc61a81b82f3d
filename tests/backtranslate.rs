//! The backtranslate stage end to end with Apertium and MiniLM: positives with pivots and
//! scores, and a re-run served entirely from the translation cache.

mod common;

use std::path::Path;

use common::*;

const CAPTIONS: &[&str] = &[
    "A man riding a wave on top of a surfboard.",
    "Two dogs are playing with a frisbee in the park.",
    "A woman is cutting a large pizza on a table.",
    "A red double decker bus driving down a city street.",
    "A cat sleeping on the hood of a parked car.",
    "A group of people standing around a kitchen counter.",
    "A little girl holding an umbrella in the rain.",
    "Several boats are docked in the calm harbor.",
];

/// The pipeline over `CAPTIONS`. The same-graph and well-formedness checks are off: they
/// keep one of these eight captions' round trips at most (eight captions are too small a
/// corpus for the word-pair evidence), too few to see pivots, scores and the cache at
/// work (their own tests are in `stages::backtranslate::filter`).
fn pipeline(dir: &Path) -> std::path::PathBuf {
    let pairs = dir.join("pairs.jsonl");
    let lines: Vec<String> = CAPTIONS
        .iter()
        .enumerate()
        .map(|(i, c)| serde_json::json!({ "image_id": i, "caption": c }).to_string())
        .collect();
    std::fs::write(&pairs, lines.join("\n")).unwrap();
    let encoder = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let path = dir.join("p.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"bt\"\n[[inputs.pairs]]\nformat = \"jsonl\"\npath = \"pairs.jsonl\"\n\
             [[stages]]\ntype = \"backtranslate\"\nbackend = \"apertium\"\npivots = [\"spa\", \"cat\"]\n\
             encoder = \"{}\"\nfilter = {{ min_similarity = 0.75, same_graph = false, well_formed = false }}\n[output]\nrows_per_shard = 3\n",
            encoder.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn positives_carry_pivots_and_scores_and_a_rerun_translates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path());
    let (out, cache) = (dir.path().join("out"), dir.path().join("cache"));
    let cache_arg = cache.display().to_string();
    let first = run_augment(&pipeline, &out, &["--cache-dir", &cache_arg]);
    assert!(first.status.success(), "{}", stderr(&first));
    let stats = &manifest(&out)["stages"]["backtranslate"];
    let produced = stats["produced"].as_u64().unwrap();
    assert!(produced >= CAPTIONS.len() as u64 / 2, "{stats}");
    assert!(
        stats["counters"]["translated"].as_u64().unwrap() >= 2 * CAPTIONS.len() as u64,
        "{stats}"
    );
    assert!(
        stats["counters"]["translator_starts"].as_u64().unwrap() >= 4,
        "{stats}"
    );
    let shown = stdout(&ok(&["inspect", out.to_str().unwrap(), "-n", "3"]));
    assert!(
        shown.contains("[backtranslation]") && shown.contains("\"pivot\":\""),
        "{shown}"
    );
    let reference = shard_bytes(&out);

    let again = run_augment(&pipeline, &out, &["--cache-dir", &cache_arg, "--force"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let stats = &manifest(&out)["stages"]["backtranslate"];
    assert_eq!(stats["counters"]["translated"], 0, "{stats}");
    assert_eq!(
        stats["counters"]["translator_starts"], 0,
        "no subprocess on a cached re-run: {stats}"
    );
    assert!(
        stats["counters"]["cache_hits"].as_u64().unwrap() >= 4 * CAPTIONS.len() as u64 - 4,
        "{stats}"
    );
    assert_eq!(
        reference,
        shard_bytes(&out),
        "cached translations give the same shards"
    );
}

#[test]
fn a_missing_backend_says_how_to_install_one() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path());
    let text = std::fs::read_to_string(&pipeline)
        .unwrap()
        .replace("[\"spa\", \"cat\"]", "[\"xyz\"]");
    std::fs::write(&pipeline, text).unwrap();
    let out = dir.path().join("out");
    let result = run_augment(&pipeline, &out, &[]);
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("apt-get install apertium") && err.contains("marian.models"),
        "{err}"
    );
}
