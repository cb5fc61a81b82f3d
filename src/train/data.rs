//! Training data from a run's shards: one shard in memory at a time, examples drawn
//! through a seeded shuffle buffer (shard order shuffled per epoch too), a validation
//! split fixed by hashing each image's id, and a word vocabulary built from the
//! training texts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::error::{Error, Result};
use crate::core::record::Pair;
use crate::core::sample::Augmented;
use crate::embed::image::{ImageEmbedder, ImageRef};

/// The shards of a run folder, and the SHA-256 its manifest records of each.
pub struct ShardList {
    pub files: Vec<PathBuf>,
    /// Per file, in order; none without a manifest.
    recorded: Option<Vec<String>>,
}

impl ShardList {
    /// SHA-256 over each shard's file name and SHA-256 (the manifest's, which `augment`
    /// checked when it wrote the file; computed from the file without a manifest).
    pub fn sha256(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        for (i, file) in self.files.iter().enumerate() {
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let sha = match &self.recorded {
                Some(recorded) => recorded[i].clone(),
                None => crate::core::fs::sha256_file(file)?,
            };
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(sha.as_bytes());
        }
        Ok(crate::core::fs::hex(&hasher.finalize()))
    }
}

/// The shards of a run folder, in manifest order (any `*.arrow` files, sorted, when
/// there is no manifest).
pub fn shard_files(run_dir: &Path) -> Result<ShardList> {
    let manifest = run_dir.join("manifest.json");
    let (files, recorded): (Vec<PathBuf>, Option<Vec<String>>) = match std::fs::read(&manifest) {
        Ok(bytes) => {
            let m: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
                    path: manifest.clone(),
                    message: e.to_string(),
                })?;
            let entries: Vec<(PathBuf, String)> = m["shards"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| {
                    let sha = s["sha256"].as_str().unwrap_or_default().to_string();
                    Some((run_dir.join(s["file"].as_str()?), sha))
                })
                .collect();
            let (files, shas) = entries.into_iter().unzip();
            (files, Some(shas))
        }
        Err(_) => {
            let entries = std::fs::read_dir(run_dir).map_err(|e| Error::io(run_dir, e))?;
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "arrow"))
                .collect();
            files.sort();
            (files, None)
        }
    };
    if files.is_empty() {
        return Err(Error::Input {
            path: run_dir.to_path_buf(),
            line: 0,
            message: "no shards here: run `cmcl augment` first".into(),
        });
    }
    Ok(ShardList { files, recorded })
}

/// Whether an image is held out: a hash of the seed and its id, so the split never
/// depends on shard layout and every caption of an image lands on the same side.
pub fn is_validation(dataset: &str, image_id: &str, seed: u64, fraction: f64) -> bool {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for part in [dataset, image_id] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    let x = u64::from_le_bytes(digest[..8].try_into().unwrap_or_default());
    (x as f64 / u64::MAX as f64) < fraction
}

/// Which images a row belongs to: the held-out ones or the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    Train,
    Validation,
}

/// Reads the rows of `split`, shard by shard.
pub fn rows_of(
    file: &Path,
    split: Split,
    seed: u64,
    fraction: f64,
) -> Result<Vec<(Pair, Augmented)>> {
    let mut rows = crate::store::shard::read_pairs(file)?;
    rows.retain(|(p, _)| {
        is_validation(&p.dataset, &p.image_id, seed, fraction) == (split == Split::Validation)
    });
    Ok(rows)
}

/// Word-level vocabulary: `[PAD]` = 0, `[UNK]` = 1, then words by count (ties by word).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    pub words: Vec<String>,
    #[serde(skip)]
    ids: HashMap<String, u32>,
}

pub const PAD: u32 = 0;
pub const UNK: u32 = 1;

impl Vocab {
    pub fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
    }

    pub fn from_counts(counts: &BTreeMap<String, u64>, min_count: usize) -> Vocab {
        let mut ranked: Vec<(&String, &u64)> = counts
            .iter()
            .filter(|(_, &n)| n >= min_count as u64)
            .collect();
        ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let words = ["[PAD]", "[UNK]"]
            .into_iter()
            .map(String::from)
            .chain(ranked.into_iter().map(|(w, _)| w.clone()))
            .collect();
        Vocab::from_words(words)
    }

    pub fn from_words(words: Vec<String>) -> Vocab {
        let ids = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        Vocab { words, ids }
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Token ids of `text`, cut at `max_len`; at least one token (`[UNK]` for none).
    pub fn encode(&self, text: &str, max_len: usize) -> Vec<u32> {
        let mut ids: Vec<u32> = Vocab::words_of(text)
            .take(max_len)
            .map(|w| self.ids.get(&w).copied().unwrap_or(UNK))
            .collect();
        if ids.is_empty() {
            ids.push(UNK);
        }
        ids
    }

    /// One pass over the training split: the vocabulary of every training text (captions
    /// and attached item texts), the number of training rows, and the first of them.
    pub fn build(
        files: &[PathBuf],
        seed: u64,
        fraction: f64,
        min_count: usize,
    ) -> Result<(Vocab, usize, Option<Pair>)> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let (mut rows, mut first) = (0, None);
        for file in files {
            for (pair, aug) in rows_of(file, Split::Train, seed, fraction)? {
                let items = aug
                    .positives
                    .iter()
                    .chain(&aug.negatives)
                    .chain(&aug.neighbours);
                let texts = std::iter::once(pair.caption.as_str())
                    .chain(items.filter_map(|i| i.text.as_deref()));
                for word in texts.flat_map(Vocab::words_of) {
                    *counts.entry(word).or_insert(0) += 1;
                }
                rows += 1;
                first.get_or_insert(pair);
            }
        }
        Ok((Vocab::from_counts(&counts, min_count), rows, first))
    }
}

