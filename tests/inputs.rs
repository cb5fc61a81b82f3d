//! Where users' data lives: webdataset tars (as img2dataset writes them) give the same
//! pairs as the same data in JSONL, with damage counted as rejects; and a run of
//! captions without images uses every stage that works from text alone, while one that
//! asks for pixels the inputs lack is refused before anything is read.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn minilm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
}

/// A pipeline `name.toml` in `dir` over one pair source (TOML keys) with tfidf and
/// retrieval (image and text neighbours, reproducible indexes).
fn pipeline(dir: &Path, name: &str, source: &str) -> PathBuf {
    let text = format!(
        "name = \"{name}\"\nseed = 1\n[[inputs.pairs]]\n{source}\ndataset = \"mini\"\n\
         [ingest]\nmax_reject_share = 1.0\n\
         [[stages]]\ntype = \"tfidf\"\nk = 2\n\
         [[stages]]\ntype = \"retrieval\"\nimage_k = 2\ntext_k = 2\nreproducible = true\n\
         text_encoder = \"{}\"\nimage_embeddings = {{ source = \"descriptor\", grid = 2, size = 32 }}\n\
         [output]\nrows_per_shard = 40\n",
        minilm().display()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Every row of a run, with where it was read from blanked: the rest must not depend
/// on whether an image sat in a tar or in a file.
fn rows_without_locations(
    out: &Path,
) -> Vec<(cmcl::core::record::Pair, cmcl::core::sample::Augmented)> {
    let mut rows = Vec::new();
    for entry in manifest(out)["shards"].as_array().unwrap() {
        let file = out.join(entry["file"].as_str().unwrap());
        for (mut pair, mut augmented) in cmcl::store::shard::read_pairs(&file).unwrap() {
            assert!(pair.image_path.take().is_some(), "{pair:?}");
            pair.source.clear();
            for item in &mut augmented.neighbours {
                let mut params: serde_json::Value = serde_json::from_str(&item.params).unwrap();
                params.as_object_mut().unwrap().remove("image_path");
                item.params = params.to_string();
            }
            rows.push((pair, augmented));
        }
    }
    rows
}

#[test]
fn webdataset_tars_give_the_pairs_and_images_of_the_same_data_in_jsonl() {
    let data = shared_data();
    let dir = tempfile::tempdir().unwrap();
    let made = python_script("make_webdataset.py", &[&data.join("coco-mini"), dir.path()]);
    let made: serde_json::Value = serde_json::from_str(made.trim()).unwrap();
    let samples = made["samples"].as_u64().unwrap();

    let jsonl = pipeline(
        dir.path(),
        "jsonl",
        "format = \"jsonl\"\npath = \"pairs.jsonl\"\n\
         columns = { image_id = \"image_id\", caption = \"caption\", id = \"caption_id\", image_path = \"image_path\", objects = \"objects\" }",
    );
    let tars = pipeline(
        dir.path(),
        "wds",
        "format = \"webdataset\"\npath = \"wds/{00000..00002}.tar\"",
    );
    let listed = pipeline(
        dir.path(),
        "listed",
        "format = \"webdataset\"\npath = \"wds-parquet/{00000..00002}.tar\"",
    );
    let mut runs = Vec::new();
    for (name, pipeline) in [("jsonl", &jsonl), ("wds", &tars), ("listed", &listed)] {
        let out = dir.path().join(format!("out-{name}"));
        let result = run_augment(pipeline, &out, &[]);
        assert!(result.status.success(), "{name}: {}", stderr(&result));
        let m = manifest(&out);
        assert_eq!(m["ingest"]["pairs"], samples, "{name}: {}", m["ingest"]);
        assert_eq!(m["ingest"]["rejected"], serde_json::json!({}), "{name}");
        runs.push(rows_without_locations(&out));
    }
    // Same captions, ids, objects, and the same image and text neighbours with the same
    // scores: the images read from the tars embed exactly as the files do.
    let image_neighbours = runs[0]
        .iter()
        .flat_map(|(_, a)| &a.neighbours)
        .filter(|n| n.kind == "image_neighbour")
        .count();
    assert!(image_neighbours as u64 >= samples, "{image_neighbours}");
    assert!(runs[0] == runs[1], "tars differ from the JSONL run");
    assert!(
        runs[0] == runs[2],
        "tars with parquet listings differ from the JSONL run"
    );
    // The listing's failed downloads are not samples; its files are in the manifest.
    let m = manifest(&dir.path().join("out-listed"));
    let inputs: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(inputs.len(), 6, "{inputs:?}");
    assert!(inputs
        .iter()
        .any(|p| p.ends_with("wds-parquet/00002.parquet")));

    let image_path = cmcl::store::shard::read_pairs(&dir.path().join("out-wds/shard-00000.arrow"))
        .unwrap()[0]
        .0
        .image_path
        .clone()
        .unwrap();
    assert!(
        image_path.ends_with("wds/00000.tar#000000000.jpg"),
        "{image_path}"
    );

    // A sample without an image, an image that is not one, and a tar cut off in a member.
    let bad = pipeline(
        dir.path(),
        "bad",
        "format = \"webdataset\"\npath = \"wds-bad/{00000,00001}.tar\"",
    );
    let out = dir.path().join("out-bad");
    let result = run_augment(&bad, &out, &[]);
    assert!(result.status.success(), "{}", stderr(&result));
    let m = manifest(&out);
    assert_eq!(m["ingest"]["pairs"], made["bad_good"]);
    assert_eq!(
        m["ingest"]["rejected"],
        serde_json::json!({"bad_archive": 1, "missing_field": 1, "unreadable_image": 1})
    );
    let rejects = std::fs::read_to_string(out.join("rejects.jsonl")).unwrap();
    let no_image = made["no_image"].as_str().unwrap();
    let not_an_image = made["not_an_image"].as_str().unwrap();
    for expected in [
        format!("00000.tar#{no_image}\""),
        "no image member".to_string(),
        format!("image member {not_an_image}.jpg"),
        "00001.tar\"".to_string(),
        "truncated: member".to_string(),
    ] {
        assert!(rejects.contains(&expected), "{expected} not in {rejects}");
    }
}

/// The first `n` COCO val captions as JSONL without any image field.
fn captions_only(dir: &Path, n: usize) -> PathBuf {
    let coco = shared_data().join("coco/annotations/captions_val2017.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(coco).unwrap()).unwrap();
    let lines: Vec<String> = json["annotations"].as_array().unwrap()[..n]
        .iter()
        .map(|a| {
            serde_json::json!({"image_id": a["image_id"], "caption_id": a["id"], "caption": a["caption"]})
                .to_string()
        })
        .collect();
    let path = dir.join("captions.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn caption_pipeline(dir: &Path, image_k: usize) -> PathBuf {
    let text = format!(
        "name = \"captions\"\nseed = 1\n[[inputs.pairs]]\nformat = \"jsonl\"\npath = \"captions.jsonl\"\n\
         columns = {{ image_id = \"image_id\", caption = \"caption\", id = \"caption_id\" }}\n\
         [[stages]]\ntype = \"backtranslate\"\nbackend = \"apertium\"\npivots = [\"spa\", \"cat\", \"eo\"]\n\
         encoder = \"{m}\"\n\
         [[stages]]\ntype = \"tfidf\"\nk = 2\n\
         [[stages]]\ntype = \"scene_graph\"\nmin_candidate_count = 1\n\
         [[stages]]\ntype = \"retrieval\"\nimage_k = {image_k}\ntext_k = 2\ntext_encoder = \"{m}\"\n\
         [output]\nrows_per_shard = 250\n",
        m = minilm().display()
    );
    let path = dir.join(format!("captions-{image_k}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn captions_without_images_run_every_text_stage_and_pixels_are_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    captions_only(dir.path(), 1000);

    let text_only = caption_pipeline(dir.path(), 0);
    let out = dir.path().join("out");
    let cache = dir.path().join("cache");
    let result = run_augment(&text_only, &out, &["--cache-dir", cache.to_str().unwrap()]);
    assert!(result.status.success(), "{}", stderr(&result));
    let m = manifest(&out);
    assert_eq!(m["complete"], true);
    assert_eq!(m["ingest"]["pairs"], 1000);
    for stage in ["backtranslate", "tfidf", "scene_graph", "retrieval"] {
        let produced = m["stages"][stage]["produced"].as_u64().unwrap_or(0);
        assert!(
            produced > 0,
            "stage {stage} produced nothing: {}",
            m["stages"]
        );
    }
    assert!(!out.join("index/image.hnsw").exists());
    assert!(out.join("index/text.hnsw").exists());

    // Image neighbours need pixels these records lack: refused by `validate`, and by
    // `augment` before ingest.
    let needs_pixels = caption_pipeline(dir.path(), 2);
    let result = run(&["validate", needs_pixels.to_str().unwrap()]);
    assert!(!result.status.success());
    let why = stderr(&result);
    for expected in [
        "stage retrieval needs pixels",
        "captions.jsonl",
        "image_k = 0",
    ] {
        assert!(why.contains(expected), "{expected} not in {why}");
    }
    let out = dir.path().join("out-pixels");
    let result = run_augment(&needs_pixels, &out, &[]);
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("needs pixels"),
        "{}",
        stderr(&result)
    );
    assert!(!out.join("rejects.jsonl").exists(), "ingest ran");
}
