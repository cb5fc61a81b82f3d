//! `make bench`, scale part: the `tfidf`, `scene_graph` and `retrieval` stages, each as
//! its own `cmcl augment` process, on 100k and 1M pairs made of the real COCO val2017 +
//! Flickr8k captions repeated with new image and caption ids. Reports wall time,
//! pairs/s and peak RSS per stage and size, and how time per pair grows.
//!
//! Images: the bench has no pixels for these captions, so each image gets a precomputed
//! 48-dimensional vector in clip-retrieval's `.npy` layout: a random projection of its
//! captions' words (images with similar captions are near), plus noise per copy (copies
//! are other images). Text neighbours use MiniLM; the scene-graph stage runs without
//! its MiniLM paraphrase check (as `pipelines/coco.toml` does at this size).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

mod common;

use anyhow::{bail, Context};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use common::arg;
use rand::{Rng, SeedableRng};

const DIM: usize = 48;

struct Base {
    caption: String,
    /// Index of its image among the distinct base images.
    image: usize,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // Pipelines name their files by absolute path: they live in another folder.
    let (data, out) = (
        arg(&args, "--data")?,
        std::path::absolute(arg(&args, "--out")?)?.join("scale"),
    );
    let minilm = arg(&args, "--minilm")?;
    let list = |name: &str, default: &str| -> Vec<String> {
        common::value(&args, name)
            .unwrap_or(default)
            .split(',')
            .map(String::from)
            .collect()
    };
    let sizes: Vec<usize> = list("--sizes", "100000,1000000")
        .iter()
        .map(|s| s.parse().context("--sizes takes pair counts"))
        .collect::<anyhow::Result<_>>()?;
    let stages = list("--stages", "tfidf,scene_graph,retrieval");
    std::fs::create_dir_all(&out)?;
    let (base, images) = base_pairs(&data)?;
    eprintln!("{} base captions of {images} images", base.len());
    let image_vectors = image_vectors(&base, images);

