//! `make bench` part 3: approximate nearest neighbours, cmcl's HNSW against hnswlib.
//!
//! - `--prepare`: MiniLM vectors of the COCO val + Flickr8k captions into
//!   `OUT/hnsw/minilm/all.npy` (once; bench/hnsw_peer.py then holds out queries, computes
//!   the exact top-10 and runs hnswlib on the same files).
//! - default: for each prepared set (glove, minilm), a one-thread build at hnswlib's M
//!   and ef_construction, recall@10 and QPS per ef on one thread, and hnswlib's QPS at
//!   the same recall (interpolated from its runs); a two-thread build; and with
//!   `--scale N`, build time and peak memory for N random vectors.

mod common;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use cmcl::hnsw::{Hnsw, HnswParams};
use cmcl::npy;
use common::{arg, peak_rss_mib};
use rand::{Rng, SeedableRng};

const EFS: [usize; 8] = [10, 20, 40, 80, 120, 160, 200, 300];
const K: usize = 10;
/// Timed passes over the queries per ef; the best counts (bench/hnsw_peer.py: the same),
/// because this shared machine's speed drifts by 10-20% from second to second.
const PASSES: usize = 5;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (data, work) = (arg(&args, "--data")?, arg(&args, "--out")?.join("hnsw"));
    if args.iter().any(|a| a == "--prepare") {
        return prepare_minilm(&data, &work.join("minilm"));
    }
    let params = HnswParams {
        m: 16,
        ef_construction: 200,
        seed: 42,
    };
    let mut report = serde_json::Map::new();
    for set in ["glove", "minilm"] {
        let dir = work.join(set);
        if !dir.join("gt.npy").exists() {
            eprintln!(
                "{set}: {} not prepared (run bench/hnsw_peer.py first); skipped",
                dir.display()
            );
            continue;
        }
        report.insert(set.into(), measure(&dir, set, params)?);
    }
    if let Some(n) = args
        .iter()
        .position(|a| a == "--scale")
        .and_then(|i| args.get(i + 1))
    {
        let n: usize = n.parse().context("--scale N")?;
        report.insert("scale".into(), scale(n, params)?);
    }
    std::fs::write(work.join("cmcl.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}

fn prepare_minilm(data: &Path, dir: &Path) -> anyhow::Result<()> {
    let file = dir.join("all.npy");
    if file.exists() {
        return Ok(());
    }
    let captions = common::captions(data, true)?;
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let encoder = cmcl::text_encoder::TextEncoder::load(&model)?;
    let started = Instant::now();
    let mut vectors = Vec::with_capacity(captions.len() * encoder.dim());
    for (i, chunk) in captions.chunks(2048).enumerate() {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        vectors.extend(encoder.encode(&refs)?.into_iter().flatten());
        eprintln!(
            "MiniLM: {} of {} captions",
            (i * 2048 + chunk.len()),
            captions.len()
        );
    }
    eprintln!(
        "MiniLM vectors of {} captions in {:.0} s",
        captions.len(),
        started.elapsed().as_secs_f64()
    );
    npy::write(&file, captions.len(), encoder.dim(), &vectors)?;
    Ok(())
}

fn measure(dir: &Path, set: &str, params: HnswParams) -> anyhow::Result<serde_json::Value> {
    let mut base = npy::read(&dir.join("base.npy"))?;
    // For quick looks at build speed: the first N vectors only (recall is then not meaningful).
    if let Some(limit) = std::env::var("CMCL_HNSW_LIMIT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        base.rows = base.rows.min(limit);
        base.data.truncate(base.rows * base.cols);
    }
    let queries = npy::read(&dir.join("queries.npy"))?;
    let gt = npy::read(&dir.join("gt.npy"))?;
    let peer: serde_json::Value = std::fs::read(dir.join("hnswlib.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);

    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let index = Hnsw::build(&base.data, base.cols, params, Some(1), &|_| {})?;
    let build_one = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib() - rss_before;
    let started = Instant::now();
    drop(Hnsw::build(&base.data, base.cols, params, None, &|_| {})?);
    let build_parallel = started.elapsed().as_secs_f64();

    println!(
        "\nHNSW on {set}: {} x {}, M {}, ef_construction {}, 1,000 held-out queries, recall@10 against exact cosine",
        base.rows, base.cols, params.m, params.ef_construction
    );
    let peer_build = peer["build_s"].as_f64();
    println!(
        "build, 1 thread: cmcl {build_one:.1} s (peak memory +{rss:.0} MiB), hnswlib {} ; cmcl, {} threads: {build_parallel:.1} s",
        peer_build.map_or("not run".into(), |s| format!("{s:.1} s (+{:.0} MiB)", peer["peak_rss_mib"].as_f64().unwrap_or(f64::NAN))),
        rayon::current_num_threads()
    );
    println!("| ef | cmcl recall@10 | cmcl QPS | hnswlib recall@10 | hnswlib QPS | hnswlib QPS at cmcl's recall | cmcl / hnswlib |");
    println!("|---|---|---|---|---|---|---|");
    let peer_runs: Vec<(f64, f64)> = peer["runs"]
        .as_array()
        .map(|runs| {
            runs.iter()
                .filter_map(|r| Some((r["recall"].as_f64()?, r["qps"].as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let mut runs = Vec::new();
    for (i, &ef) in EFS.iter().enumerate() {
        // Searches are timed apart from the recall count, best of PASSES passes.
        let mut seconds = f64::INFINITY;
        let mut hits = Vec::with_capacity(queries.rows);
        for _ in 0..PASSES {
            hits.clear();
            let started = Instant::now();
            for q in 0..queries.rows {
                hits.push(index.search(queries.row(q), K, ef, &|_| true)?);
            }
            seconds = seconds.min(started.elapsed().as_secs_f64());
        }
        let found: usize = hits
            .iter()
            .enumerate()
            .map(|(q, hits)| {
                let truth = gt.row(q);
                hits.iter()
                    .filter(|h| truth.contains(&(h.id as f32)))
                    .count()
            })
            .sum();
        let (recall, qps) = (
            found as f64 / (queries.rows * K) as f64,
            queries.rows as f64 / seconds,
        );
        let at_recall = interpolate(&peer_runs, recall);
        let peer_run = peer_runs.get(i);
        println!(
            "| {ef} | {recall:.4} | {qps:.0} | {} | {} | {} | {} |",
            peer_run.map_or("-".into(), |r| format!("{:.4}", r.0)),
            peer_run.map_or("-".into(), |r| format!("{:.0}", r.1)),
            at_recall.map_or("-".into(), |q| format!("{q:.0}")),
            at_recall.map_or("-".into(), |q| format!("{:.2}", qps / q)),
        );
        runs.push(serde_json::json!({ "ef": ef, "recall": recall, "qps": qps, "hnswlib_qps_at_recall": at_recall }));
    }
    Ok(serde_json::json!({
        "n": base.rows, "dim": base.cols, "m": params.m, "ef_construction": params.ef_construction,
        "build_s_1_thread": build_one, "build_s_parallel": build_parallel, "peak_rss_mib": rss,
        "hnswlib_build_s": peer_build, "runs": runs,
    }))
}

/// hnswlib's QPS at `recall`, linear between its two runs around it (None outside them).
fn interpolate(runs: &[(f64, f64)], recall: f64) -> Option<f64> {
    runs.windows(2).find_map(|w| {
        let ((r0, q0), (r1, q1)) = (w[0], w[1]);
        (r0 <= recall && recall <= r1 && r1 > r0)
            .then(|| q0 + (q1 - q0) * (recall - r0) / (r1 - r0))
    })
}

fn scale(n: usize, params: HnswParams) -> anyhow::Result<serde_json::Value> {
    let dim = 50;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let data: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let index = Hnsw::build(&data, dim, params, None, &|_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib() - rss_before;
    println!(
        "\nHNSW scale: {n} random vectors of {dim}, {} threads, M {}, ef_construction {}: built in {seconds:.0} s, peak memory +{rss:.0} MiB (the vectors alone: {:.0} MiB)",
        rayon::current_num_threads(),
        params.m,
        params.ef_construction,
        (n * dim * 4) as f64 / 1048576.0
    );
    drop(index);
    Ok(serde_json::json!({ "n": n, "dim": dim, "build_s": seconds, "peak_rss_mib": rss }))
}
