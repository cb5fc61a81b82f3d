//! `make bench` part 1: TF-IDF top-10 mining over COCO val2017 + Flickr8k captions.
//!
//! Writes the corpus, cmcl's top-10 lists and timings under `--out`; the Python side
//! (bench/tfidf_sklearn.py) then runs scikit-learn on the same corpus in the same run
//! and prints the comparison.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

mod common;

use cmcl::stages::tfidf::{TfidfConfig, TfidfIndex};
use common::{arg, peak_rss_mib};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (data, out) = (arg(&args, "--data")?, arg(&args, "--out")?);
    std::fs::create_dir_all(&out)?;
    let (corpus, report) = common::coco_flickr(&data, true)?;
    let groups = corpus.image_groups();
    let mut file = std::io::BufWriter::new(std::fs::File::create(out.join("captions.jsonl"))?);
    for (pair, group) in corpus.pairs.iter().zip(&groups) {
        serde_json::to_writer(
            &mut file,
            &serde_json::json!({ "group": group, "caption": pair.caption }),
        )?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    eprintln!(
        "{} captions of {} images ({} rejected)",
        corpus.pairs.len(),
        groups.iter().max().map_or(0, |g| g + 1),
        report.rejects.len()
    );

    // scikit-learn's defaults: token pattern \b\w\w+\b, lowercase, smooth idf, raw tf.
    let config = TfidfConfig {
        k: 10,
        max_similarity: 1.0,
        ..TfidfConfig::default()
    };
    let captions: Vec<&str> = corpus.pairs.iter().map(|p| p.caption.as_str()).collect();
    let mut timings = serde_json::Map::new();
    let mut lists = Vec::new();
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let started = Instant::now();
        lists = pool.install(|| mine(&captions, &groups, &config));
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("cmcl {threads} thread(s): {seconds:.2} s");
        timings.insert(format!("seconds_{threads}_threads"), seconds.into());
    }
    timings.insert("peak_rss_mib".into(), peak_rss_mib().into());
    timings.insert("captions".into(), corpus.pairs.len().into());
    write_lists(&out.join("cmcl_topk.jsonl"), &lists)?;
    std::fs::write(
        out.join("cmcl_timing.json"),
        serde_json::to_vec_pretty(&timings)?,
    )?;
    Ok(())
}

fn mine(captions: &[&str], groups: &[u32], config: &TfidfConfig) -> Vec<Vec<(u32, f32)>> {
    use rayon::prelude::*;
    let index = TfidfIndex::build(captions, config);
    (0..captions.len())
        .into_par_iter()
        .map_init(
            || index.scratch(),
            |scratch, q| {
                let (hits, _) = index.top_k(q, groups, config.k, config.max_similarity, scratch);
                hits.into_iter().map(|h| (h.doc, h.score)).collect()
            },
        )
        .collect()
}

fn write_lists(path: &Path, lists: &[Vec<(u32, f32)>]) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for list in lists {
        serde_json::to_writer(&mut file, list)?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    Ok(())
}
