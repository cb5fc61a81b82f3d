//! The bad-input set: every broken file or record gets a clear error naming the file
//! (and line), or a counted reject in rejects.jsonl; never a panic.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use common::*;

/// Writes a pipeline reading `input` as `format` and runs augment on it.
fn run_on(
    dir: &Path,
    format: &str,
    input: &Path,
    ingest: &str,
    source_extra: &str,
) -> (std::process::Output, PathBuf) {
    let pipeline = dir.join("p.toml");
    std::fs::write(
        &pipeline,
        format!(
            "name = \"bad\"\n[[inputs.pairs]]\nformat = \"{format}\"\npath = \"{}\"\n{source_extra}\n[ingest]\n{ingest}\n[[stages]]\ntype = \"tfidf\"\n",
            input.display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    (run_augment(&pipeline, &out, &[]), out)
}

fn rejects(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("rejects.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn truncated_coco_json_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("captions.json");
    std::fs::write(&input, "{\"images\": [{\"id\": 1, \"file_name\": \"a.jpg\"}],\n \"annotations\": [{\"id\": 5, \"image_id\": 1, \"cap").unwrap();
    let (result, _) = run_on(dir.path(), "coco", &input, "", "");
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("captions.json:2") && err.contains("truncated JSON"),
        "{err}"
    );
}

#[test]
fn csv_without_a_required_column_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.csv");
    std::fs::write(&input, "image_id,text\n1,a dog\n").unwrap();
    let (result, _) = run_on(dir.path(), "csv", &input, "", "");
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("pairs.csv:1") && err.contains("no column named \"caption\""),
        "{err}"
    );
}

#[test]
fn parquet_without_a_required_column_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.parquet");
    let ids: ArrayRef = Arc::new(StringArray::from(vec!["1", "2"]));
    let batch = RecordBatch::try_from_iter([("image_id", ids)]).unwrap();
    cmcl::store::shard::write_parquet(&input, &batch).unwrap();
    let (result, _) = run_on(dir.path(), "parquet", &input, "", "");
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("pairs.parquet") && err.contains("no column named \"caption\""),
        "{err}"
    );
}

#[test]
fn bad_csv_records_are_counted_rejects_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.csv");
    let long = "y".repeat(100_000);
    let mut body = b"image_id,caption,id\n1,a dog on a mat,c1\n2,,c2\n".to_vec();
    body.extend_from_slice(b"3,a cat \xfe\xff,c3\n");
    body.extend_from_slice(format!("4,{long},c4\n").as_bytes());
    body.extend_from_slice(b"5,a red bus,c1\n");
    body.extend_from_slice(b"6\n");
    body.extend_from_slice(b"7,a bird on a wire,c7\n");
    std::fs::write(&input, body).unwrap();
    let (result, out) = run_on(
        dir.path(),
        "csv",
        &input,
        "max_reject_share = 0.9",
        "columns = { id = \"id\" }",
    );
    assert!(result.status.success(), "{}", stderr(&result));
    let got: Vec<(String, String)> = rejects(&out)
        .iter()
        .map(|r| {
            (
                r["source"]
                    .as_str()
                    .unwrap()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .to_string(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("3", "empty_caption"),
        ("4", "invalid_utf8"),
        ("5", "oversized_caption"),
        ("6", "duplicate_id"),
        ("7", "missing_field"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, expected);
    let m = manifest(&out);
    assert_eq!(m["ingest"]["pairs"], 2);
    assert_eq!(m["ingest"]["read"], 7);
    assert_eq!(m["ingest"]["rejected"]["duplicate_id"], 1);
}

#[test]
fn too_many_rejects_fail_the_run_with_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.jsonl");
    std::fs::write(
        &input,
        "{\"image_id\": 1, \"caption\": \"a dog\"}\n{\"image_id\": 2}\nnot json\n",
    )
    .unwrap();
    let (result, out) = run_on(dir.path(), "jsonl", &input, "max_reject_share = 0.5", "");
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(err.contains("2 of 3 input records rejected"), "{err}");
    assert!(err.contains("rejects.jsonl"), "{err}");
    assert_eq!(
        rejects(&out).len(),
        2,
        "the rejects are written even when the run fails"
    );
}

#[test]
fn flickr_lines_without_a_tab_or_with_bad_bytes_are_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("Flickr8k.token.txt");
    std::fs::write(&input, b"a.jpg#0\tA dog runs .\na.jpg#1 no tab here\nb.jpg#0\tbad \xc3\x28 utf8\nb.jpg#1\tA cat sits .\n").unwrap();
    let (result, out) = run_on(dir.path(), "flickr8k", &input, "max_reject_share = 0.5", "");
    assert!(result.status.success(), "{}", stderr(&result));
    let reasons: Vec<String> = rejects(&out)
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["malformed_record", "invalid_utf8"]);
    assert_eq!(manifest(&out)["ingest"]["pairs"], 2);
}

#[test]
fn a_missing_input_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = run_on(dir.path(), "jsonl", &dir.path().join("nope.jsonl"), "", "");
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("nope.jsonl"),
        "{}",
        stderr(&result)
    );
}

#[test]
fn invalid_pipelines_are_refused_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, "name = \"x\"\n[[inputs.pairs]]\nformat = \"jsonl\"\npath = \"a\"\n[[stages]]\ntype = \"tfidf\"\nk = 0\n").unwrap();
    let result = run(&["validate", path.to_str().unwrap()]);
    assert!(!result.status.success());
    assert!(
        stderr(&result).contains("k must be at least 1"),
        "{}",
        stderr(&result)
    );
    std::fs::write(
        &path,
        "name = \"x\"\n[[inputs.pairs]]\nformat = \"xml\"\npath = \"a\"\n",
    )
    .unwrap();
    let result = run(&["validate", path.to_str().unwrap()]);
    assert!(!result.status.success());
    assert!(stderr(&result).contains("xml"), "{}", stderr(&result));
}
