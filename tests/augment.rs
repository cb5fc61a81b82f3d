//! End-to-end runs of `cmcl augment` on the synthetic dataset: shards, manifest,
//! determinism, resume after SIGKILL, the output lock, and readers in other languages.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

fn augment(pipeline: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let result = run_augment(pipeline, out, extra);
    assert!(result.status.success(), "{}", stderr(&result));
    result
}

#[test]
fn synth_to_shards_with_tfidf_negatives_from_other_images() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 40);
    let pipeline = synth_pipeline(dir.path(), 50, "parquet = true");
    let out = dir.path().join("out");
    augment(&pipeline, &out, &[]);

    let m = manifest(&out);
    assert_eq!(m["complete"], true);
    assert_eq!(m["ingest"]["pairs"], m["total_rows"]);
    assert_eq!(m["ingest"]["corpus_images"], 20);
    assert_eq!(m["ingest"]["corpus_texts"], 40);
    let rows = m["total_rows"].as_u64().unwrap() as usize;
    assert!(rows >= 40 * 3, "at least 3 captions per image, got {rows}");
    assert_eq!(
        m["num_shards"].as_u64().unwrap() as usize,
        rows.div_ceil(50)
    );
    assert!(m["stages"]["tfidf"]["produced"].as_u64().unwrap() > 0);

    let mut seen = 0;
    for entry in m["shards"].as_array().unwrap() {
        let file = out.join(entry["file"].as_str().unwrap());
        for (pair, aug) in cmcl::store::shard::read_pairs(&file).unwrap() {
            seen += 1;
            assert!(aug.negatives.len() <= 4);
            for item in &aug.negatives {
                assert_eq!(item.kind, "tfidf");
                let p: serde_json::Value = serde_json::from_str(&item.params).unwrap();
                assert_ne!(p["image_id"], pair.image_id, "negative from the same image");
            }
        }
    }
    assert_eq!(seen, rows);
    assert!(out.join("shard-00000.parquet").exists());

    let shown = stdout(&ok(&["inspect", out.to_str().unwrap(), "-n", "2"]));
    assert!(
        shown.contains("negatives:") && shown.contains("[tfidf]"),
        "{shown}"
    );
    assert!(shown.contains("cmcl.schema_version 1"), "{shown}");
    let stats = stdout(&ok(&["stats", out.to_str().unwrap()]));
    assert!(
        stats.contains("stage tfidf:") && stats.contains("complete"),
        "{stats}"
    );
}

#[test]
fn same_bytes_whatever_the_thread_count_and_a_rerun_reuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 30);
    let pipeline = synth_pipeline(dir.path(), 16, "");
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    augment(&pipeline, &one, &["--threads", "1"]);
    augment(&pipeline, &two, &["--threads", "2"]);
    let reference = shard_bytes(&one);
    assert!(reference.len() > 1);
    assert_eq!(reference, shard_bytes(&two));

    let again = stderr(&augment(&pipeline, &one, &[]));
    assert!(again.contains(" 0 shard(s) written"), "{again}");
    let forced = stderr(&augment(&pipeline, &one, &["--force"]));
    assert!(
        forced.contains(&format!("{} shard(s) written, 0 reused", reference.len())),
        "{forced}"
    );
    assert_eq!(reference, shard_bytes(&one));

    // Shards another build of cmcl wrote are made again: its stages may differ.
    let manifest_path = one.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    assert_eq!(
        manifest["build"].as_str().map(str::len),
        Some(64),
        "{manifest}"
    );
    manifest["build"] = "another build".into();
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let upgraded = stderr(&augment(&pipeline, &one, &[]));
    assert!(
        upgraded.contains(&format!("{} shard(s) written, 0 reused", reference.len())),
        "{upgraded}"
    );
}

#[test]
fn a_corrupted_shard_is_detected_and_redone() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 20);
    let pipeline = synth_pipeline(dir.path(), 20, "");
    let out = dir.path().join("out");
    augment(&pipeline, &out, &[]);
    let reference = shard_bytes(&out);
    let victim = out.join("shard-00001.arrow");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&victim, bytes).unwrap();
    let log = stderr(&augment(&pipeline, &out, &[]));
    assert!(log.contains("1 shard(s) written"), "{log}");
    assert_eq!(reference, shard_bytes(&out));
}

