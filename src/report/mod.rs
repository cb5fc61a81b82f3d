//! `cmcl report`: a static HTML report of a run folder, to look at the samples rather
//! than read JSON. Two pages and a folder of thumbnails, nothing fetched from a network:
//!
//! - `index.html`: the manifest (inputs, ingest, shards, each stage's counts, rejection
//!   reasons and counters), the items per column and kind counted over every shard, and
//!   a histogram of the scores of each kind (TF-IDF similarity, paraphrase similarity,
//!   neighbour distance, ...).
//! - `samples.html`: a seeded random sample of pairs with their image, caption, positives
//!   (pivot and score), negatives with the edit shown as a word diff, and neighbours as
//!   thumbnails or texts; filterable by kind, score range and words.
//!
//! Shards are read one at a time: counts and histograms are streamed and the sample is a
//! reservoir, so memory depends on the sample size and the largest shard, not the run.

pub mod gold;
mod html;
pub mod inspect;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::core::error::{Error, Result};
use crate::core::fs::{hex, temp_path};
use crate::core::record::Pair;
use crate::core::sample::{Augmented, Item};
use crate::store::manifest::{self, Manifest};
use crate::store::shard::read_pairs;

/// Longest side of a thumbnail, in pixels.
const THUMB_SIDE: u32 = 128;

#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Where the report goes; replaced as a whole once it is complete.
    pub out: PathBuf,
    /// Pairs in the sample page.
    pub samples: usize,
    /// Seed of the sample; the run's own seed when `None`.
    pub seed: Option<u64>,
    pub progress: bool,
}

/// What `write` did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSummary {
    pub pairs: usize,
    pub sampled: usize,
    pub thumbnails: usize,
    /// Images that could not be read, each with the pair or neighbour that named it.
    pub unreadable_images: Vec<String>,
}

/// One item column of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Column {
    Positives,
    Negatives,
    Neighbours,
}

impl Column {
    const ALL: [Column; 3] = [Column::Positives, Column::Negatives, Column::Neighbours];

    fn name(self) -> &'static str {
        match self {
            Column::Positives => "positives",
            Column::Negatives => "negatives",
            Column::Neighbours => "neighbours",
        }
    }

    fn items(self, augmented: &Augmented) -> &[Item] {
        match self {
            Column::Positives => &augmented.positives,
            Column::Negatives => &augmented.negatives,
            Column::Neighbours => &augmented.neighbours,
        }
    }
}

/// Counts over every row of a run, per column and kind.
#[derive(Debug, Default)]
pub struct KindTally {
    pub generator: String,
    pub items: u64,
    /// Pairs with at least one item of the kind.
    pub pairs: u64,
    pub score_sum: f64,
    pub histogram: Histogram,
}

/// A streamed histogram: fine fixed bins over [`Histogram::LO`, `Histogram::HI`), regrouped
/// for display over the range the scores actually take.
#[derive(Debug, Clone)]
pub struct Histogram {
    fine: Vec<u64>,
    below: u64,
    above: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            fine: vec![0; Self::FINE_BINS],
            below: 0,
            above: 0,
        }
    }
}

impl Histogram {
    /// Every score cmcl writes (similarities, cosine distances, fluency deltas) lies here.
    const LO: f64 = -2.0;
    const HI: f64 = 2.0;
    const FINE_BINS: usize = 4000;

    pub fn add(&mut self, score: f32) {
        let x = f64::from(score);
        if x.is_nan() || x < Self::LO {
            self.below += 1;
        } else if x >= Self::HI {
            self.above += 1;
        } else {
            let bin = ((x - Self::LO) / (Self::HI - Self::LO) * Self::FINE_BINS as f64) as usize;
            self.fine[bin.min(Self::FINE_BINS - 1)] += 1;
        }
    }

    fn fine_width() -> f64 {
        (Self::HI - Self::LO) / Self::FINE_BINS as f64
    }

