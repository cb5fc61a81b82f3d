//! `cmcl index` and the `retrieval` stage on the synthetic set: neighbours fill the
//! shards and every exclusion holds, indexes are reused or rebuilt as their inputs say,
//! reproducible builds repeat to the byte, and each image-embedding source works or
//! fails with the file named.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use common::*;

fn minilm() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
}

/// A pipeline over `dir/synth` with only a retrieval stage; `image` is the
/// `image_embeddings` table, `extra` more stage keys.
fn pipeline(dir: &Path, image: &str, extra: &str) -> PathBuf {
    let stage = format!(
        "[[stages]]\ntype = \"retrieval\"\nimage_k = 3\ntext_k = 3\ntext_encoder = \"{}\"\nimage_embeddings = {image}\n{extra}",
        minilm().display()
    );
    synth_pipeline_with(dir, &stage, 100, "")
}

fn index(pipeline: &Path, out: &Path) -> std::process::Output {
    run_pipeline("index", pipeline, out, &[])
}

/// Per pair: (image id, caption, objects, items as (kind, ref_id, text, score, params)).
type Row = (
    String,
    String,
    Vec<String>,
    Vec<(String, String, Option<String>, f32, serde_json::Value)>,
);

/// Per pair, the items of one list column (`neighbours`, `negatives`, `positives`).
fn rows(out: &Path, column: &str) -> Vec<Row> {
    let m = manifest(out);
    let mut rows = Vec::new();
    for entry in m["shards"].as_array().unwrap() {
        let file = out.join(entry["file"].as_str().unwrap());
        for (pair, aug) in cmcl::store::shard::read_pairs(&file).unwrap() {
            let items = match column {
                "neighbours" => aug.neighbours,
                "negatives" => aug.negatives,
                "positives" => aug.positives,
                other => panic!("no item column {other}"),
            };
            let found = items
                .into_iter()
                .map(|i| {
                    let params = serde_json::from_str(&i.params).unwrap();
                    (
                        i.kind,
                        i.ref_id.unwrap_or_default(),
                        i.text,
                        i.score,
                        params,
                    )
                })
                .collect();
            rows.push((
                pair.image_id,
                pair.caption,
                pair.objects.unwrap_or_default(),
                found,
            ));
        }
    }
    rows
}

fn label_set(labels: &[String]) -> BTreeSet<&str> {
    labels.iter().map(String::as_str).collect()
}

#[test]
fn neighbours_fill_the_shards_and_every_exclusion_holds() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 30);
    let pipeline = pipeline(
        dir.path(),
        r#"{ source = "descriptor" }"#,
        "min_object_jaccard = 0.25",
    );
    let out = dir.path().join("out");
    let first = index(&pipeline, &out);
    assert!(first.status.success(), "{}", stderr(&first));
    let log = stderr(&first);
    assert!(log.contains("text index") && log.contains("built"), "{log}");
    assert!(log.contains("object labels: mean Jaccard"), "{log}");
    let again = index(&pipeline, &out);
    assert!(
        stderr(&again).matches("unchanged, reused").count() == 3,
        "{}",
        stderr(&again)
    );

    assert!(run_augment(&pipeline, &out, &[]).status.success());
    let rows = rows(&out, "neighbours");
    let images_of_caption: HashMap<&str, &str> =
        rows.iter().map(|r| (r.1.as_str(), r.0.as_str())).collect();
    let objects_of: HashMap<&str, &[String]> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.2.as_slice()))
        .collect();
    let (mut with_image, mut with_text) = (0, 0);
    for (image_id, caption, objects, items) in &rows {
        let images: Vec<_> = items.iter().filter(|i| i.0 == "image_neighbour").collect();
        let texts: Vec<_> = items.iter().filter(|i| i.0 == "text_neighbour").collect();
        with_image += usize::from(!images.is_empty());
        with_text += usize::from(!texts.is_empty());
        assert!(images.len() <= 3 && texts.len() <= 3);
        for (_, ref_id, _, score, params) in &images {
            assert_ne!(ref_id, image_id, "own image as neighbour");
            let jaccard = params["object_jaccard"].as_f64().unwrap();
            assert!(jaccard >= 0.25 - 1e-6, "{jaccard}");
            if let Some(theirs) = objects_of.get(ref_id.as_str()) {
                let (a, b) = (label_set(objects), label_set(theirs));
                let expected = a.intersection(&b).count() as f64 / a.union(&b).count() as f64;
                assert!((expected - jaccard).abs() < 1e-6);
            }
            assert!((0.0..=2.0).contains(score));
        }
        let texts_seen: BTreeSet<String> = texts
            .iter()
            .map(|t| cmcl::text::words::normalize(t.2.as_deref().unwrap()))
            .collect();
        assert_eq!(texts_seen.len(), texts.len(), "duplicate text neighbours");
        assert!(!texts_seen.contains(&cmcl::text::words::normalize(caption)));
        for (_, _, text, _, params) in &texts {
            let text = text.as_deref().unwrap();
            if params["source"] == "caption" {
                assert_ne!(
                    images_of_caption.get(text),
                    Some(&image_id.as_str()),
                    "own image's caption"
                );
            }
        }
        let scores: Vec<f32> = texts.iter().map(|t| t.3).collect();
        assert!(scores.windows(2).all(|w| w[0] <= w[1]), "{scores:?}");
    }
    assert_eq!(with_text, rows.len());
    assert!(
        with_image * 2 > rows.len(),
        "{with_image} of {}",
        rows.len()
    );
}

