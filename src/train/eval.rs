//! Evaluation on the held-out images: retrieval recall@1/5/10 in both directions, and
//! hard-negative accuracy per kind as ARO and SugarCrepe measure it (the image must
//! score its true caption strictly above the negative).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::data::{rows_of, Split};
use super::Trainer;
use crate::core::error::Result;

pub const RECALL_AT: [usize; 3] = [1, 5, 10];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub images: usize,
    pub captions: usize,
    /// Image -> text recall@1/5/10: an image scores a hit when any of its captions is in
    /// the top k of all held-out captions.
    pub image_to_text: [f64; 3],
    /// Text -> image recall@1/5/10 over all held-out images.
    pub text_to_image: [f64; 3],
    /// Per negative kind: (correct, total).
    pub hard_negatives: BTreeMap<String, (u64, u64)>,
}

impl EvalReport {
    pub fn accuracy(&self, kind: &str) -> Option<f64> {
        let &(correct, total) = self.hard_negatives.get(kind)?;
        (total > 0).then(|| correct as f64 / total as f64)
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Scores one split of `files` (the held-out images, or the training ones to see how
/// much of that is memorised), `batch` pairs at a time.
pub fn evaluate(
    trainer: &Trainer,
    files: &[PathBuf],
    split: Split,
    batch: usize,
) -> Result<EvalReport> {
    let mut image_index: HashMap<(String, String), usize> = HashMap::new();
    let mut images: Vec<Vec<f32>> = Vec::new();
    let mut captions: Vec<(Vec<f32>, usize)> = Vec::new();
    let mut report = EvalReport::default();
    let (seed, fraction) = (trainer.config.seed, trainer.config.data.validation_fraction);
    for file in files {
        let rows = rows_of(file, split, seed, fraction)?;
        for chunk in rows.chunks(batch.max(1)) {
            // Each row's image slot; images not seen before are embedded once, here.
            let mut new: Vec<&crate::core::record::Pair> = Vec::new();
            let mut image_of = Vec::with_capacity(chunk.len());
            for (pair, _) in chunk {
                let key = (pair.dataset.clone(), pair.image_id.clone());
                let next = images.len() + new.len();
                let slot = *image_index.entry(key).or_insert(next);
                if slot == next {
                    new.push(pair);
                }
                image_of.push(slot);
            }
            images.extend(trainer.embed_images(&new)?);
            let mut texts: Vec<&str> = chunk.iter().map(|(p, _)| p.caption.as_str()).collect();
            let mut negatives: Vec<(usize, &str)> = Vec::new();
            for (row, (_, aug)) in chunk.iter().enumerate() {
                for item in &aug.negatives {
                    if let Some(text) = &item.text {
                        negatives.push((row, &item.kind));
                        texts.push(text);
                    }
                }
            }
            let vectors = trainer.embed_texts(&texts)?;
            for (row, vector) in vectors.iter().take(chunk.len()).enumerate() {
                captions.push((vector.clone(), image_of[row]));
            }
            for (i, (row, kind)) in negatives.into_iter().enumerate() {
                let image = &images[image_of[row]];
                let correct = dot(image, &vectors[row]) > dot(image, &vectors[chunk.len() + i]);
                let tally = report.hard_negatives.entry(kind.to_string()).or_default();
                tally.0 += correct as u64;
                tally.1 += 1;
            }
        }
    }
    report.images = images.len();
    report.captions = captions.len();
    if images.is_empty() {
        return Ok(report);
    }
    // Rank of the best-placed positive, for each query: 0 = first.
    let mut i2t = Vec::with_capacity(images.len());
    for (id, image) in images.iter().enumerate() {
        let scores: Vec<f32> = captions.iter().map(|(c, _)| dot(image, c)).collect();
        let best = captions
            .iter()
            .zip(&scores)
            .filter(|((_, owner), _)| *owner == id)
            .map(|(_, s)| *s)
            .fold(f32::MIN, f32::max);
        i2t.push(scores.iter().filter(|&&s| s > best).count());
    }
    let t2i: Vec<usize> = captions
        .iter()
        .map(|(caption, owner)| {
            let own = dot(&images[*owner], caption);
            images.iter().filter(|i| dot(i, caption) > own).count()
        })
        .collect();
    let recall = |ranks: &[usize], k: usize| {
        ranks.iter().filter(|&&r| r < k).count() as f64 / ranks.len().max(1) as f64
    };
    for (slot, k) in RECALL_AT.into_iter().enumerate() {
        report.image_to_text[slot] = recall(&i2t, k);
        report.text_to_image[slot] = recall(&t2i, k);
    }
    Ok(report)
}