    /// At most `bins` bars `(from, to, count)` over the occupied fine bins, plus the
    /// counts below and above the fine range.
    pub fn bars(&self, bins: usize) -> (Vec<(f64, f64, u64)>, u64, u64) {
        let occupied: Vec<usize> = (0..self.fine.len()).filter(|&i| self.fine[i] > 0).collect();
        let (Some(&first), Some(&last)) = (occupied.first(), occupied.last()) else {
            return (Vec::new(), self.below, self.above);
        };
        let span = last - first + 1;
        let per_bar = span.div_ceil(bins.max(1));
        let bars = (first..=last)
            .step_by(per_bar)
            .map(|start| {
                let end = (start + per_bar).min(last + 1);
                let count = self.fine[start..end].iter().sum();
                let at = |i: usize| Self::LO + i as f64 * Self::fine_width();
                (at(start), at(end), count)
            })
            .collect();
        (bars, self.below, self.above)
    }
}

/// A pair drawn into the sample, with where it was found.
#[derive(Debug, Clone)]
struct Drawn {
    row: usize,
    shard: String,
    pair: Pair,
    augmented: Augmented,
}

/// Everything the report shows, gathered in one pass over the shards.
#[derive(Debug, Default)]
struct Gathered {
    rows: usize,
    tallies: BTreeMap<(Column, String), KindTally>,
    sample: Vec<Drawn>,
}