#[test]
fn reproducible_builds_repeat_to_the_byte_and_changed_inputs_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 12);
    let pipeline = pipeline(
        dir.path(),
        r#"{ source = "descriptor" }"#,
        "reproducible = true",
    );
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let result = index(&pipeline, out);
        assert!(result.status.success(), "{}", stderr(&result));
    }
    for file in ["text.hnsw", "image.hnsw"] {
        let bytes = |dir: &Path| std::fs::read(dir.join("index").join(file)).unwrap();
        assert_eq!(bytes(&a), bytes(&b), "{file}");
    }
    // One more corpus text: the text index is rebuilt, the image index kept.
    let corpus = dir.path().join("synth/text_corpus.jsonl");
    let mut texts = std::fs::read_to_string(&corpus).unwrap();
    texts.push_str("{\"text_id\":\"extra\",\"text\":\"a lone green star\"}\n");
    std::fs::write(&corpus, texts).unwrap();
    let log = stderr(&index(&pipeline, &a));
    assert!(
        log.contains("text index") && log.contains("built in"),
        "{log}"
    );
    assert!(
        log.contains("image index") && log.contains("unchanged, reused"),
        "{log}"
    );
}

/// Rewrites the synthetic pairs and image corpus with an `image_vector` per image.
fn add_vectors(synth: &Path, dim_of: impl Fn(&str) -> usize) {
    for file in ["pairs.jsonl", "image_corpus.jsonl"] {
        let path = synth.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = record["image_id"].as_str().unwrap().to_string();
            // A vector that depends only on the image, so captions of one image agree.
            let seed = id
                .bytes()
                .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
            let vector: Vec<f32> = (0..dim_of(&id))
                .map(|i| ((seed as usize + i * 13) % 17) as f32)
                .collect();
            record["image_vector"] = serde_json::json!(vector);
            out.push_str(&record.to_string());
            out.push('\n');
        }
        std::fs::write(&path, out).unwrap();
    }
}

#[test]
fn precomputed_vectors_from_records_and_wrong_dimensions() {
    let dir = tempfile::tempdir().unwrap();
    let synth_dir = synth(dir.path(), 10);
    add_vectors(&synth_dir, |_| 8);
    let with_vectors = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap().replace(
            "objects = \"objects\" }",
            "objects = \"objects\", image_vector = \"image_vector\" }",
        );
        let text = text.replace(
            "path = \"synth/image_corpus.jsonl\"",
            "path = \"synth/image_corpus.jsonl\"\ncolumns = { image_id = \"image_id\", image_path = \"image_path\", image_vector = \"image_vector\", objects = \"objects\" }",
        );
        std::fs::write(p, text).unwrap();
    };
    let pipeline = pipeline(dir.path(), r#"{ source = "precomputed" }"#, "");
    with_vectors(&pipeline);
    let out = dir.path().join("out");
    let result = index(&pipeline, &out);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("vectors of 8 (precomputed/records)"),
        "{}",
        stderr(&result)
    );

    add_vectors(&synth_dir, |id| if id == "cimg-00003" { 9 } else { 8 });
    let result = index(&pipeline, &dir.path().join("out2"));
    let err = stderr(&result);
    assert!(!result.status.success());
    assert!(
        err.contains("cimg-00003") && err.contains("9 dimensions"),
        "{err}"
    );
}

