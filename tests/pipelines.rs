//! Every pipeline under pipelines/ parses, and the real-data ones run on ../shared/data.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn pipelines() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_pipeline_file_parses_and_validates() {
    let files = pipelines();
    assert!(files.len() >= 3, "{files:?}");
    for file in files {
        cmcl::run::config::Pipeline::load(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let out = ok(&["validate", file.to_str().unwrap()]);
        assert!(stdout(&out).contains(": ok"), "{}", stdout(&out));
    }
}

#[test]
fn coco_mini_gets_object_labels_and_image_paths() {
    let data = shared_data();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/coco-mini.toml");
    let out = dir.path().join("out");
    let result = cmcl()
        .args([
            "augment",
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-progress",
        ])
        .env("CMCL_DATA", &data)
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    let m = manifest(&out);
    assert_eq!(m["complete"], true);
    // The COCO-MINI val caption file covers 79 images with 5 captions each.
    assert_eq!(m["ingest"]["pairs"], 395);
    let shown = stdout(&ok(&["inspect", out.to_str().unwrap(), "-n", "1"]));
    let image = shown
        .lines()
        .find_map(|l| l.trim().strip_prefix("image:"))
        .expect("an image path");
    assert!(Path::new(image.trim()).exists(), "{image}");
    assert!(shown.contains("objects: "), "{shown}");
}

#[test]
fn flickr8k_token_file_ingests_without_rejects() {
    let data = shared_data();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"f\"\n[[inputs.pairs]]\nformat = \"flickr8k\"\npath = \"{}\"\n[output]\nrows_per_shard = 50000\n",
            data.join("flickr8k/Flickr8k.token.txt").display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    ok(&[
        "augment",
        "--pipeline",
        pipeline.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ]);
    let m = manifest(&out);
    let pairs = m["ingest"]["pairs"].as_u64().unwrap();
    let rejected: u64 = m["ingest"]["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(pairs + rejected, 40_460);
    assert!(rejected < 20, "{}", m["ingest"]);
}