#[test]
fn resume_after_sigkill_gives_identical_shards() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 400);
    let pipeline = synth_pipeline(dir.path(), 8, "parquet = true");
    let reference = dir.path().join("reference");
    augment(&pipeline, &reference, &[]);
    let expected = shard_bytes(&reference);

    let out = dir.path().join("killed");
    let mut child = cmcl()
        .args([
            "augment",
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
            "--threads",
            "1",
        ])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once a few shards are on disk but the run is not done.
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_mid_run = loop {
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        let done = std::fs::read(out.join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m["shards"].as_array().map(Vec::len))
            .unwrap_or(0);
        if done >= 3 {
            child.kill().unwrap(); // SIGKILL on Unix
            child.wait().unwrap();
            break true;
        }
        assert!(Instant::now() < deadline, "the run never wrote 3 shards");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(
        killed_mid_run,
        "the run finished before it could be killed; make it longer"
    );
    assert_eq!(manifest(&out)["complete"], false);

    let log = stderr(&augment(&pipeline, &out, &[]));
    assert!(
        !log.contains(" 0 reused"),
        "the resumed run should keep the finished shards: {log}"
    );
    assert_eq!(expected, shard_bytes(&out));
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_second_run_on_the_same_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 10);
    let pipeline = synth_pipeline(dir.path(), 100, "");
    let out = dir.path().join("out");
    let _held = cmcl::store::lock::OutputLock::acquire(&out).unwrap();
    let result = run(&[
        "augment",
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("another cmcl run"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn shards_open_unchanged_in_pyarrow_and_polars() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 12);
    let pipeline = synth_pipeline(dir.path(), 20, "parquet = true");
    let out = dir.path().join("out");
    augment(&pipeline, &out, &[]);
    let report = python_script("read_shards.py", &[&out]);
    let rows = manifest(&out)["total_rows"].as_u64().unwrap();
    assert!(report.contains(&format!("pyarrow rows={rows}")), "{report}");
    assert!(report.contains(&format!("polars rows={rows}")), "{report}");
}

/// The Python reader (python/cmcl_reader, pyarrow only) on a run with negatives of
/// several kinds and positives: every row once per epoch across workers, seeded
/// sampling, the requested kinds with their text and score (tests/python_reader.py).
#[test]
fn the_python_reader_gives_every_row_once_per_epoch_with_seeded_samples() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 30);
    let stages = "[[stages]]\ntype = \"siblings\"\n\
                  [[stages]]\ntype = \"tfidf\"\nk = 4\n\
                  [[stages]]\ntype = \"scene_graph\"\nmin_candidate_count = 1\n";
    let pipeline = synth_pipeline_with(dir.path(), stages, 25, "");
    let out = dir.path().join("out");
    augment(&pipeline, &out, &[]);
    let report = python_script("python_reader.py", &[&out]);
    let rows = manifest(&out)["total_rows"].as_u64().unwrap();
    assert!(
        report.contains(&format!("python reader ok rows={rows}")),
        "{report}"
    );
}

/// `cmcl check-negatives` judges every negative of a synthetic run by the gold scenes
/// `cmcl synth` wrote: the anchor captions are all true (the judge works), and the
/// negatives of the tfidf and scene_graph stages are false of their own image.
#[test]
fn synthetic_negatives_are_false_of_their_own_image() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 150);
    let stages = "[[stages]]\ntype = \"tfidf\"\nk = 3\n\
                  [[stages]]\ntype = \"scene_graph\"\nmin_candidate_count = 1\n";
    let pipeline = synth_pipeline_with(dir.path(), stages, 1000, "");
    let out = dir.path().join("out");
    augment(&pipeline, &out, &[]);
    let json = dir.path().join("gold.json");
    let scenes = dir.path().join("synth/scenes.jsonl");
    let printed = ok(&[
        "check-negatives",
        out.to_str().unwrap(),
        "--scenes",
        scenes.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(check["pairs_without_scene"], 0);
    let anchors = &check["captions"];
    assert!(anchors["false_of_image"] == 0 && anchors["true_of_image"].as_u64() > Some(400));
    let negatives = check["negatives"].as_object().unwrap();
    let mut judged = 0;
    for (kind, tally) in negatives {
        let (t, f) = (
            tally["true_of_image"].as_u64().unwrap(),
            tally["false_of_image"].as_u64().unwrap(),
        );
        judged += t + f;
        // At most 2% (tfidf) and 0.5% (scene-graph kinds) on the full default set; a
        // small set allows one or two.
        let limit = if kind == "tfidf" { 0.05 } else { 0.02 };
        assert!(
            t as f64 <= limit * (t + f) as f64 + 1.0,
            "{kind}: {t} of {}\n{}",
            t + f,
            stdout(&printed)
        );
    }
    assert!(judged > 300, "{}", stdout(&printed));

    // A scenes file that is not one names the file and line.
    std::fs::write(&scenes, "{\"image_id\": 3}\n").unwrap();
    let bad = run(&[
        "check-negatives",
        out.to_str().unwrap(),
        "--scenes",
        scenes.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("scenes.jsonl") && stderr(&bad).contains("line 1"),
        "{}",
        stderr(&bad)
    );
}
