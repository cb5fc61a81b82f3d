//! `cmcl train` and `cmcl eval` on a small synthetic run: a run resumed after stopping
//! ends with the same bytes as an uninterrupted one, metrics and the table come out,
//! the training and held-out splits partition the images, and shards without the
//! optional columns still train.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;

/// A tiny model, so the test trains in seconds.
const TRAIN: &str = r#"
[train]
seed = 3
model = { embed_dim = 8, image = { type = "cnn", size = 16, channels = [4, 8], grid = 2 }, text = { type = "scratch", dim = 16, layers = 1, heads = 2, max_len = 16 } }
optim = { epochs = 2, batch_size = 16, warmup_steps = 2 }
data = { validation_fraction = 0.25 }
"#;

fn pipeline(dir: &Path) -> PathBuf {
    pipeline_with(dir, TRAIN)
}

/// The synthetic pipeline with this `[train]` table.
fn pipeline_with(dir: &Path, train: &str) -> PathBuf {
    synth(dir, 24);
    // Tables after [output], so the [train] table goes at the end of the file.
    let path = synth_pipeline_with(dir, "[[stages]]\ntype = \"tfidf\"\nk = 2", 40, "");
    let text = std::fs::read_to_string(&path).unwrap() + train;
    std::fs::write(&path, text).unwrap();
    path
}

