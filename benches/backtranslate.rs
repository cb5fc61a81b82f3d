//! `make bench` part 2: back-translation.
//!
//! - Apertium round-trip throughput (eng -> spa -> eng) on the 25,014 COCO val captions:
//!   cmcl's translator with one and two workers against the raw
//!   `apertium -u eng-spa | apertium -u spa-eng` pipe, as one pipe and as two halves in
//!   parallel, all in this run.
//! - MiniLM sentences/s, and Marian sentences/s with a random model of opus-mt-en-de's size.
//! - The whole `backtranslate` stage (`cmcl augment`, pivot spa, an empty translation
//!   cache) on the same captions, with its filters (median of three runs, each after a
//!   raw split run) and without the graph and well-formedness checks.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::bail;
use cmcl::embed::text::TextEncoder;
use cmcl::stages::backtranslate::apertium::{Apertium, ApertiumOptions};
use cmcl::stages::backtranslate::marian::{testing, Marian, MarianOptions};
use cmcl::stages::backtranslate::{round_trip, Translator, ROUND_TRIP_CHUNK};
use common::arg;

mod common;

fn shell(script: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let status = Command::new("bash").arg("-c").arg(script).status()?;
    if !status.success() {
        bail!("{script} failed");
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Round trip of `lines` through one pair of cmcl Apertium translators, driven as the
/// stage drives them (both directions overlapping).
fn apertium_round_trip(lines: &[&str], options: &ApertiumOptions) -> anyhow::Result<Vec<String>> {
    let (mut to, mut back) = (
        Apertium::spawn("eng-spa", options)?,
        Apertium::spawn("spa-eng", options)?,
    );
    Ok(round_trip(&mut to, &mut back, lines, ROUND_TRIP_CHUNK)?.1)
}

/// `cmcl augment` with one backtranslate stage (pivot spa, as pipelines/coco.toml
/// otherwise) over the COCO val captions from an empty cache; the wall time includes
/// start-up, parsing, MiniLM and writing the shards. Either side moves by a second or
/// more between runs on a shared machine, so the stage with all filters runs three
/// times, each right after the raw pipe on two halves, and the medians compare.
fn stage_throughput(
    data: &Path,
    out: &Path,
    n: f64,
    raw_split: impl Fn() -> anyhow::Result<f64>,
) -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run_stage = |name: &str, switches: &str| -> anyhow::Result<(f64, serde_json::Value)> {
        let dir = out.join(format!("stage-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let pipeline = dir.join("pipeline.toml");
        std::fs::write(
            &pipeline,
            format!(
                "name = \"bt-bench\"\nseed = 42\n\n[[inputs.pairs]]\nformat = \"coco\"\npath = {:?}\n\n\
                 [[stages]]\ntype = \"backtranslate\"\nbackend = \"apertium\"\npivots = [\"spa\"]\n\
                 encoder = {:?}\nfilter = {{ wordnet_dir = \"/usr/share/wordnet\"{switches} }}\n\
                 [output]\nrows_per_shard = 5000\n",
                data.join("coco/annotations/captions_val2017.json"),
                root.join("models/all-MiniLM-L6-v2"),
            ),
        )?;
        let started = Instant::now();
        let status = Command::new(env!("CARGO_BIN_EXE_cmcl"))
            .arg("augment")
            .arg("--pipeline")
            .arg(&pipeline)
            .arg("--out")
            .arg(dir.join("run"))
            .arg("--cache-dir")
            .arg(dir.join("cache"))
            .arg("--no-progress")
            .status()?;
        let secs = started.elapsed().as_secs_f64();
        if !status.success() {
            bail!("cmcl augment {} failed", pipeline.display());
        }
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("run/manifest.json"))?)?;
        Ok((
            secs,
            manifest["stages"]["backtranslate"]["produced"].clone(),
        ))
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut raws, mut stages, mut produced) = (Vec::new(), Vec::new(), serde_json::Value::Null);
    for _ in 0..3 {
        raws.push(raw_split()?);
        let (secs, p) = run_stage("all", "")?;
        stages.push(secs);
        produced = p;
    }
    let (raw, stage) = (median(raws.clone()), median(stages.clone()));
    println!("\n| backtranslate stage, pivot spa | wall s (median of 3) | captions/s | vs raw split | positives |");
    println!("|---|---|---|---|---|");
    println!(
        "| raw pipe on two halves | {raw:.1} ({raws:.1?}) | {:.0} | 1.00 | |",
        n / raw
    );
    println!(
        "| all filters | {stage:.1} ({stages:.1?}) | {:.0} | {:.2} | {produced} |",
        n / stage,
        raw / stage
    );
    let (secs, produced) = run_stage("without", ", same_graph = false, well_formed = false")?;
    println!(
        "| without same_graph and well_formed | {secs:.1} (one run) | {:.0} | {:.2} | {produced} |",
        n / secs,
        raw / secs
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (data, out) = (
        arg(&args, "--data")?,
        arg(&args, "--out")?.join("backtranslate"),
    );
    std::fs::create_dir_all(&out)?;
    let captions = common::captions(&data, false)?;
    let n = captions.len() as f64;
    let lines: Vec<&str> = captions.iter().map(String::as_str).collect();
    let file = out.join("captions.txt");
    std::fs::write(&file, captions.join("\n") + "\n")?;
    let half = captions.len() / 2;
    std::fs::write(out.join("half-a.txt"), captions[..half].join("\n") + "\n")?;
    std::fs::write(out.join("half-b.txt"), captions[half..].join("\n") + "\n")?;
    let dir = out.display();

    println!(
        "\nBack-translation (eng -> spa -> eng) of {} COCO val captions, same run",
        captions.len()
    );
    let raw_one = shell(&format!(
        "apertium -u eng-spa < {dir}/captions.txt | apertium -u spa-eng > {dir}/raw.txt"
    ))?;
    let raw_split = || {
        shell(&format!(
            "(apertium -u eng-spa < {dir}/half-a.txt | apertium -u spa-eng > {dir}/raw-a.txt) & \
             (apertium -u eng-spa < {dir}/half-b.txt | apertium -u spa-eng > {dir}/raw-b.txt) & wait"
        ))
    };
    let raw_two = raw_split()?;
    let options = ApertiumOptions::default();
    let started = Instant::now();
    let ours = apertium_round_trip(&lines, &options)?;
    let one = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| apertium_round_trip(&lines[..half], &options));
        let b = s.spawn(|| apertium_round_trip(&lines[half..], &options));
        (a.join(), b.join())
    });
    let two = started.elapsed().as_secs_f64();
    let parallel: Vec<String> = match (a, b) {
        (Ok(Ok(a)), Ok(Ok(b))) => a.into_iter().chain(b).collect(),
        _ => bail!("a worker failed"),
    };
    if parallel != ours {
        bail!("two workers gave different translations than one");
    }
    let raw: Vec<String> = std::fs::read_to_string(out.join("raw.txt"))?
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    let same = raw
        .iter()
        .zip(&ours)
        .filter(|(r, o)| r.replace(['*', '#', '@'], "") == **o)
        .count();
    println!("| Apertium round trip | wall s | captions/s | vs raw |");
    println!("|---|---|---|---|");
    println!("| raw pipe, 1 | {raw_one:.1} | {:.0} | 1.00 |", n / raw_one);
    println!(
        "| cmcl, 1 worker | {one:.1} | {:.0} | {:.2} of raw pipe |",
        n / one,
        raw_one / one
    );
    println!(
        "| raw pipe, 2 halves in parallel | {raw_two:.1} | {:.0} | 1.00 |",
        n / raw_two
    );
    println!(
        "| cmcl, 2 workers | {two:.1} | {:.0} | {:.2} of raw split |",
        n / two,
        raw_two / two
    );
    println!(
        "cmcl output equal to the raw pipe's (marks stripped) for {same}/{} captions",
        captions.len()
    );

    stage_throughput(&data, &out, n, raw_split)?;

    let encoder = TextEncoder::load(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/all-MiniLM-L6-v2")
            .as_path(),
    )?;
    let sample = &lines[..5000.min(lines.len())];
    let started = Instant::now();
    encoder.encode(sample)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\nMiniLM (candle, CPU): {} sentences in {secs:.1} s = {:.0} sentences/s",
        sample.len(),
        sample.len() as f64 / secs
    );

    let model = out.join("marian-opus-mt-en-de-size");
    if !model.join("model.safetensors").exists() {
        testing::write_random_model(&model, &testing::opus_mt_en_de_config(), 1)?;
    }
    let marian_options = MarianOptions {
        max_new_tokens: 32,
        ..MarianOptions::default()
    };
    let mut marian = Marian::load(&model, &marian_options)?;
    let sample = &lines[..64];
    let started = Instant::now();
    marian.translate(sample)?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "Marian, random weights of opus-mt-en-de size (d_model 512, 6+6 layers, 58k vocab), greedy, \
         at most 32 new tokens, CPU: {} sentences in {secs:.1} s = {:.1} sentences/s",
        sample.len(),
        sample.len() as f64 / secs
    );
    Ok(())
}
