//! The scene-graph parser from the shell: `cmcl parse` and `cmcl eval-parser`.

use std::path::PathBuf;

use cmcl::core::fs::write_json_atomic;
use cmcl::text::parse::lexicon::DEFAULT_WORDNET_DIR;
use cmcl::text::parse::{eval, tagger, Lexicon, Parser};

#[derive(clap::Args)]
pub struct EvalParserArgs {
    gold: PathBuf,
    /// Another parser's predictions to score instead of parsing.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// WordNet 3.0 database folder (Debian: wordnet-base).
    #[arg(long, default_value = DEFAULT_WORDNET_DIR)]
    wordnet: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn eval_parser(args: EvalParserArgs) -> anyhow::Result<()> {
    let captions = eval::read_gold(&args.gold)?;
    let report = match args.predictions {
        Some(path) => {
            let lexicon = Lexicon::load(&args.wordnet)?;
            let predicted = eval::read_predictions(&path, &captions)?;
            eval::score(&lexicon, &captions, &predicted)
        }
        None => eval::evaluate(&Parser::load(&args.wordnet)?, &captions),
    };
    println!("{report}");
    if let Some(path) = args.json {
        write_json_atomic(&path, &report)?;
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct ParseArgs {
    captions: Vec<String>,
    #[arg(long, default_value = DEFAULT_WORDNET_DIR)]
    wordnet: PathBuf,
    /// Also print each word's tag, to see why a caption parsed as it did.
    #[arg(long)]
    tags: bool,
}

pub fn parse(args: ParseArgs) -> anyhow::Result<()> {
    let parser = Parser::load(&args.wordnet)?;
    let captions = if args.captions.is_empty() {
        std::io::stdin().lines().collect::<Result<Vec<_>, _>>()?
    } else {
        args.captions
    };
    for caption in captions {
        let graph = parser.parse(&caption);
        let triples: Vec<String> = graph
            .triples()
            .iter()
            .map(|t| format!("( {} , {} , {} )", t[0], t[1], t[2]))
            .collect();
        println!("{caption}\t{}", triples.join(" , "));
        if args.tags {
            let tokens = tagger::tag(parser.lexicon(), &caption);
            let tagged: Vec<String> = tokens
                .iter()
                .map(|t| format!("{}/{:?}", t.word, t.tag))
                .collect();
            println!("  {}", tagged.join(" "));
        }
    }
    Ok(())
}