/// A MiniLM-initialised text tower whose top layer and one head block train, with its
/// token states cached: a resumed run still ends with the same weights, and a second
/// run reads the cache instead of computing the states again.
#[test]
fn a_pretrained_text_tower_resumes_to_the_same_weights_from_its_cached_states() {
    let dir = tempfile::tempdir().unwrap();
    let minilm = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let train_table = format!(
        "[train]\nseed = 3\n\
         model = {{ embed_dim = 8, image = {{ type = \"cnn\", size = 16, channels = [4, 8], grid = 2 }}, \
         text = {{ type = \"pretrained\", model = \"{}\", train_layers = 1, head_layers = 1, heads = 2 }} }}\n\
         optim = {{ epochs = 2, batch_size = 16, warmup_steps = 2 }}\n",
        minilm.display()
    );
    let pipeline = pipeline_with(dir.path(), &train_table);
    let out = dir.path().join("out");
    let augmented = run_augment(&pipeline, &out, &[]);
    assert!(augmented.status.success(), "{}", stderr(&augmented));

    let whole = train(&pipeline, &out, &["--name", "whole"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let cache: Vec<PathBuf> = std::fs::read_dir(out.join("train/token-states"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    // Layer 5 of 6: the top layer trains.
    assert!(
        cache.len() == 1 && cache[0].to_string_lossy().ends_with("-l5.bin"),
        "{cache:?}"
    );
    let cached = std::fs::metadata(&cache[0]).unwrap().modified().unwrap();

    let first = train(&pipeline, &out, &["--name", "split", "--stop-after", "1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    finish_and_compare(&pipeline, &out);
    assert_eq!(
        std::fs::metadata(&cache[0]).unwrap().modified().unwrap(),
        cached,
        "the second run computed states again"
    );
    let table = stdout(&eval(&pipeline, &out, &[]));
    assert!(
        table.contains("| whole | 2 |") && table.contains("| split | 2 |"),
        "{table}"
    );
}

fn train(pipeline: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    run_pipeline("train", pipeline, out, extra)
}

/// `cmcl eval` on the run, which must succeed.
fn eval(pipeline: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let result = run_pipeline("eval", pipeline, out, extra);
    assert!(result.status.success(), "{}", stderr(&result));
    result
}

/// Finishes run `split` (stopped after epoch 1) and checks that it ends with the
/// weights and optimizer state of the uninterrupted run `whole`.
fn finish_and_compare(pipeline: &Path, out: &Path) {
    let rest = train(pipeline, out, &["--name", "split"]);
    assert!(rest.status.success(), "{}", stderr(&rest));
    for file in ["model.safetensors", "optimizer.safetensors"] {
        assert!(
            read(out.join("train/whole/epoch-0002").join(file))
                == read(out.join("train/split/epoch-0002").join(file)),
            "{file} differs between the resumed and the uninterrupted run"
        );
    }
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_resumed_run_ends_with_the_same_weights_and_eval_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path());
    let out = dir.path().join("out");
    let augmented = run_augment(&pipeline, &out, &[]);
    assert!(augmented.status.success(), "{}", stderr(&augmented));

    let whole = train(&pipeline, &out, &["--name", "whole"]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let first = train(&pipeline, &out, &["--name", "split", "--stop-after", "1"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let state: serde_json::Value =
        serde_json::from_slice(&read(out.join("train/split/state.json"))).unwrap();
    assert_eq!(state["epochs_done"], 1);
    finish_and_compare(&pipeline, &out);
    assert!(
        !out.join("train/split/epoch-0001").exists(),
        "old checkpoint kept"
    );

    let csv = String::from_utf8(read(out.join("train/whole/metrics.csv"))).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.starts_with("epoch,steps,train_loss") && csv.contains("acc_tfidf"),
        "{csv}"
    );
    let svg = String::from_utf8(read(out.join("train/whole/metrics.svg"))).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");

    let done = train(&pipeline, &out, &["--name", "whole"]);
    assert!(
        stderr(&done).contains("already trained"),
        "{}",
        stderr(&done)
    );
    // A run trained on other shards (augment ran again since) starts over.
    let state_path = out.join("train/whole/state.json");
    let weights = read(out.join("train/whole/epoch-0002/model.safetensors"));
    let mut state: serde_json::Value = serde_json::from_slice(&read(state_path.clone())).unwrap();
    assert_eq!(
        state["shards_sha256"].as_str().map(str::len),
        Some(64),
        "{state}"
    );
    state["shards_sha256"] = "other shards".into();
    std::fs::write(&state_path, state.to_string()).unwrap();
    let again = train(&pipeline, &out, &["--name", "whole"]);
    assert!(
        stderr(&again).contains("starting over"),
        "{}",
        stderr(&again)
    );
    assert!(weights == read(out.join("train/whole/epoch-0002/model.safetensors")));
    let ablated = train(
        &pipeline,
        &out,
        &["--name", "whole", "--without", "hard-negatives"],
    );
    assert!(!ablated.status.success());
    assert!(stderr(&ablated).contains("--fresh"), "{}", stderr(&ablated));

    let table = eval(&pipeline, &out, &[]);
    let table = stdout(&table);
    assert!(table.starts_with("| run | epochs | i->t R@1"), "{table}");
    assert!(
        table.contains("| split | 2 |") && table.contains("| whole | 2 |"),
        "{table}"
    );
    assert!(table.contains("tfidf"), "{table}");

    // The two splits partition the images and the captions.
    let counts = |split: &str| -> (u64, u64) {
        let json = dir.path().join(format!("{split}.json"));
        let json_arg = json.to_str().unwrap();
        eval(
            &pipeline,
            &out,
            &["--runs", "whole", "--split", split, "--json", json_arg],
        );
        let table: serde_json::Value = serde_json::from_slice(&read(json)).unwrap();
        let report = &table["runs"][0][2];
        (
            report["images"].as_u64().unwrap(),
            report["captions"].as_u64().unwrap(),
        )
    };
    let (held_out, trained_on) = (counts("validation"), counts("train"));
    assert!(
        held_out.0 > 0 && trained_on.0 > 0,
        "{held_out:?} {trained_on:?}"
    );
    let pairs = std::fs::read_to_string(dir.path().join("synth/pairs.jsonl")).unwrap();
    assert_eq!(held_out.0 + trained_on.0, 24);
    assert_eq!(held_out.1 + trained_on.1, pairs.lines().count() as u64);
}

#[test]
fn shards_without_optional_columns_still_train() {
    use arrow_array::{RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path());
    let pairs = std::fs::read_to_string(dir.path().join("synth/pairs.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = pairs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let column = |name: &str, f: &dyn Fn(&serde_json::Value) -> String| -> Arc<StringArray> {
        Arc::new(rows.iter().map(|r| Some(f(&r[name]))).collect())
    };
    let images = dir.path().join("synth");
    let schema = Arc::new(Schema::new(vec![
        Field::new("image_id", DataType::Utf8, false),
        Field::new("caption", DataType::Utf8, false),
        Field::new("image_path", DataType::Utf8, false),
    ]));
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let path = |v: &serde_json::Value| images.join(v.as_str().unwrap()).display().to_string();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            column("image_id", &text),
            column("caption", &text),
            column("image_path", &path),
        ],
    )
    .unwrap();
    let out = dir.path().join("bare");
    std::fs::create_dir_all(&out).unwrap();
    cmcl::store::shard::write_ipc(&out.join("part-0.arrow"), &batch).unwrap();
    let trained = train(&pipeline, &out, &[]);
    assert!(trained.status.success(), "{}", stderr(&trained));
    let csv = String::from_utf8(read(out.join("train/cmcl/metrics.csv"))).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        !csv.contains("acc_"),
        "no negatives, so no accuracy columns: {csv}"
    );
}
