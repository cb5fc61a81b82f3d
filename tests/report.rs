//! `cmcl report` on a small synthetic run with every stage: the pages and thumbnails
//! come out, the sample is seeded, an unreadable image is listed rather than fatal, and
//! headless Chromium (driven by tests/report_browser.cjs through Playwright) shows the
//! manifest's numbers and filters the sample.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A run of all four stages over 16 synthetic images.
fn full_run(dir: &Path) -> PathBuf {
    let pipeline = every_stage_pipeline(dir, 16, 25);
    let out = dir.join("out");
    run_augment(&pipeline, &out, &[]);
    out
}

fn report(run: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "report",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    stdout(&ok(&args))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample's JSON, as embedded in samples.html.
fn sample(report: &Path) -> serde_json::Value {
    let page = read(&report.join("samples.html"));
    let start = page.find("type=\"application/json\">").unwrap() + 24;
    let end = start + page[start..].find("</script>").unwrap();
    serde_json::from_str(&page[start..end].replace("<\\/", "</")).unwrap()
}

#[test]
fn a_report_of_every_stage_opens_in_chromium_with_the_manifest_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let run = full_run(dir.path());
    let out = dir.path().join("report");
    let printed = report(&run, &out, &["--samples", "12"]);
    let total = manifest(&run)["total_rows"].clone();
    assert!(
        printed.contains(&format!("report of {total} pairs (12 sampled")),
        "{printed}"
    );

    let pairs = sample(&out);
    let pairs = pairs.as_array().unwrap();
    assert_eq!(pairs.len(), 12);
    let rows: Vec<u64> = pairs.iter().map(|p| p["row"].as_u64().unwrap()).collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}");
    for column in ["positives", "negatives", "neighbours"] {
        assert!(
            pairs
                .iter()
                .any(|p| !p[column].as_array().unwrap().is_empty()),
            "no sampled pair has {column}"
        );
    }
    // Every thumbnail named in the page exists.
    for pair in pairs {
        let mut thumbs = vec![pair["thumb"].clone()];
        thumbs.extend(
            pair["neighbours"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["thumb"].clone()),
        );
        for thumb in thumbs.iter().filter_map(|t| t.as_str()) {
            assert!(out.join(thumb).is_file(), "{thumb}");
        }
        assert!(pair["thumb"].is_string());
    }

    // The same seed gives the same pages; another seed another sample.
    let again = dir.path().join("again");
    report(&run, &again, &["--samples", "12"]);
    assert_eq!(
        read(&out.join("samples.html")),
        read(&again.join("samples.html"))
    );
    assert_eq!(
        read(&out.join("index.html")),
        read(&again.join("index.html"))
    );
    report(&run, &again, &["--samples", "12", "--seed", "7"]);
    assert_ne!(sample(&again), sample(&out));

    browser_check(&run, &out);
}

