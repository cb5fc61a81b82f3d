//! `make bench`: MiniLM (all-MiniLM-L6-v2) sentence embeddings of the 25,014 COCO val
//! captions in candle, timed in this process with as many threads as
//! `RAYON_NUM_THREADS` allows, one batch per thread as `cmcl augment` runs them. Writes `OUT/minilm/cmcl-<threads>.json` (sentences/s,
//! peak RSS) and the vectors as `.npy`; bench/minilm_peer.py then runs
//! sentence-transformers on PyTorch over the same captions and compares speed and
//! vectors.

use std::path::Path;
use std::time::Instant;

mod common;

use cmcl::embed::text::TextEncoder;
use common::{arg, peak_rss_mib};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (data, out, model) = (
        arg(&args, "--data")?,
        arg(&args, "--out")?,
        arg(&args, "--minilm")?,
    );
    let out = out.join("minilm");
    std::fs::create_dir_all(&out)?;
    let captions = common::captions(&data, false)?;
    std::fs::write(out.join("captions.json"), serde_json::to_vec(&captions)?)?;
    let texts: Vec<&str> = captions.iter().map(String::as_str).collect();
    // As `cmcl augment` runs it: the pool sized by RAYON_NUM_THREADS, one batch per thread.
    let threads = rayon::current_num_threads();
    cmcl::embed::text::kernels_single_threaded();
    let encoder = TextEncoder::load(Path::new(&model))?;
    // One warm-up batch: page in the weights.
    encoder.encode(&texts[..64.min(texts.len())])?;
    let started = Instant::now();
    let vectors = encoder.encode(&texts)?;
    let seconds = started.elapsed().as_secs_f64();
    let rate = texts.len() as f64 / seconds;
    eprintln!(
        "cmcl MiniLM, {threads} thread(s): {} sentences in {seconds:.1} s = {rate:.0}/s",
        texts.len()
    );
    let flat: Vec<f32> = vectors.iter().flatten().copied().collect();
    cmcl::embed::npy::write(
        &out.join(format!("cmcl-{threads}.npy")),
        vectors.len(),
        encoder.dim(),
        &flat,
    )?;
    std::fs::write(
        out.join(format!("cmcl-{threads}.json")),
        serde_json::to_vec_pretty(&serde_json::json!({
            "threads": threads,
            "sentences": texts.len(),
            "seconds": seconds,
            "sentences_per_s": rate,
            "peak_rss_mib": peak_rss_mib(),
        }))?,
    )?;
    Ok(())
}