/// One epoch's training rows in a seeded order: shards in a shuffled order, rows through
/// a shuffle buffer of `buffer` rows, so memory is one shard plus the buffer.
pub struct Shuffled<'a> {
    files: Vec<&'a PathBuf>,
    buffer: Vec<(Pair, Augmented)>,
    capacity: usize,
    rng: ChaCha8Rng,
    seed: u64,
    fraction: f64,
}

impl<'a> Shuffled<'a> {
    pub fn new(files: &'a [PathBuf], seed: u64, epoch: u64, fraction: f64, buffer: usize) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut files: Vec<&PathBuf> = files.iter().collect();
        files.shuffle(&mut rng);
        files.reverse(); // popped from the back
        Shuffled {
            files,
            buffer: Vec::new(),
            capacity: buffer.max(1),
            rng,
            seed,
            fraction,
        }
    }

    pub fn next_row(&mut self) -> Result<Option<(Pair, Augmented)>> {
        while self.buffer.len() < self.capacity {
            let Some(file) = self.files.pop() else { break };
            let rows = rows_of(file, Split::Train, self.seed, self.fraction)?;
            self.buffer.extend(rows);
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let at = self.rng.random_range(0..self.buffer.len());
        Ok(Some(self.buffer.swap_remove(at)))
    }
}

/// Image inputs for the image tower: pixels for the CNN, vectors for the MLP. Decoded
/// images are cached (bounded) because every epoch revisits them.
pub enum ImageSource {
    Pixels { size: usize },
    Vectors(Box<dyn ImageEmbedder>),
}

pub struct ImageLoader {
    source: ImageSource,
    cache: Mutex<HashMap<String, std::sync::Arc<Vec<f32>>>>,
}

/// Entries kept in the image cache before it is cleared.
const IMAGE_CACHE: usize = 50_000;

impl ImageLoader {
    pub fn new(source: ImageSource) -> ImageLoader {
        ImageLoader {
            source,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Values per image.
    pub fn width(&self, probe: &Pair) -> Result<usize> {
        Ok(self.load(probe)?.len())
    }

    /// One image's input: `3 * size * size` values, channel-major, in [-0.5, 0.5]; or its
    /// vector.
    pub fn load(&self, pair: &Pair) -> Result<std::sync::Arc<Vec<f32>>> {
        let key = format!("{}\u{1f}{}", pair.dataset, pair.image_id);
        if let Some(hit) = self.cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
            return Ok(hit);
        }
        let values = match &self.source {
            ImageSource::Pixels { size } => {
                let path = pair.image_path.as_deref().ok_or_else(|| Error::Stage {
                    stage: "train".into(),
                    message: format!(
                        "pair {} (image {}) has no image_path, which the cnn image tower needs",
                        pair.uid_hex(),
                        pair.image_id
                    ),
                })?;
                pixels(Path::new(path), *size)?
            }
            ImageSource::Vectors(embedder) => embedder.embed(&ImageRef {
                image_id: &pair.image_id,
                image_path: pair.image_path.as_deref(),
                image_vector: pair.image_vector.as_deref(),
            })?,
        };
        let values = std::sync::Arc::new(values);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= IMAGE_CACHE {
                cache.clear();
            }
            cache.insert(key, values.clone());
        }
        Ok(values)
    }
}

fn pixels(path: &Path, size: usize) -> Result<Vec<f32>> {
    let image = crate::embed::image::decode(path)?;
    let side = size as u32;
    let small = image::imageops::resize(&image, side, side, image::imageops::FilterType::Triangle);
    let mut values = vec![0.0f32; 3 * size * size];
    for (i, pixel) in small.pixels().enumerate() {
        for c in 0..3 {
            values[c * size * size + i] = pixel.0[c] as f32 / 255.0 - 0.5;
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_ranks_by_count_and_maps_unknown_words() {
        let counts: BTreeMap<String, u64> = [("cube", 3), ("red", 3), ("ball", 1), ("a", 5)]
            .into_iter()
            .map(|(w, n)| (w.to_string(), n))
            .collect();
        let vocab = Vocab::from_counts(&counts, 2);
        assert_eq!(vocab.words, ["[PAD]", "[UNK]", "a", "cube", "red"]);
        assert_eq!(vocab.encode("A red ball, a CUBE", 4), vec![2, 4, UNK, 2]);
        assert_eq!(vocab.encode("!!", 4), vec![UNK]);
    }

    #[test]
    fn the_split_keeps_every_caption_of_an_image_together_and_is_near_the_fraction() {
        let held: usize = (0..10_000)
            .filter(|i| is_validation("d", &i.to_string(), 3, 0.2))
            .count();
        assert!((1_800..2_200).contains(&held), "{held}");
        assert_eq!(
            is_validation("d", "7", 3, 0.2),
            is_validation("d", "7", 3, 0.2)
        );
        let other_seed = (0..100)
            .filter(|i| {
                is_validation("d", &i.to_string(), 3, 0.2)
                    != is_validation("d", &i.to_string(), 4, 0.2)
            })
            .count();
        assert!(other_seed > 0);
    }
}
