//! The scene-graph parser and negatives through the real binary: gold-graph scores on the
//! synthetic set and on FACTUAL, the scorer on other parsers' output, and the stage end
//! to end.

mod common;

use std::path::Path;

use common::*;

fn f1(report: &Path) -> f64 {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    json["all"]["f1"].as_f64().unwrap()
}

#[test]
fn parser_recovers_the_synthetic_gold_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let synth = synth(dir.path(), 150);
    let report = dir.path().join("report.json");
    let out = ok(&[
        "eval-parser",
        synth.join("pairs.jsonl").to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert!(stdout(&out).contains("exact set match"), "{}", stdout(&out));
    assert!(f1(&report) >= 0.95, "{}", stdout(&out));
}

#[test]
fn factual_dev_and_the_scorer_on_given_predictions() {
    let gold = shared_data().join("factual-dev/dev.csv");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let out = ok(&[
        "eval-parser",
        gold.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert!(f1(&report) >= 0.6, "{}", stdout(&out));

    // The gold itself, given as predictions, scores 1.
    ok(&[
        "eval-parser",
        gold.to_str().unwrap(),
        "--predictions",
        gold.to_str().unwrap(),
        "--json",
        report.to_str().unwrap(),
    ]);
    assert_eq!(f1(&report), 1.0);

    // Predictions for other captions are refused with the file and line.
    let wrong = dir.path().join("wrong.csv");
    let text = std::fs::read_to_string(&gold).unwrap();
    std::fs::write(&wrong, text.replacen("white stove", "black stove", 1)).unwrap();
    let out = run(&[
        "eval-parser",
        gold.to_str().unwrap(),
        "--predictions",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("wrong.csv:2"), "{}", stderr(&out));
}

#[test]
fn parse_prints_triples() {
    let out = ok(&["parse", "a black dog sitting on a red sofa"]);
    let text = stdout(&out);
    for triple in [
        "( dog , is , black )",
        "( sofa , is , red )",
        "( dog , sit on , sofa )",
    ] {
        assert!(text.contains(triple), "{text}");
    }
}

#[test]
fn scene_graph_stage_writes_recorded_edits_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 60);
    let pipeline = synth_pipeline(dir.path(), 100, "");
    let text = std::fs::read_to_string(&pipeline).unwrap().replace(
        "[output]",
        "[[stages]]\ntype = \"scene_graph\"\nmin_candidate_count = 1\n[output]",
    );
    std::fs::write(&pipeline, text).unwrap();
    let cache = dir.path().join("cache");
    let cache_arg = ["--cache-dir", cache.to_str().unwrap()];
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    let out = run_augment(
        &pipeline,
        &one,
        &[&["--threads", "1"][..], &cache_arg].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run_augment(
        &pipeline,
        &two,
        &[&["--threads", "2"][..], &cache_arg].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(shard_bytes(&one), shard_bytes(&two));

    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(one.join("manifest.json")).unwrap()).unwrap();
    let stats = &manifest["stages"]["scene_graph"];
    assert!(stats["produced"].as_u64().unwrap() > 0, "{stats}");
    let shown = stdout(&ok(&["inspect", one.to_str().unwrap(), "-n", "40"]));
    assert!(shown.contains("\"edit\""), "{shown}");
    // The language model is a checksummed artifact of the run, kept for the next one.
    let record = common::manifest(&one.join("index"))["artifacts"]["ngram"].clone();
    assert_eq!(record["file"], "ngram.bin", "{record}");
    assert!(one.join("index/ngram.bin").is_file());
}