#[test]
fn clip_retrieval_npy_folder() {
    use arrow_array::{RecordBatch, StringArray};
    let dir = tempfile::tempdir().unwrap();
    let synth_dir = synth(dir.path(), 8);
    // clip-retrieval's layout, holding every image of the run by path.
    let mut paths = Vec::new();
    for file in ["pairs.jsonl", "image_corpus.jsonl"] {
        for line in std::fs::read_to_string(synth_dir.join(file))
            .unwrap()
            .lines()
        {
            let record: serde_json::Value = serde_json::from_str(line).unwrap();
            let path = synth_dir.join(record["image_path"].as_str().unwrap());
            let path = path.to_string_lossy().into_owned();
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    let emb = dir.path().join("emb");
    std::fs::create_dir_all(emb.join("img_emb")).unwrap();
    std::fs::create_dir_all(emb.join("metadata")).unwrap();
    let data: Vec<f32> = (0..paths.len() * 4)
        .map(|i| ((i * 7) % 11) as f32 + 1.0)
        .collect();
    cmcl::embed::npy::write(&emb.join("img_emb/img_emb_0.npy"), paths.len(), 4, &data).unwrap();
    let batch = RecordBatch::try_from_iter([(
        "image_path",
        std::sync::Arc::new(StringArray::from(paths.clone())) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let file = std::fs::File::create(emb.join("metadata/metadata_0.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let image = format!(
        r#"{{ source = "precomputed", path = "{}" }}"#,
        emb.display()
    );
    let pipeline = pipeline(dir.path(), &image, "");
    let result = index(&pipeline, &dir.path().join("out"));
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("vectors of 4 (precomputed/"),
        "{}",
        stderr(&result)
    );

    // An image the folder does not hold is named.
    let short = RecordBatch::try_from_iter([(
        "image_path",
        std::sync::Arc::new(StringArray::from(paths[1..].to_vec())) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let file = std::fs::File::create(emb.join("metadata/metadata_0.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, short.schema(), None).unwrap();
    writer.write(&short).unwrap();
    writer.close().unwrap();
    let err = stderr(&index(&pipeline, &dir.path().join("out2")));
    assert!(
        err.contains("metadata_0.parquet") && err.contains("rows"),
        "{err}"
    );
}

#[test]
fn a_corrupt_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let synth_dir = synth(dir.path(), 6);
    let victim = synth_dir.join("corpus_images/cimg-00002.png");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes.truncate(bytes.len() / 3);
    std::fs::write(&victim, bytes).unwrap();
    let pipeline = pipeline(dir.path(), r#"{ source = "descriptor" }"#, "");
    let result = index(&pipeline, &dir.path().join("out"));
    let err = stderr(&result);
    assert!(!result.status.success());
    assert!(
        err.contains("cimg-00002.png") && err.contains("unreadable image"),
        "{err}"
    );
}

#[test]
fn descriptor_embeds_real_coco_jpegs() {
    let coco = shared_data().join("coco-mini/val2017");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&coco)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let config = cmcl::embed::image::ImageEmbeddingConfig::default();
    let embedder = config.build().unwrap();
    let mut vectors = Vec::new();
    for file in files.iter().take(4) {
        let path = file.to_string_lossy();
        let image = cmcl::embed::image::ImageRef {
            image_id: "x",
            image_path: Some(&path),
            image_vector: None,
        };
        let v = embedder.embed(&image).unwrap();
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4 && v.len() == 320);
        vectors.push(v);
    }
    // Different photographs, different descriptors.
    assert!(vectors.windows(2).all(|w| w[0] != w[1]));
}

#[test]
fn a_tiny_random_clip_embeds_the_images() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 6);
    let model = dir.path().join("clip");
    cmcl::embed::image::clip::testing::write_tiny_clip(&model, 12, 3).unwrap();
    let image = format!(r#"{{ source = "clip", model = "{}" }}"#, model.display());
    let pipeline = pipeline(dir.path(), &image, "");
    let out = dir.path().join("out");
    let result = index(&pipeline, &out);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(
        stderr(&result).contains("vectors of 12 (clip/clip@"),
        "{}",
        stderr(&result)
    );
    assert!(run_augment(&pipeline, &out, &[]).status.success());
    let images = rows(&out, "neighbours")
        .iter()
        .flat_map(|r| r.3.iter().filter(|i| i.0 == "image_neighbour"))
        .count();
    assert!(images > 0);
}

#[test]
fn bm25_index_serves_search_and_the_bm25_miner() {
    let dir = tempfile::tempdir().unwrap();
    synth(dir.path(), 30);
    let stage = "[[stages]]\ntype = \"tfidf\"\nmethod = \"bm25\"\nk = 3\nmax_similarity = 0.8";
    let pipeline = synth_pipeline_with(dir.path(), stage, 40, "");
    let out = dir.path().join("out");
    let first = index(&pipeline, &out);
    assert!(first.status.success(), "{}", stderr(&first));
    let log = stderr(&first);
    assert!(
        log.contains("bm25 index:") && log.contains("built in"),
        "{log}"
    );
    // No retrieval stage, so no HNSW index; the BM25 index is named once.
    assert!(!log.contains("text index"), "{log}");
    assert_eq!(log.matches("bm25 index:").count(), 1, "{log}");
    let again = stderr(&index(&pipeline, &out));
    assert!(
        again.contains("bm25 index:") && again.contains("unchanged, reused"),
        "{again}"
    );

    // The first caption is row 0: it ties with any identical text and wins the tie.
    let pairs = std::fs::read_to_string(dir.path().join("synth/pairs.jsonl")).unwrap();
    let first_pair: serde_json::Value =
        serde_json::from_str(pairs.lines().next().unwrap()).unwrap();
    let caption = first_pair["caption"].as_str().unwrap();
    let found = ok(&[
        "search",
        out.to_str().unwrap(),
        caption,
        "-k",
        "5",
        "--json",
    ]);
    let hits: Vec<serde_json::Value> = stdout(&found)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(hits.len(), 5);
    assert_eq!(
        (
            hits[0]["rank"].as_u64(),
            hits[0]["source"].as_str(),
            hits[0]["text"].as_str()
        ),
        (Some(1), Some("caption"), Some(caption))
    );
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    let plain = stdout(&ok(&[
        "search",
        out.join("index").to_str().unwrap(),
        "zebra unicorn",
        "-k",
        "2",
    ]));
    assert!(plain.is_empty(), "{plain}");
    let missing = run(&["search", dir.path().to_str().unwrap(), "cube"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("cmcl index"),
        "{}",
        stderr(&missing)
    );

    let augmented = run_augment(&pipeline, &out, &[]);
    assert!(augmented.status.success(), "{}", stderr(&augmented));
    let rows = rows(&out, "negatives");
    let mut produced = 0;
    for (image_id, caption, _, items) in &rows {
        assert!(items.len() <= 3, "{caption}: {items:?}");
        for (kind, _, text, score, params) in items {
            assert_eq!(kind, "bm25");
            assert_ne!(
                params["image_id"].as_str(),
                Some(image_id.as_str()),
                "{caption}"
            );
            assert!(*score > 0.0 && *score <= 0.8, "{caption}: {score}");
            assert!(text.is_some());
            produced += 1;
        }
        let scores: Vec<f32> = items.iter().map(|i| i.3).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    }
    assert!(
        produced >= rows.len() * 2,
        "{produced} negatives for {} pairs",
        rows.len()
    );
}
