//! `make bench` part 3: approximate nearest neighbours, cmcl's HNSW against hnswlib.
//!
//! - `--prepare`: MiniLM vectors of the COCO val + Flickr8k captions into
//!   `OUT/hnsw/minilm/all.npy` (once; bench/hnsw_peer.py then holds out queries, computes
//!   the exact top-10 and runs hnswlib on the same files).
//! - default: for each prepared set (glove, minilm), a one-thread build at hnswlib's M
//!   and ef_construction; recall@10 and QPS per ef on one thread, in rounds taken in
//!   turns with hnswlib's (`--python` runs `bench/hnsw_peer.py --search` on the index it
//!   saved), then both sides' QPS at the same recall read off their Pareto frontiers, at
//!   every ef and at the target recall of 0.95; a two-thread build; and with
//!   `--scale N`, build time and peak memory for N random vectors.

mod common;

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use cmcl::embed::npy;
use cmcl::index::hnsw::{Hnsw, HnswParams};
use common::{arg, peak_rss_mib, reset_peak_rss};
use rand::{Rng, SeedableRng};

const EFS: [usize; 8] = [10, 20, 40, 80, 120, 160, 200, 300];
const K: usize = 10;
/// Timed passes over the queries per ef; the best counts (bench/hnsw_peer.py: the same),
/// because this shared machine's speed drifts by 10-20% from second to second.
const PASSES: usize = 5;
/// Search rounds per side, taken in turns with hnswlib's (see `measure`).
const ROUNDS: usize = 3;
/// The operating point: recall@10 0.95, where its hnswlib figures (ef 80 and 160
/// on GloVe) are quoted either side.
const TARGET_RECALL: f64 = 0.95;

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
    // The venv with hnswlib (`make bench` passes it); without it, cmcl's side only.
    let python = arg(&args, "--python").ok();
    // `--sets minilm` (comma-separated) measures only those; the others keep their last
    // results, each stamped with when it was measured.
    let mut report: serde_json::Map<String, serde_json::Value> =
        std::fs::read(work.join("cmcl.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
    let sets = common::value(&args, "--sets").unwrap_or("glove,minilm");
    for set in ["glove", "minilm"]
        .into_iter()
        .filter(|s| sets.split(',').any(|x| x == *s))
    {
        let dir = work.join(set);
        if !dir.join("gt.npy").exists() {
            eprintln!(
                "{set}: {} not prepared (run bench/hnsw_peer.py first); skipped",
                dir.display()
            );
            continue;
        }
        let result = measure(&dir, set, params, python.as_deref())?;
        report.insert(set.into(), stamped(result));
    }
    if let Some(n) = common::value(&args, "--scale") {
        let n: usize = n.parse().context("--scale N")?;
        report.insert("scale".into(), stamped(scale(n, params)?));
    }
    std::fs::write(work.join("cmcl.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(())
}

/// `result` with the time it was measured, so a set kept from an earlier run says so.
fn stamped(mut result: serde_json::Value) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    result["measured_at_unix_s"] = now.into();
    result
}

fn prepare_minilm(data: &Path, dir: &Path) -> anyhow::Result<()> {
    let file = dir.join("all.npy");
    if file.exists() {
        return Ok(());
    }
    let captions = common::captions(data, true)?;
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    let encoder = cmcl::embed::text::TextEncoder::load(&model)?;
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

fn measure(
    dir: &Path,
    set: &str,
    params: HnswParams,
    python: Option<&Path>,
) -> anyhow::Result<serde_json::Value> {
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

    reset_peak_rss();
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let index = Hnsw::build(&base.data, base.cols, params, Some(1), &|_| {})?;
    let build_one = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib() - rss_before;
    let started = Instant::now();
    drop(Hnsw::build(&base.data, base.cols, params, None, &|_| {})?);
    let build_parallel = started.elapsed().as_secs_f64();

    // Both sides search in turns, one ef at a time, ROUNDS times (who goes first
    // alternates), and each keeps its best time per ef: the machine's speed drifts over
    // seconds to minutes, and searches seconds apart see nearly the same machine.
    let peer_python = python.filter(|_| dir.join("hnswlib.bin").is_file());
    let mut ours = vec![(0.0, 0.0); EFS.len()];
    let mut theirs = vec![(0.0, 0.0); if peer_python.is_some() { EFS.len() } else { 0 }];
    for round in 0..ROUNDS {
        for (slot, &ef) in EFS.iter().enumerate() {
            for turn in 0..2 {
                if (turn + round) % 2 == 0 {
                    let (recall, qps) = own_run(&index, &queries, &gt, ef)?;
                    ours[slot] = (recall, f64::max(ours[slot].1, qps));
                } else if let Some(python) = peer_python {
                    let (recall, qps) = peer_run(python, dir, set, ef)?;
                    theirs[slot] = (recall, f64::max(theirs[slot].1, qps));
                }
            }
        }
        eprintln!("{set}: search round {} of {ROUNDS} done", round + 1);
    }

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
    println!(
        "search: best of {ROUNDS} rounds x {PASSES} passes per side, the sides in turns at each ef; \
         'at equal recall' reads both Pareto frontiers (the best QPS at that recall or above)"
    );
    println!("| ef | cmcl recall@10 | cmcl QPS | hnswlib recall@10 | hnswlib QPS | cmcl frontier QPS | hnswlib frontier QPS at cmcl's recall | cmcl / hnswlib |");
    println!("|---|---|---|---|---|---|---|---|");
    let (our_front, their_front) = (frontier(&ours), frontier(&theirs));
    let mut runs = Vec::new();
    for (i, (&ef, &(recall, qps))) in EFS.iter().zip(&ours).enumerate() {
        let own_best = interpolate(&our_front, recall);
        let at_recall = interpolate(&their_front, recall);
        let ratio = own_best.zip(at_recall).map(|(a, b)| a / b);
        let their_run = theirs.get(i);
        println!(
            "| {ef} | {recall:.4} | {qps:.0} | {} | {} | {} | {} | {} |",
            their_run.map_or("-".into(), |r| format!("{:.4}", r.0)),
            their_run.map_or("-".into(), |r| format!("{:.0}", r.1)),
            own_best.map_or("-".into(), |q| format!("{q:.0}")),
            at_recall.map_or("-".into(), |q| format!("{q:.0}")),
            ratio.map_or("-".into(), |r| format!("{r:.2}")),
        );
        runs.push(serde_json::json!({
            "ef": ef, "recall": recall, "qps": qps, "frontier_qps": own_best,
            "hnswlib_recall": their_run.map(|r| r.0), "hnswlib_qps": their_run.map(|r| r.1),
            "hnswlib_frontier_qps_at_recall": at_recall, "ratio": ratio,
        }));
    }
    let (own_at, their_at) = (
        interpolate(&our_front, TARGET_RECALL),
        interpolate(&their_front, TARGET_RECALL),
    );
    let target_ratio = own_at.zip(their_at).map(|(a, b)| a / b);
    println!(
        "at recall {TARGET_RECALL}: cmcl {} QPS, hnswlib {} QPS, cmcl / hnswlib {}",
        own_at.map_or("-".into(), |q| format!("{q:.0}")),
        their_at.map_or("-".into(), |q| format!("{q:.0}")),
        target_ratio.map_or("-".into(), |r| format!("{r:.2}")),
    );
    Ok(serde_json::json!({
        "at_target_recall": {
            "recall": TARGET_RECALL, "qps": own_at, "hnswlib_qps": their_at, "ratio": target_ratio,
        },
        "n": base.rows, "dim": base.cols, "m": params.m, "ef_construction": params.ef_construction,
        "build_s_1_thread": build_one, "build_s_parallel": build_parallel, "peak_rss_mib": rss,
        "hnswlib_build_s": peer_build, "rounds": ROUNDS, "passes": PASSES, "runs": runs,
    }))
}

/// Recall@10 and the best QPS of PASSES passes over the queries at `ef` (searches are
/// timed apart from the recall count).
fn own_run(
    index: &Hnsw,
    queries: &npy::Matrix,
    gt: &npy::Matrix,
    ef: usize,
) -> anyhow::Result<(f64, f64)> {
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
    Ok((
        found as f64 / (queries.rows * K) as f64,
        queries.rows as f64 / seconds,
    ))
}

/// hnswlib's search at one `ef` on its saved index (bench/hnsw_peer.py --search), in a
/// process of its own: (recall, QPS).
fn peer_run(python: &Path, dir: &Path, set: &str, ef: usize) -> anyhow::Result<(f64, f64)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/hnsw_peer.py");
    let work = dir.parent().context("set folder has a parent")?;
    let output = std::process::Command::new(python)
        .arg(&script)
        .args(["--work".as_ref(), work.as_os_str()])
        .args(["--search", set, "--efs", &ef.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} --search {set} failed",
        script.display()
    );
    let line: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{} --search {set}: not one JSON line", script.display()))?;
    let run = &line["runs"][0];
    run["recall"]
        .as_f64()
        .zip(run["qps"].as_f64())
        .context("a run without recall or qps")
}

/// The runs no other run beats on both recall and QPS, by recall ascending.
fn frontier(runs: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut front: Vec<(f64, f64)> = runs
        .iter()
        .copied()
        .filter(|&(r, q)| !runs.iter().any(|&(r2, q2)| r2 >= r && q2 > q))
        .collect();
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    front.dedup_by(|a, b| a.0 == b.0);
    front
}

/// QPS at `recall` on a frontier, linear between the two points around it (None
/// outside them).
fn interpolate(front: &[(f64, f64)], recall: f64) -> Option<f64> {
    if let [(r, q)] = front {
        return (*r == recall).then_some(*q);
    }
    front.windows(2).find_map(|w| {
        let ((r0, q0), (r1, q1)) = (w[0], w[1]);
        (r0 <= recall && recall <= r1).then(|| q0 + (q1 - q0) * (recall - r0) / (r1 - r0))
    })
}

fn scale(n: usize, params: HnswParams) -> anyhow::Result<serde_json::Value> {
    let dim = 50;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let data: Vec<f32> = (0..n * dim).map(|_| rng.random::<f32>() - 0.5).collect();
    reset_peak_rss();
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
