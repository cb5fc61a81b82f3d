//! UNIMO's cross-modal contrastive loss (CMCL) over one batch.
//!
//! Each image's candidate texts are every caption in the batch, every attached
//! back-translation and text neighbour, and its own pair's sampled hard negatives (with
//! `share_hard_negatives`, every pair's). Its positives are the captions and
//! back-translations of the same image (weight 1) and that image's text neighbours
//! (weight `neighbour_weight`); every other candidate is a negative:
//!
//! `L_i2t(i) = -log( sum_j w_ij exp(s_ij) / sum_j exp(s_ij) )`, with `s = scale * cos`.
//!
//! Each caption's candidate images are the batch's images; positives are those of the
//! same image. The loss is the mean of both directions.

use std::collections::BTreeMap;

use candle_core::{Result, Tensor, D};
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::record::Pair;
use crate::core::sample::{Augmented, Item};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Hard negatives per pair, by kind (`tfidf`, `bm25`, `swap_attributes`, ...),
    /// sampled from the shard. Empty: in-batch negatives only.
    pub hard_negatives: BTreeMap<String, usize>,
    /// Positives (back-translations) per pair, as extra positives. 0: none.
    pub positives: usize,
    /// Retrieved text neighbours per pair, as positives of weight `neighbour_weight`.
    pub text_neighbours: usize,
    pub neighbour_weight: f32,
    /// Whether a pair's hard negatives are also negatives for the batch's other images.
    /// Off (the default), each image's candidates are the batch's captions plus its own
    /// pair's hard negatives, so the model cannot get by on pushing generated texts away
    /// from every image; on the default set that kept held-out recall@5 within 0-2
    /// points of in-batch training, against 2-3 points lower when shared (2026-11-29).
    pub share_hard_negatives: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        let kinds = [
            "tfidf",
            "bm25",
            "replace_object",
            "replace_attribute",
            "replace_relation",
            "swap_objects",
            "swap_attributes",
        ];
        LossConfig {
            hard_negatives: kinds.into_iter().map(|k| (k.to_string(), 1)).collect(),
            positives: 1,
            text_neighbours: 1,
            neighbour_weight: 0.2,
            share_hard_negatives: false,
        }
    }
}

/// Sources a run can switch off with one flag (`cmcl train --without ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    HardNegatives,
    Positives,
    Neighbours,
}

