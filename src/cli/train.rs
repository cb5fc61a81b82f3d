//! The bundled trainer: `cmcl train` and `cmcl eval`.

use std::path::PathBuf;

use super::RunArgs;
use cmcl::core::fs::write_json_atomic;
use cmcl::store::layout::TRAIN_DIR;
use cmcl::train::data::Split;
use cmcl::train::loss::Source;
use cmcl::train::model::TextTowerConfig;
use cmcl::train::{compare, train as train_run, TrainOptions};

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Switch a source of samples off (an ablation); repeatable.
    #[arg(long, value_enum)]
    without: Vec<Source>,
    /// Train the text tower from scratch (a word vocabulary and a small transformer)
    /// instead of the pipeline's: the ablation that separates what a pretrained text
    /// tower brings from what the hard negatives bring.
    #[arg(long)]
    scratch_text: bool,
    /// Name of the run folder under OUT/train.
    #[arg(long)]
    name: Option<String>,
    /// Start over even when a checkpoint exists.
    #[arg(long)]
    fresh: bool,
    /// Stop after this many more epochs; the next run resumes (for time-limited jobs).
    #[arg(long)]
    stop_after: Option<usize>,
}

pub fn train(args: TrainArgs) -> anyhow::Result<()> {
    let (p, out_dir) = args.run.start()?;
    let mut config = p.train.clone().unwrap_or_default();
    let mut parts: Vec<String> = Vec::new();
    for source in &args.without {
        config.loss.without(*source);
        parts.extend(clap::ValueEnum::to_possible_value(source).map(|v| v.get_name().into()));
    }
    if args.scratch_text {
        config.model.text = TextTowerConfig::default();
    }
    let ablation = match parts.is_empty() {
        true => "cmcl".to_string(),
        false => format!("without-{}", parts.join("-")),
    };
    let name = args.name.unwrap_or_else(|| match args.scratch_text {
        true => format!("scratch-text-{ablation}"),
        false => ablation,
    });
    let options = TrainOptions {
        run_dir: out_dir.join(TRAIN_DIR).join(&name),
        shards: out_dir.clone(),
        fresh: args.fresh,
        stop_after: args.stop_after,
        progress: !args.run.no_progress,
    };
    let started = std::time::Instant::now();
    match train_run(&config, &options)? {
        Some(m) => eprintln!(
            "{name}: epoch {} in {:.0} s: loss {:.3}, image->text R@5 {:.3}, text->image R@5 {:.3}",
            m.epoch,
            started.elapsed().as_secs_f64(),
            m.train_loss,
            m.eval.image_to_text[1],
            m.eval.text_to_image[1]
        ),
        None => eprintln!("{name}: already trained for every epoch"),
    }
    eprintln!("run is in {}", options.run_dir.display());
    Ok(())
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Runs to show [default: all under OUT/train].
    #[arg(long)]
    runs: Vec<String>,
    /// Also write the table as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Which images to score: the held-out ones, or the training ones (how far
    /// held-out scores trail those shows how much the model memorised).
    #[arg(long, value_enum, default_value = "validation")]
    split: Split,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let (_, out_dir) = args.run.start()?;
    let table = compare(&out_dir.join(TRAIN_DIR), &args.runs, args.split)?;
    print!("{}", table.markdown());
    if let Some(path) = args.json {
        write_json_atomic(&path, &table)?;
    }
    Ok(())
}