/// Opens the report in headless Chromium. Skipped, saying why, only where `make
/// browser-deps` could not install Chromium (it then writes the reason into
/// `.cache/browser/unavailable`); `make test` sets CMCL_REQUIRE_BROWSER to insist.
fn browser_check(run: &Path, report: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules = std::env::var("CMCL_BROWSER_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".cache/browser/node_modules"));
    let chromium = std::env::var("CMCL_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<String> = [
        (Path::new(&chromium), "Chromium"),
        (&modules.join("playwright-core"), "playwright-core"),
    ]
    .iter()
    .filter(|(path, _)| !path.exists())
    .map(|(path, what)| format!("{what} ({})", path.display()))
    .collect();
    if !missing.is_empty() {
        let why = format!(
            "browser check of the report SKIPPED: missing {}; run `make browser-deps`",
            missing.join(", ")
        );
        let required = std::env::var("CMCL_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        assert!(!required, "{why}");
        eprintln!("{why}");
        return;
    }
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("report-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let output = std::process::Command::new("node")
        .arg(root.join("tests/report_browser.cjs"))
        .arg(report)
        .arg(&shots)
        .env("CMCL_BROWSER_MODULES", &modules)
        .env("CMCL_CHROMIUM", &chromium)
        .output()
        .expect("node runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    eprintln!("screenshots in {}", shots.display());
    assert!(shots.join("summary.png").is_file() && shots.join("samples.png").is_file());

    // The summary page shows the manifest's numbers.
    let manifest = manifest(run);
    let shown = |key: &str| seen["summary"][key].as_str().unwrap_or("").to_string();
    assert_eq!(shown("rows"), manifest["total_rows"].to_string());
    assert_eq!(shown("total_rows"), manifest["total_rows"].to_string());
    assert_eq!(shown("num_shards"), manifest["num_shards"].to_string());
    assert_eq!(shown("seed"), manifest["seed"].to_string());
    for key in ["read", "pairs", "corpus_images", "corpus_texts"] {
        assert_eq!(
            shown(&format!("ingest.{key}")),
            manifest["ingest"][key].to_string()
        );
    }
    let stages = manifest["stages"].as_object().unwrap();
    assert_eq!(stages.len(), 6);
    for (name, stats) in stages {
        assert_eq!(
            shown(&format!("stage.{name}.produced")),
            stats["produced"].to_string(),
            "{name}"
        );
    }
    // Items counted from the shards add up to what the stages say they produced.
    let kinds: u64 = seen["summary"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("kind."))
        .map(|(_, v)| v.as_str().unwrap().parse::<u64>().unwrap())
        .sum();
    let produced: u64 = stages
        .values()
        .map(|s| s["produced"].as_u64().unwrap())
        .sum();
    assert_eq!(kinds, produced);
    // One histogram per kind in the shards; the sample's kind menu lists those its 12
    // pairs have, which may miss a rare kind.
    let kind_rows = seen["summary"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("kind."))
        .count();
    assert_eq!(seen["plots"], kind_rows);
    assert!(seen["kinds"].as_array().unwrap().len() <= kind_rows);

    // The sample page draws every sampled pair, its images load, nothing went to a network.
    assert_eq!(seen["rendered"], 12);
    assert_eq!(seen["before"], 12);
    assert_eq!(seen["brokenImages"], serde_json::json!([]));
    assert_eq!(seen["external"], serde_json::json!([]));
    assert_eq!(seen["errors"], serde_json::json!([]));
    // Filters change what is visible, and clearing them shows everything again.
    let filter = &seen["filter"];
    let visible = filter["visible"].as_u64().unwrap();
    assert!(visible < 12, "{filter}");
    assert_eq!(filter["visibleArticles"], visible);
    assert_eq!(seen["aboveEveryScore"], 0);
    assert!(seen["byWords"].as_u64().unwrap() >= 1);
    assert_eq!(seen["after"], 12);
}

#[test]
fn an_unreadable_image_is_listed_and_the_rest_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let synth_dir = synth(dir.path(), 6);
    let pipeline = synth_pipeline(dir.path(), 10, "");
    let run = dir.path().join("out");
    run_augment(&pipeline, &run, &[]);
    // Corrupt the first pair's image after the run, as a moved or damaged file would be.
    let pairs = read(&synth_dir.join("pairs.jsonl"));
    let first: serde_json::Value = serde_json::from_str(pairs.lines().next().unwrap()).unwrap();
    let image = synth_dir.join(first["image_path"].as_str().unwrap());
    std::fs::write(&image, b"not a png").unwrap();

    let out = run.join("report");
    let output = ok(&["report", run.to_str().unwrap(), "--no-progress"]);
    assert!(
        stdout(&output).contains("1 images could not be read"),
        "{}",
        stdout(&output)
    );
    assert!(
        stderr(&output).contains(&image.display().to_string()),
        "{}",
        stderr(&output)
    );
    let summary = read(&out.join("index.html"));
    assert!(summary.contains("Images not shown"));
    assert!(summary.contains(&image.display().to_string()));
    let pairs = sample(&out);
    let pairs = pairs.as_array().unwrap();
    assert_eq!(
        pairs.len().to_string(),
        manifest(&run)["total_rows"].to_string()
    );
    for pair in pairs {
        let broken = pair["image_id"] == first["image_id"];
        assert_eq!(pair["thumb"].is_null(), broken, "{pair}");
    }
    // Nothing but the finished report is left behind.
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
}