    let mut results = Vec::new();
    for &n in &sizes {
        let dir = out.join(n.to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        write_inputs(&dir, &base, images, &image_vectors, n)?;
        for stage in stages.iter().map(String::as_str) {
            let pipeline = dir.join(format!("{stage}.toml"));
            std::fs::write(&pipeline, pipeline_toml(&dir, stage, &minilm))?;
            let run_dir = dir.join(format!("out-{stage}"));
            let (seconds, peak_kib) = run_measured(&pipeline, &run_dir)?;
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json"))?)?;
            let stats = &manifest["stages"][stage];
            let builds: f64 = index_build_seconds(&run_dir.join("index"));
            let row = serde_json::json!({
                "pairs": n,
                "stage": stage,
                "wall_seconds": seconds,
                "pairs_per_second": n as f64 / seconds,
                "microseconds_per_pair": seconds * 1e6 / n as f64,
                "peak_rss_mib": peak_kib as f64 / 1024.0,
                "augment_seconds": stats["seconds"],
                "index_build_seconds": builds,
                "produced": stats["produced"],
            });
            eprintln!("{row}");
            results.push(row);
            // Shards and indexes of this size are not needed again.
            std::fs::remove_dir_all(&run_dir)?;
        }
    }
    let json = serde_json::to_vec_pretty(&results)?;
    std::fs::write(out.join(format!("scale-{}.json", stages.join("-"))), json)?;
    print_table(&results, &sizes);
    Ok(())
}

/// The COCO + Flickr8k pairs, with a dense id per image.
fn base_pairs(data: &Path) -> anyhow::Result<(Vec<Base>, usize)> {
    let (corpus, _) = common::coco_flickr(data, true)?;
    let groups = corpus.image_groups();
    let images = groups.iter().max().map_or(0, |&g| g as usize + 1);
    let base = corpus
        .pairs
        .iter()
        .zip(groups)
        .map(|(p, image)| Base {
            caption: common::one_line(&p.caption),
            image: image as usize,
        })
        .collect();
    Ok((base, images))
}

/// Per base image, the normalised sum of a fixed random vector per word of its captions.
fn image_vectors(base: &[Base], images: usize) -> Vec<f32> {
    let mut word_vectors: HashMap<String, [f32; DIM]> = HashMap::new();
    let mut sums = vec![0f32; images * DIM];
    for pair in base {
        for word in pair
            .caption
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
        {
            if word.len() < 3 {
                continue;
            }
            let v = word_vectors.entry(word.to_string()).or_insert_with(|| {
                let seed = word.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                std::array::from_fn(|_| rng.random::<f32>() - 0.5)
            });
            for (s, x) in sums[pair.image * DIM..][..DIM].iter_mut().zip(v.iter()) {
                *s += x;
            }
        }
    }
    for row in sums.chunks_mut(DIM) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    sums
}

/// `pairs.jsonl` of `n` rows (the base repeated, copy `c` of an image is its own image)
/// and the images' vectors in clip-retrieval's layout under `emb/`.
fn write_inputs(
    dir: &Path,
    base: &[Base],
    images: usize,
    vectors: &[f32],
    n: usize,
) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(dir.join("pairs.jsonl"))?);
    let mut paths: Vec<String> = Vec::new();
    let mut emb: Vec<f32> = Vec::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for row in 0..n {
        let (copy, pair) = (row / base.len(), &base[row % base.len()]);
        let image = copy * images + pair.image;
        // Images are numbered as they first appear; each gets its vector then.
        while paths.len() <= image {
            let id = paths.len();
            paths.push(format!("img/{id}.jpg"));
            let b = &vectors[(id % images) * DIM..][..DIM];
            emb.extend(b.iter().map(|x| x + 0.05 * (rng.random::<f32>() - 0.5)));
        }
        serde_json::to_writer(
            &mut file,
            &serde_json::json!({
                "image_id": image.to_string(),
                "caption_id": row.to_string(),
                "caption": pair.caption,
                "image_path": format!("img/{image}.jpg"),
            }),
        )?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    let emb_dir = dir.join("emb");
    std::fs::create_dir_all(emb_dir.join("img_emb"))?;
    std::fs::create_dir_all(emb_dir.join("metadata"))?;
    cmcl::embed::npy::write(
        &emb_dir.join("img_emb/img_emb_0.npy"),
        paths.len(),
        DIM,
        &emb,
    )?;
    let batch = RecordBatch::try_from_iter([(
        "image_path",
        Arc::new(StringArray::from(paths)) as ArrayRef,
    )])?;
    let meta = std::fs::File::create(emb_dir.join("metadata/metadata_0.parquet"))?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(meta, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(())
}

fn pipeline_toml(dir: &Path, stage: &str, minilm: &Path) -> String {
    let stage = match stage {
        "tfidf" => "type = \"tfidf\"\nk = 5\nmax_similarity = 0.9".to_string(),
        "scene_graph" => "type = \"scene_graph\"\nwordnet_dir = \"/usr/share/wordnet\"\n\
             kinds = [\"replace_object\", \"replace_attribute\", \"replace_relation\", \
             \"swap_objects\", \"swap_attributes\"]\nper_kind = 1\nfluency_margin = 0.6"
            .to_string(),
        _ => format!(
            "type = \"retrieval\"\nimage_k = 3\ntext_k = 3\ntext_encoder = \"{}\"\n\
             image_embeddings = {{ source = \"precomputed\", path = \"{}\" }}",
            minilm.display(),
            dir.join("emb").display()
        ),
    };
    format!(
        "name = \"scale\"\nseed = 1\n[[inputs.pairs]]\nformat = \"jsonl\"\npath = \"{}\"\n\
         dataset = \"scale\"\ncolumns = {{ image_id = \"image_id\", caption = \"caption\", \
         id = \"caption_id\", image_path = \"image_path\" }}\n[ingest]\n\
         max_reject_share = 0.01\n[[stages]]\n{stage}\n[output]\nrows_per_shard = 20000\n",
        dir.join("pairs.jsonl").display()
    )
}

/// Runs `cmcl augment` on both cores; wall seconds and the child's peak RSS in KiB.
fn run_measured(pipeline: &Path, out: &Path) -> anyhow::Result<(f64, i64)> {
    let started = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_cmcl"))
        .args(["augment", "--no-progress", "--threads", "2", "--pipeline"])
        .arg(pipeline)
        .arg("--out")
        .arg(out)
        .spawn()?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; wait4 fills it for this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    if pid < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("cmcl augment --pipeline {} failed", pipeline.display());
    }
    Ok((seconds, usage.ru_maxrss))
}

fn index_build_seconds(dir: &Path) -> f64 {
    let manifest: serde_json::Value = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    manifest["artifacts"]
        .as_object()
        .into_iter()
        .flat_map(|artifacts| artifacts.values())
        .filter_map(|a| a["build_seconds"].as_f64())
        .sum()
}

fn print_table(results: &[serde_json::Value], sizes: &[usize]) {
    println!(
        "| stage | pairs | wall s | pairs/s | us/pair | peak RSS MiB | index build s | augment s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| {} | {} | {:.1} | {:.0} | {:.1} | {:.0} | {:.1} | {:.1} |",
            r["stage"].as_str().unwrap_or(""),
            r["pairs"],
            r["wall_seconds"].as_f64().unwrap_or(f64::NAN),
            r["pairs_per_second"].as_f64().unwrap_or(f64::NAN),
            r["microseconds_per_pair"].as_f64().unwrap_or(f64::NAN),
            r["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            r["index_build_seconds"].as_f64().unwrap_or(f64::NAN),
            r["augment_seconds"].as_f64().unwrap_or(f64::NAN),
        );
    }
    if let (Some(&small), Some(&large)) = (sizes.first(), sizes.last()) {
        for stage in ["tfidf", "scene_graph", "retrieval"] {
            let per_pair = |n: usize| {
                results
                    .iter()
                    .find(|r| r["stage"] == stage && r["pairs"] == n)
                    .and_then(|r| r["microseconds_per_pair"].as_f64())
            };
            if let (Some(a), Some(b)) = (per_pair(small), per_pair(large)) {
                println!(
                    "{stage}: time per pair at {large} is {:.2}x that at {small} (target <= 1.5x)",
                    b / a
                );
            }
        }
    }
}