impl LossConfig {
    pub fn without(&mut self, source: Source) {
        match source {
            Source::HardNegatives => self.hard_negatives.clear(),
            Source::Positives => self.positives = 0,
            Source::Neighbours => self.text_neighbours = 0,
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if !(0.0..=1.0).contains(&self.neighbour_weight) {
            return Err("neighbour_weight must be in [0, 1]".into());
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    Positive,
    Neighbour,
    Negative,
}

/// A batch's texts and targets, before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// The batch's captions first (one per row), then the attached texts.
    pub texts: Vec<String>,
    /// Row-major `[rows, texts]`: the weight of text j as a positive of image i; 0 for
    /// negatives; -1 where text j is no candidate for image i at all.
    pub text_weights: Vec<f32>,
    /// Row-major `[rows, rows]`: 1 where two rows show the same image.
    pub same_image: Vec<f32>,
}

fn image_key(pair: &Pair) -> (&str, &str) {
    (&pair.dataset, &pair.image_id)
}

/// Picks this epoch's attached texts for each row (seeded by the run seed, the epoch and
/// the pair, so the choice never depends on batch composition) and lays out the targets.
pub fn targets(rows: &[(Pair, Augmented)], config: &LossConfig, seed: u64, epoch: u64) -> Targets {
    let mut texts: Vec<String> = rows.iter().map(|(p, _)| p.caption.clone()).collect();
    let mut owners: Vec<(usize, Role)> = (0..rows.len()).map(|r| (r, Role::Positive)).collect();
    for (row, (pair, aug)) in rows.iter().enumerate() {
        let mut h = Sha256::new();
        h.update(seed.to_le_bytes());
        h.update(epoch.to_le_bytes());
        h.update(pair.uid);
        let mut rng = ChaCha8Rng::from_seed(h.finalize().into());
        let with_text = |items: &[Item], keep: &dyn Fn(&Item) -> bool| -> Vec<String> {
            items
                .iter()
                .filter(|i| keep(i))
                .filter_map(|i| i.text.clone())
                .collect()
        };
        let mut pick = |candidates: Vec<String>, n: usize, role: Role| {
            for text in candidates.choose_multiple(&mut rng, n) {
                texts.push(text.clone());
                owners.push((row, role));
            }
        };
        pick(
            with_text(&aug.positives, &|_| true),
            config.positives,
            Role::Positive,
        );
        let neighbours = with_text(&aug.neighbours, &|i| i.kind == "text_neighbour");
        pick(neighbours, config.text_neighbours, Role::Neighbour);
        for (kind, &n) in &config.hard_negatives {
            pick(
                with_text(&aug.negatives, &|i| &i.kind == kind),
                n,
                Role::Negative,
            );
        }
    }
    let mut text_weights = Vec::with_capacity(rows.len() * texts.len());
    let mut same_image = Vec::with_capacity(rows.len() * rows.len());
    for (pair, _) in rows {
        let key = image_key(pair);
        for &(owner, role) in &owners {
            let same = image_key(&rows[owner].0) == key;
            text_weights.push(match role {
                Role::Positive if same => 1.0,
                Role::Neighbour if same => config.neighbour_weight,
                Role::Negative if !same && !config.share_hard_negatives => -1.0,
                _ => 0.0,
            });
        }
        same_image.extend(rows.iter().map(|(p, _)| (image_key(p) == key) as u8 as f32));
    }
    Targets {
        texts,
        text_weights,
        same_image,
    }
}

/// Mean over rows of `-log(sum_j w_ij exp(x_ij) / sum_{j: w_ij >= 0} exp(x_ij))`;
/// every row needs a positive weight somewhere.
pub fn multi_positive_nll(logits: &Tensor, weights: &Tensor) -> Result<Tensor> {
    // ln w, with -1e4 standing in for ln 0 so no infinity reaches the gradient.
    let never = weights.ones_like()?.affine(0.0, -1e4)?;
    let log_w = weights
        .gt(0.0)?
        .where_cond(&weights.clamp(1e-30, f64::MAX)?.log()?, &never)?;
    let outside = weights
        .ge(0.0)?
        .where_cond(&weights.zeros_like()?, &never)?;
    let numerator = log_sum_exp(&(logits + log_w)?)?;
    let denominator = log_sum_exp(&(logits + outside)?)?;
    (denominator - numerator)?.mean_all()
}

fn log_sum_exp(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    shifted
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        .add(&max)?
        .squeeze(D::Minus1)
}

/// The CMCL loss for L2-normalised `images` `[rows, d]` and `texts` `[n, d]` (the first
/// `rows` texts are the rows' captions), `text_weights` `[rows, n]`, `same_image`
/// `[rows, rows]` and the logit scale.
pub fn cmcl_loss(
    images: &Tensor,
    texts: &Tensor,
    text_weights: &Tensor,
    same_image: &Tensor,
    scale: &Tensor,
) -> Result<Tensor> {
    let rows = images.dim(0)?;
    let logits = images.matmul(&texts.t()?)?.broadcast_mul(scale)?;
    let image_to_text = multi_positive_nll(&logits, text_weights)?;
    let caption_logits = logits.narrow(1, 0, rows)?.t()?.contiguous()?;
    let text_to_image = multi_positive_nll(&caption_logits, &same_image.t()?.contiguous()?)?;
    (image_to_text + text_to_image)? / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn item(kind: &str, text: &str) -> Item {
        Item {
            text: Some(text.into()),
            ref_id: None,
            kind: kind.into(),
            generator: "t".into(),
            params: "{}".into(),
            score: 0.0,
        }
    }

    #[test]
    fn loss_equals_the_hand_computed_value() {
        // Two images, three texts: caption 0, caption 1, and a hard negative of image 0.
        // Image 0 also has text 2 as a back-translation at weight 0.5 to test weights.
        let dev = Device::Cpu;
        let images = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0]], &dev).unwrap();
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let texts = Tensor::new(&[[1.0f32, 0.0], [s, s], [0.0, 1.0]], &dev).unwrap();
        let weights = Tensor::new(&[[1.0f32, 0.0, 0.5], [0.0, 1.0, 0.0]], &dev).unwrap();
        let same = Tensor::new(&[[1.0f32, 0.0], [0.0, 1.0]], &dev).unwrap();
        let scale = Tensor::new(2.0f32, &dev).unwrap();
        let got = cmcl_loss(&images, &texts, &weights, &same, &scale)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;

