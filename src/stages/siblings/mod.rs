//! Positives of kind `caption`: the other captions of the same image. They are human
//! paraphrases by construction (true of the image, written by a person), for trainers
//! that want them from the shards next to the generated positives.

use serde::{Deserialize, Serialize};

use crate::core::error::Result;
use crate::core::record::Corpus;
use crate::core::sample::Item;
use crate::stages::{boxed, Batch, BuildContext, Stage, StageSpec};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiblingsConfig {
    /// Most sibling captions attached per pair, in input order.
    #[serde(default = "default_max_captions")]
    pub max_captions: usize,
}

fn default_max_captions() -> usize {
    4
}

impl StageSpec for SiblingsConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.max_captions == 0 {
            return Err("max_captions must be at least 1".into());
        }
        Ok(())
    }

    fn build(&self, corpus: &Corpus, _context: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(boxed(SiblingsStage::build(self.clone(), corpus)))
    }
}

pub struct SiblingsStage {
    config: SiblingsConfig,
    /// Per image (dense id), its pairs in corpus order.
    members: Vec<Vec<u32>>,
    /// Per pair, its image's dense id.
    groups: Vec<u32>,
}

impl SiblingsStage {
    pub fn build(config: SiblingsConfig, corpus: &Corpus) -> SiblingsStage {
        let groups = corpus.image_groups();
        let mut members: Vec<Vec<u32>> = Vec::new();
        for (row, &group) in groups.iter().enumerate() {
            let group = group as usize;
            if members.len() <= group {
                members.resize(group + 1, Vec::new());
            }
            members[group].push(row as u32);
        }
        SiblingsStage {
            config,
            members,
            groups,
        }
    }
}

impl Stage for SiblingsStage {
    fn name(&self) -> &str {
        "siblings"
    }

    fn augment(&self, batch: Batch) -> Result<()> {
        let (corpus, rows, out, stats) = (batch.corpus, batch.rows, batch.out, batch.stats);
        let stats = stats.entry(self.name().to_string()).or_default();
        for (row, aug) in rows.zip(out.iter_mut()) {
            let pair = &corpus.pairs[row];
            let own = crate::text::words::normalize(&pair.caption);
            let mut added = 0;
            for &other in &self.members[self.groups[row] as usize] {
                let sibling = &corpus.pairs[other as usize];
                if other as usize == row || crate::text::words::normalize(&sibling.caption) == own
                {
                    continue;
                }
                if added == self.config.max_captions {
                    stats.reject("over_max_captions", 1);
                    continue;
                }
                added += 1;
                aug.positives.push(Item {
                    text: Some(sibling.caption.clone()),
                    ref_id: Some(sibling.uid_hex()),
                    kind: "caption".into(),
                    generator: "siblings".into(),
                    params: serde_json::json!({ "caption_id": sibling.caption_id }).to_string(),
                    score: 1.0,
                });
            }
            stats.produced += added as u64;
            if added > 0 {
                stats.count("pairs_with_sibling", 1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::{Augmented, Stats};

    #[test]
    fn other_captions_of_the_image_in_input_order_capped() {
        let mut corpus = crate::core::record::test_corpus([
            "a dog on a bed",
            "a cat on a mat",
            "A dog lying on a bed.",
            "a dog on a bed",
            "a puppy asleep on a bed",
            "a brown dog resting",
        ]);
        // Pairs 0, 2, 3, 4 and 5 show one image; pair 3 repeats pair 0's caption.
        for i in [2, 3, 4, 5] {
            corpus.pairs[i].image_id = corpus.pairs[0].image_id.clone();
        }
        let stage = SiblingsStage::build(SiblingsConfig { max_captions: 2 }, &corpus);
        let mut out = vec![Augmented::default(); corpus.pairs.len()];
        let mut stats = Stats::new();
        stage
            .augment(Batch {
                corpus: &corpus,
                rows: 0..corpus.pairs.len(),
                out: &mut out,
                stats: &mut stats,
            })
            .unwrap();
        let texts = |i: usize| -> Vec<&str> {
            out[i].positives.iter().filter_map(|p| p.text.as_deref()).collect()
        };
        assert_eq!(texts(0), ["A dog lying on a bed.", "a puppy asleep on a bed"]);
        assert!(texts(1).is_empty());
        assert_eq!(out[0].positives[0].ref_id.as_deref(), Some(corpus.pairs[2].uid_hex().as_str()));
        assert_eq!(out[0].positives[0].kind, "caption");
        let s = &stats["siblings"];
        assert_eq!(s.counters["pairs_with_sibling"], 5);
        assert!(s.rejected["over_max_captions"] >= 1);
    }
}
