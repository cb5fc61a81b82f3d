//! Helpers shared by the `make bench` binaries.

#![allow(dead_code)] // each bench uses a different subset

use std::path::{Path, PathBuf};

use anyhow::Context;
use cmcl::core::record::Corpus;
use cmcl::ingest::config::{Columns, Format, IngestConfig, Inputs, Source};
use cmcl::ingest::IngestReport;

pub fn source(format: Format, path: PathBuf, dataset: &str) -> Source {
    Source {
        format,
        path,
        dataset: Some(dataset.into()),
        images_dir: None,
        instances: None,
        columns: Columns::default(),
        webdataset: None,
    }
}

/// The COCO val2017 pairs, then (with `flickr`) the Flickr8k ones, as cmcl ingests them.
pub fn coco_flickr(data: &Path, flickr: bool) -> anyhow::Result<(Corpus, IngestReport)> {
    let mut pairs = vec![source(
        Format::Coco,
        data.join("coco/annotations/captions_val2017.json"),
        "coco",
    )];
    if flickr {
        pairs.push(source(
            Format::Flickr8k,
            data.join("flickr8k/Flickr8k.token.txt"),
            "flickr8k",
        ));
    }
    let inputs = Inputs {
        pairs,
        image_corpus: vec![],
        text_corpus: vec![],
    };
    Ok(cmcl::ingest::ingest(&inputs, &IngestConfig::default())?)
}

/// A caption on one line.
pub fn one_line(caption: &str) -> String {
    caption.replace(['\n', '\r', '\t'], " ")
}

/// The captions of [`coco_flickr`], one line each.
pub fn captions(data: &Path, flickr: bool) -> anyhow::Result<Vec<String>> {
    let (corpus, _) = coco_flickr(data, flickr)?;
    Ok(corpus.pairs.iter().map(|p| one_line(&p.caption)).collect())
}

/// Starts a new peak: the kernel sets this process's peak resident set size to its
/// current size (Linux 4.0 and later; elsewhere the peak keeps counting from the start).
/// Without it a measurement after a larger one reads "+0 MiB".
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size of this process so far (or since `reset_peak_rss`), in MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The value after `name` on the command line, if given.
pub fn value<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// The folder after `name` on the command line.
pub fn arg(args: &[String], name: &str) -> anyhow::Result<PathBuf> {
    value(args, name)
        .map(PathBuf::from)
        .with_context(|| format!("missing {name} DIR; run the benchmarks with `make bench`"))
}
