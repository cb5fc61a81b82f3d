//! Data in: `cmcl synth` (the synthetic default dataset) and `cmcl search` (the BM25
//! index of a run's texts).

use std::path::PathBuf;

use cmcl::stages::tfidf::bm25::Bm25Index;
use cmcl::synth::{self, SynthConfig};

#[derive(clap::Args)]
pub struct SynthArgs {
    /// Folder to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    seed: u64,
    /// Captioned images to render.
    #[arg(long, default_value_t = SynthConfig::default().images)]
    images: usize,
    /// Images of the image-only corpus.
    #[arg(long, default_value_t = SynthConfig::default().corpus_images)]
    corpus_images: usize,
    /// Texts of the text-only corpus.
    #[arg(long, default_value_t = SynthConfig::default().corpus_texts)]
    corpus_texts: usize,
}

pub fn synth(args: SynthArgs) -> anyhow::Result<()> {
    let config = SynthConfig {
        seed: args.seed,
        images: args.images,
        corpus_images: args.corpus_images,
        corpus_texts: args.corpus_texts,
        ..SynthConfig::default()
    };
    let summary = synth::generate(&config, &args.out)?;
    eprintln!(
        "wrote {} pairs over {} images, {} corpus images, {} corpus texts to {}",
        summary.pairs,
        summary.images,
        summary.corpus_images,
        summary.corpus_texts,
        args.out.display()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct SearchArgs {
    index: PathBuf,
    query: String,
    /// Hits to show.
    #[arg(long, short = 'k', default_value_t = 10)]
    k: usize,
    /// One JSON object a line instead of columns.
    #[arg(long)]
    json: bool,
}

pub fn search(args: SearchArgs) -> anyhow::Result<()> {
    let index = Bm25Index::open(&args.index)?;
    let hits = index.search(&args.query, args.k)?;
    if hits.is_empty() {
        eprintln!(
            "no text of {} texts shares a term with the query",
            index.len()
        );
    }
    for hit in hits {
        if args.json {
            println!("{}", serde_json::to_string(&hit)?);
        } else {
            println!(
                "{:>3}  {:>7.3}  {:<7}  {}  {}",
                hit.rank, hit.score, hit.source, hit.id, hit.text
            );
        }
    }
    Ok(())
}