        let e = |x: f64| x.exp();
        let h = std::f64::consts::FRAC_1_SQRT_2 * 2.0;
        // Image 0 scores the texts 2, h, 0; image 1 scores them 0, h, 2.
        let i2t0 = -((e(2.0) + 0.5 * e(0.0)) / (e(2.0) + e(h) + e(0.0))).ln();
        let i2t1 = -(e(h) / (e(0.0) + e(h) + e(2.0))).ln();
        // Caption 0 scores the images 2, 0; caption 1 scores them h, h.
        let t2i0 = -(e(2.0) / (e(2.0) + e(0.0))).ln();
        let t2i1 = -(e(h) / (e(h) + e(h))).ln();
        let want = ((i2t0 + i2t1) / 2.0 + (t2i0 + t2i1) / 2.0) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");

        // Text 2 as no candidate of image 1: its term leaves image 1's denominator.
        let weights = Tensor::new(&[[1.0f32, 0.0, 0.5], [0.0, 1.0, -1.0]], &dev).unwrap();
        let got = cmcl_loss(&images, &texts, &weights, &same, &scale)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let i2t1 = -(e(h) / (e(0.0) + e(h))).ln();
        let want = ((i2t0 + i2t1) / 2.0 + (t2i0 + t2i1) / 2.0) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn targets_mark_same_image_captions_and_positives_and_only_those() {
        let mut corpus =
            crate::core::record::test_corpus(["a red cube", "a blue ball", "a red ball"]);
        corpus.pairs[2].image_id = corpus.pairs[0].image_id.clone();
        let mut augs = vec![Augmented::default(); 3];
        augs[0].negatives = vec![item("swap_attributes", "a blue cube"), item("tfidf", "x")];
        augs[0].positives = vec![item("backtranslation", "one red cube")];
        augs[1].neighbours = vec![
            item("text_neighbour", "a blue sphere"),
            item("image_neighbour", "no"),
        ];
        let rows: Vec<(Pair, Augmented)> = corpus.pairs.into_iter().zip(augs).collect();
        let config = LossConfig {
            hard_negatives: [("swap_attributes".to_string(), 2)].into(),
            positives: 1,
            text_neighbours: 1,
            neighbour_weight: 0.25,
            share_hard_negatives: true,
        };
        let t = targets(&rows, &config, 1, 0);
        assert_eq!(
            t.texts,
            [
                "a red cube",
                "a blue ball",
                "a red ball",
                "one red cube",
                "a blue cube",
                "a blue sphere"
            ]
        );
        #[rustfmt::skip]
        let want = [
            1.0, 0.0, 1.0, 1.0, 0.0, 0.0,
            0.0, 1.0, 0.0, 0.0, 0.0, 0.25,
            1.0, 0.0, 1.0, 1.0, 0.0, 0.0,
        ];
        assert_eq!(t.text_weights, want);
        assert_eq!(t.same_image, [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(targets(&rows, &config, 1, 0), t, "seeded");
        let own_only = LossConfig {
            share_hard_negatives: false,
            ..config
        };
        let t = targets(&rows, &own_only, 1, 0);
        // The hard negative (text 4) of image 0 is no candidate for image 1.
        assert_eq!(t.text_weights[6 + 4], -1.0);
        assert_eq!((t.text_weights[4], t.text_weights[12 + 4]), (0.0, 0.0));
    }
}