fn gather(
    run_dir: &Path,
    manifest: &Manifest,
    options: &ReportOptions,
    seed: u64,
) -> Result<Gathered> {
    let bar = crate::core::progress::progress_bar(
        options.progress,
        manifest.shards.len() as u64,
        "shards",
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gathered = Gathered::default();
    for entry in &manifest.shards {
        for (pair, augmented) in read_pairs(&run_dir.join(&entry.file))? {
            for column in Column::ALL {
                let mut seen = std::collections::BTreeSet::new();
                for item in column.items(&augmented) {
                    let tally = gathered
                        .tallies
                        .entry((column, item.kind.clone()))
                        .or_default();
                    if tally.generator.is_empty() {
                        tally.generator.clone_from(&item.generator);
                    }
                    tally.items += 1;
                    tally.score_sum += f64::from(item.score);
                    tally.histogram.add(item.score);
                    if seen.insert(item.kind.as_str()) {
                        tally.pairs += 1;
                    }
                }
            }
            // Reservoir sampling (Algorithm R): every row is equally likely to be kept.
            let row = gathered.rows;
            let drawn = || Drawn {
                row,
                shard: entry.file.clone(),
                pair: pair.clone(),
                augmented: augmented.clone(),
            };
            if gathered.sample.len() < options.samples {
                gathered.sample.push(drawn());
            } else {
                let slot = rng.random_range(0..=row);
                if slot < options.samples {
                    gathered.sample[slot] = drawn();
                }
            }
            gathered.rows += 1;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    gathered.sample.sort_by_key(|d| d.row);
    Ok(gathered)
}

/// Thumbnails written so far, by source image path (`None`: unreadable).
struct Thumbnails {
    dir: PathBuf,
    made: HashMap<String, Option<String>>,
    unreadable: Vec<String>,
}

impl Thumbnails {
    /// The thumbnail of `path`, relative to the report folder; `who` names the pair or
    /// neighbour in the warning when the image cannot be read.
    fn of(&mut self, path: &str, who: &str) -> Option<String> {
        if let Some(done) = self.made.get(path) {
            return done.clone();
        }
        let name = format!("{}.png", &hex(&Sha256::digest(path.as_bytes()))[..16]);
        let made = match crate::embed::image::decode(Path::new(path)) {
            Ok(image) => {
                let thumb = image::imageops::thumbnail(
                    &image,
                    THUMB_SIDE.min(image.width()),
                    THUMB_SIDE.min(image.height()),
                );
                let target = self.dir.join(&name);
                match thumb.save(&target) {
                    Ok(()) => Some(format!("thumbs/{name}")),
                    Err(e) => {
                        self.unreadable
                            .push(format!("{who}: {}: {e}", target.display()));
                        None
                    }
                }
            }
            Err(e) => {
                self.unreadable.push(format!("{who}: {e}"));
                None
            }
        };
        self.made.insert(path.to_string(), made.clone());
        made
    }
}

/// One item as the sample page shows it.
#[derive(Debug, Serialize)]
struct ShownItem {
    kind: String,
    score: f32,
    text: Option<String>,
    /// The text against the caption, word by word (`=` same, `-` caption only, `+` new).
    diff: Vec<(char, String)>,
    ref_id: Option<String>,
    /// Pivot language and its text, for back-translations.
    pivot: Option<String>,
    via: Option<String>,
    thumb: Option<String>,
}

#[derive(Debug, Serialize)]
struct ShownPair {
    row: usize,
    shard: String,
    uid: String,
    image_id: String,
    caption: String,
    objects: Vec<String>,
    thumb: Option<String>,
    positives: Vec<ShownItem>,
    negatives: Vec<ShownItem>,
    neighbours: Vec<ShownItem>,
}

fn shown(drawn: &Drawn, thumbs: &mut Thumbnails) -> ShownPair {
    let uid = hex(&drawn.pair.uid);
    let thumb = drawn
        .pair
        .image_path
        .as_deref()
        .and_then(|p| thumbs.of(p, &format!("pair {uid}")));
    let mut items = |column: Column| -> Vec<ShownItem> {
        column
            .items(&drawn.augmented)
            .iter()
            .map(|item| {
                let params: serde_json::Value =
                    serde_json::from_str(&item.params).unwrap_or_default();
                let param =
                    |key: &str| params.get(key).and_then(|v| v.as_str()).map(str::to_string);
                let thumb = param("image_path").and_then(|p| {
                    let who = format!(
                        "pair {uid}, neighbour {}",
                        item.ref_id.as_deref().unwrap_or("?")
                    );
                    thumbs.of(&p, &who)
                });
                ShownItem {
                    kind: item.kind.clone(),
                    score: item.score,
                    diff: item
                        .text
                        .as_deref()
                        .map(|t| word_diff(&drawn.pair.caption, t))
                        .unwrap_or_default(),
                    text: item.text.clone(),
                    ref_id: item.ref_id.clone(),
                    pivot: param("pivot"),
                    via: param("via"),
                    thumb,
                }
            })
            .collect()
    };
    ShownPair {
        row: drawn.row,
        shard: drawn.shard.clone(),
        image_id: drawn.pair.image_id.clone(),
        caption: drawn.pair.caption.clone(),
        objects: drawn.pair.objects.clone().unwrap_or_default(),
        thumb,
        positives: items(Column::Positives),
        negatives: items(Column::Negatives),
        neighbours: items(Column::Neighbours),
        uid,
    }
}

/// Word-level diff of `from` into `to` by longest common subsequence; words compare
/// case- and punctuation-blind, but keep their spelling in `to` (or `from` for `-`).
pub fn word_diff(from: &str, to: &str) -> Vec<(char, String)> {
    let a: Vec<&str> = from.split_whitespace().collect();
    let b: Vec<&str> = to.split_whitespace().collect();
    let key = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let (ka, kb): (Vec<String>, Vec<String>) = (
        a.iter().map(|w| key(w)).collect(),
        b.iter().map(|w| key(w)).collect(),
    );
    // lcs[i][j]: longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if ka[i] == kb[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && ka[i] == kb[j] {
            out.push(('=', b[j].to_string()));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Deletions before insertions: "little -> bit" reads as a replacement.
            out.push(('-', a[i].to_string()));
            i += 1;
        } else {
            out.push(('+', b[j].to_string()));
            j += 1;
        }
    }
    out
}

/// Writes the report of run folder `run_dir` into `options.out`.
pub fn write(run_dir: &Path, options: &ReportOptions) -> Result<ReportSummary> {
    let manifest = Manifest::load(&run_dir.join(manifest::FILE_NAME))?;
    let seed = options.seed.unwrap_or(manifest.seed);
    let gathered = gather(run_dir, &manifest, options, seed)?;

    let staging = temp_path(&options.out);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    }
    let thumbs_dir = staging.join("thumbs");
    std::fs::create_dir_all(&thumbs_dir).map_err(|e| Error::io(&thumbs_dir, e))?;
    let mut thumbs = Thumbnails {
        dir: thumbs_dir,
        made: HashMap::new(),
        unreadable: Vec::new(),
    };
    let pairs: Vec<ShownPair> = gathered
        .sample
        .iter()
        .map(|d| shown(d, &mut thumbs))
        .collect();
    for line in &thumbs.unreadable {
        eprintln!("warning: image not shown: {line}");
    }

    let page = |name: &str, body: String| -> Result<()> {
        let path = staging.join(name);
        std::fs::write(&path, body).map_err(|e| Error::io(&path, e))
    };
    page(
        "index.html",
        html::summary(
            &manifest,
            gathered.rows,
            &gathered.tallies,
            &thumbs.unreadable,
        ),
    )?;
    page(
        "samples.html",
        html::samples(&manifest, gathered.rows, seed, &pairs)?,
    )?;

    // Swap the finished folder in; an old report is only removed once the new one exists.
    let old = temp_path(&options.out.with_extension("old"));
    if options.out.exists() {
        std::fs::rename(&options.out, &old).map_err(|e| Error::io(&options.out, e))?;
    }
    std::fs::rename(&staging, &options.out).map_err(|e| Error::io(&options.out, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(ReportSummary {
        pairs: gathered.rows,
        sampled: pairs.len(),
        thumbnails: thumbs.made.values().filter(|t| t.is_some()).count(),
        unreadable_images: thumbs.unreadable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(diff: &[(char, String)]) -> String {
        diff.iter()
            .map(|(op, w)| format!("{op}{w}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn word_diff_marks_the_replaced_and_swapped_words() {
        let replaced = word_diff("a red ball on the grass", "a blue ball on the grass");
        assert_eq!(ops(&replaced), "=a -red +blue =ball =on =the =grass");
        let swapped = word_diff("a dog left of a cat", "a cat left of a dog");
        let kept: Vec<&str> = swapped
            .iter()
            .filter(|(op, _)| *op == '=')
            .map(|(_, w)| w.as_str())
            .collect();
        assert_eq!(kept, ["a", "left", "of", "a"]);
        // Case and punctuation do not count as changes; the new spelling is shown.
        assert_eq!(ops(&word_diff("A dog.", "a dog")), "=a =dog");
        assert_eq!(ops(&word_diff("", "new words")), "+new +words");
        assert_eq!(ops(&word_diff("old", "")), "-old");
    }

    #[test]
    fn histogram_bars_cover_every_score_once() {
        let mut h = Histogram::default();
        let scores = [
            0.0f32,
            0.05,
            0.5,
            0.5,
            0.999,
            1.0,
            -0.3,
            7.0,
            f32::NAN,
            -5.0,
        ];
        for s in scores {
            h.add(s);
        }
        let (bars, below, above) = h.bars(10);
        assert_eq!((below, above), (2, 1));
        assert_eq!(bars.iter().map(|b| b.2).sum::<u64>(), 7);
        assert!(bars.len() <= 10);
        assert!(bars[0].0 <= -0.3 && bars[bars.len() - 1].1 > 1.0);
        for pair in bars.windows(2) {
            assert!((pair[0].1 - pair[1].0).abs() < 1e-9);
        }
        assert_eq!(Histogram::default().bars(5).0, Vec::new());
    }
}
