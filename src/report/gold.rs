//! `cmcl check-negatives`: how many negatives of a run on the synthetic set are true of
//! their own image, judged by the gold scenes `cmcl synth` wrote (`scenes.jsonl`).
//!
//! The anchor captions are judged too: they are true by construction, so their share
//! measures the judge itself (the parser and [`crate::synth::truth`]), not the stages.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use serde::Serialize;

use crate::core::error::{Error, Result};
use crate::store::manifest::{self, Manifest};
use crate::store::shard::read_pairs;
use crate::synth::truth::{truth, GoldScene, Truth};
use crate::text::parse::Parser;

/// Examples kept per kind of what went wrong.
const EXAMPLES: usize = 5;

#[derive(Debug, Default, Serialize)]
pub struct KindTally {
    pub generator: String,
    pub total: u64,
    pub true_of_image: u64,
    pub false_of_image: u64,
    pub unknown: u64,
    /// True share among the judged (true + false).
    pub true_share: f64,
    /// (caption, negative) pairs that are true of the caption's image.
    pub true_examples: Vec<(String, String)>,
}

#[derive(Debug, Default, Serialize)]
pub struct GoldCheck {
    pub pairs: u64,
    /// Pairs whose image has no gold scene (not from `cmcl synth`).
    pub pairs_without_scene: u64,
    /// The anchor captions themselves: every one should be true.
    pub captions: KindTally,
    /// Negatives by kind (`tfidf`, `replace_object`, ...).
    pub negatives: BTreeMap<String, KindTally>,
}

impl KindTally {
    fn add(&mut self, verdict: Truth, caption: &str, text: &str) {
        self.total += 1;
        match verdict {
            Truth::True => {
                self.true_of_image += 1;
                if self.true_examples.len() < EXAMPLES {
                    self.true_examples.push((caption.into(), text.into()));
                }
            }
            Truth::False => self.false_of_image += 1,
            Truth::Unknown => self.unknown += 1,
        }
        let judged = self.true_of_image + self.false_of_image;
        self.true_share = self.true_of_image as f64 / judged.max(1) as f64;
    }
}

/// Reads `scenes.jsonl` (one [`GoldScene`] a line) into a map by image id.
pub fn read_scenes(path: &Path) -> Result<HashMap<String, GoldScene>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut scenes = HashMap::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(path, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let scene: GoldScene = serde_json::from_str(&line)
            .map_err(|e| Error::input(path, i as u64 + 1, e.to_string()))?;
        scenes.insert(scene.image_id.clone(), scene);
    }
    Ok(scenes)
}

/// Judges every negative of the run in `run_dir` against its pair's gold scene.
pub fn check_negatives(run_dir: &Path, scenes_path: &Path, parser: &Parser) -> Result<GoldCheck> {
    let scenes = read_scenes(scenes_path)?;
    let manifest = Manifest::load(&run_dir.join(manifest::FILE_NAME))?;
    let mut check = GoldCheck::default();
    let judge = |scene: &GoldScene, text: &str| {
        truth(scene, &parser.parse(text)).map_err(|message| {
            Error::input(
                scenes_path,
                0,
                format!("image {}: {message}", scene.image_id),
            )
        })
    };
    for entry in &manifest.shards {
        for (pair, augmented) in read_pairs(&run_dir.join(&entry.file))? {
            check.pairs += 1;
            let Some(scene) = scenes.get(&pair.image_id) else {
                check.pairs_without_scene += 1;
                continue;
            };
            let verdict = judge(scene, &pair.caption)?;
            check.captions.generator = "caption".into();
            check.captions.add(verdict, &pair.caption, &pair.caption);
            for negative in &augmented.negatives {
                let Some(text) = &negative.text else { continue };
                let tally = check.negatives.entry(negative.kind.clone()).or_default();
                tally.generator.clone_from(&negative.generator);
                tally.add(judge(scene, text)?, &pair.caption, text);
            }
        }
    }
    Ok(check)
}

impl std::fmt::Display for GoldCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} pairs ({} without a gold scene); true of their own image, among those judged:",
            self.pairs, self.pairs_without_scene
        )?;
        writeln!(
            f,
            "{:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "kind", "total", "true", "false", "unknown", "true %"
        )?;
        let rows = std::iter::once(("(anchor caption)", &self.captions))
            .chain(self.negatives.iter().map(|(k, t)| (k.as_str(), t)));
        for (kind, t) in rows {
            writeln!(
                f,
                "{kind:<20} {:>8} {:>8} {:>8} {:>8} {:>7.2}%",
                t.total,
                t.true_of_image,
                t.false_of_image,
                t.unknown,
                100.0 * t.true_share
            )?;
        }
        for (kind, t) in &self.negatives {
            for (caption, negative) in &t.true_examples {
                writeln!(f, "  true {kind}: {caption:?} -> {negative:?}")?;
            }
        }
        Ok(())
    }
}
