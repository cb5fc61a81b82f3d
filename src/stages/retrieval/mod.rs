//! Retrieval: UNIMO's extra positive context. For each pair, the nearest images (by
//! image embedding, optionally kept only when their object labels overlap the pair's)
//! and the nearest texts (by MiniLM) from the pairs and the corpora, found in the HNSW
//! indexes of [`index`], excluding the pair's own image, its image's captions, and exact
//! duplicates.

pub mod index;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::index::{Entries, ImageEntry, Indexes, TextEntry};
use crate::core::error::Result;
use crate::core::record::{dense_ids, Corpus};
use crate::core::sample::Item;
use crate::embed::image::{ImageEmbeddingConfig, ImageNeed};
use crate::index::hnsw::{Hit, Hnsw, HnswParams};
use crate::stages::{boxed, Batch, BuildContext, IndexRun, Stage, StageSpec};
use crate::store::artifact::IndexPolicy;
use crate::store::layout::index_dir;

/// Settings of the `retrieval` stage (`[[stages]] type = "retrieval"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalConfig {
    /// Image neighbours per pair.
    #[serde(default = "default_k")]
    pub image_k: usize,
    /// Text neighbours per pair.
    #[serde(default = "default_k")]
    pub text_k: usize,
    /// HNSW candidate list size at query time.
    #[serde(default = "default_ef")]
    pub ef: usize,
    /// The MiniLM folder (all-MiniLM-L6-v2 layout) for text vectors.
    pub text_encoder: PathBuf,
    #[serde(default)]
    pub image_embeddings: ImageEmbeddingConfig,
    /// UNIMO's criterion: keep an image neighbour only when the Jaccard overlap of its
    /// object labels with the pair's is at least this (images without labels are then
    /// never neighbours of images with them). Unset: no object filter.
    #[serde(default)]
    pub min_object_jaccard: Option<f32>,
    #[serde(default)]
    pub hnsw: HnswParams,
    /// Insert on one thread so the index files are the same bytes on every build.
    #[serde(default)]
    pub reproducible: bool,
}

fn default_k() -> usize {
    3
}

fn default_ef() -> usize {
    64
}

impl StageSpec for RetrievalConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.image_k == 0 && self.text_k == 0 {
            return Err("image_k and text_k are both 0".into());
        }
        if let Some(j) = self.min_object_jaccard {
            if !(0.0..=1.0).contains(&j) {
                return Err(format!("min_object_jaccard must be in [0, 1], not {j}"));
            }
        }
        Ok(())
    }

    fn image_need(&self) -> Option<ImageNeed> {
        (self.image_k > 0).then(|| self.image_embeddings.need())
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![&mut self.text_encoder];
        paths.extend(self.image_embeddings.paths_mut());
        paths
    }

    fn build(&self, corpus: &Corpus, context: &BuildContext) -> Result<Box<dyn Stage>> {
        RetrievalStage::build(self.clone(), corpus, context).map(boxed)
    }

    fn build_indexes(&self, corpus: &Corpus, run: &IndexRun) -> Result<Vec<String>> {
        let indexes =
            index::build_or_open(self, corpus, run.dir, run.progress, IndexPolicy::Build)?;
        let mut lines = Vec::new();
        for (name, opened) in [("text", &indexes.text), ("image", &indexes.image)] {
            let Some(opened) = opened else {
                lines.push(format!("{name} index: none ({name}_k = 0)"));
                continue;
            };
            let details = &opened.record.details;
            lines.push(format!(
                "{name} index: {} vectors of {} ({}), {}",
                opened.value.len(),
                opened.value.dim(),
                details
                    .get("embedding")
                    .and_then(|e| e.as_str())
                    .unwrap_or("?"),
                opened.status()
            ));
        }
        if let (true, Some(image)) = (run.summarize, &indexes.image) {
            let k = self.image_k;
            let overlap = object_overlap(
                &indexes.entries,
                corpus,
                &image.value,
                k,
                self.ef,
                run.seed,
            )?;
            if let Some((near, random)) = overlap {
                lines.push(format!(
                    "object labels: mean Jaccard {near:.3} with the {k} nearest images, \
                     {random:.3} for random pairs"
                ));
            }
        }
        Ok(lines)
    }
}

/// Per image node, its object labels as a sorted set of label ids (None: no labels
/// given), built once so that the object filter inside a search compares integers.
fn label_sets(entries: &Entries, corpus: &Corpus) -> Vec<Option<Vec<u32>>> {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    (0..entries.images.len() as u32)
        .map(|node| {
            let labels = entries.objects(corpus, node)?;
            let mut set: Vec<u32> = labels
                .iter()
                .map(|l| {
                    let next = ids.len() as u32;
                    *ids.entry(l.as_str()).or_insert(next)
                })
                .collect();
            set.sort_unstable();
            set.dedup();
            Some(set)
        })
        .collect()
}

/// Jaccard overlap of two sorted label-id sets.
fn jaccard(a: &[u32], b: &[u32]) -> f32 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => (common, i, j) = (common + 1, i + 1, j + 1),
        }
    }
    match a.len() + b.len() - common {
        0 => 0.0,
        union => common as f32 / union as f32,
    }
}

/// The `retrieval` stage.
pub struct RetrievalStage {
    config: RetrievalConfig,
    indexes: Indexes,
    /// Per image (group of pairs), the text nodes of its captions.
    caption_nodes: Vec<Vec<u32>>,
    /// Per image node, an id shared by images with bit-identical vectors.
    image_keys: Vec<u32>,
    labels: Vec<Option<Vec<u32>>>,
}

impl RetrievalStage {
    /// Opens the run's indexes under `<out_dir>/index`, building what is missing when
    /// the context allows it.
    pub fn build(
        config: RetrievalConfig,
        corpus: &Corpus,
        context: &BuildContext,
    ) -> Result<RetrievalStage> {
        let indexes = index::build_or_open(
            &config,
            corpus,
            &index_dir(context.out_dir),
            context.progress,
            context.indexes,
        )?;
        let entries = &indexes.entries;
        let mut caption_nodes: Vec<Vec<u32>> = vec![Vec::new(); entries.images.len()];
        for (&image, &node) in entries.image_of_pair.iter().zip(&entries.text_of_pair) {
            caption_nodes[image as usize].push(node);
        }
        let image_keys = match &indexes.image {
            Some(image) => dense_ids((0..image.value.len() as u32).map(|n| {
                let bits: Vec<u32> = image.value.vector(n).iter().map(|x| x.to_bits()).collect();
                bits
            })),
            None => Vec::new(),
        };
        Ok(RetrievalStage {
            labels: label_sets(&indexes.entries, corpus),
            config,
            indexes,
            caption_nodes,
            image_keys,
        })
    }

    /// Text neighbours of pair `row`: none of its image's captions (nor a duplicate of
    /// one: duplicates share a node), each text once.
    fn text_neighbours(&self, corpus: &Corpus, row: usize) -> Result<Vec<Item>> {
        let Some(index) = &self.indexes.text else {
            return Ok(Vec::new());
        };
        let entries = &self.indexes.entries;
        let own = &self.caption_nodes[entries.image_of_pair[row] as usize];
        let keep = |id: u32| !own.contains(&id);
        let hits = self.search_distinct(
            &index.value,
            entries.text_of_pair[row],
            self.config.text_k,
            &keep,
            None,
        )?;
        Ok(hits
            .into_iter()
            .enumerate()
            .map(|(rank, hit)| {
                let (ref_id, source) = match entries.texts[hit.id as usize] {
                    TextEntry::Caption(other) => (corpus.pairs[other].uid_hex(), "caption"),
                    TextEntry::Corpus(i) => (corpus.texts[i].text_id.clone(), "text_corpus"),
                };
                Item {
                    text: Some(entries.text(corpus, hit.id).to_string()),
                    ref_id: Some(ref_id),
                    kind: "text_neighbour".into(),
                    generator: "retrieval".into(),
                    params: serde_json::json!({ "rank": rank, "source": source }).to_string(),
                    score: hit.distance,
                }
            })
            .collect())
    }

    /// Image neighbours of pair `row`: not its own image nor a duplicate of it or of
    /// each other, and with enough object overlap when that is asked for.
    fn image_neighbours(&self, corpus: &Corpus, row: usize) -> Result<Vec<Item>> {
        let Some(index) = &self.indexes.image else {
            return Ok(Vec::new());
        };
        let entries = &self.indexes.entries;
        let own = entries.image_of_pair[row];
        let own_key = self.image_keys[own as usize];
        let own_objects = self.labels[own as usize].as_deref();
        let overlap = |id: u32| -> Option<f32> {
            Some(jaccard(own_objects?, self.labels[id as usize].as_deref()?))
        };
        let keep = |id: u32| {
            self.image_keys[id as usize] != own_key
                && match (self.config.min_object_jaccard, own_objects) {
                    (Some(min), Some(_)) => overlap(id).is_some_and(|j| j >= min),
                    _ => true,
                }
        };
        let hits = self.search_distinct(
            &index.value,
            own,
            self.config.image_k,
            &keep,
            Some(&self.image_keys),
        )?;
        Ok(hits
            .into_iter()
            .enumerate()
            .map(|(rank, hit)| {
                let image = entries.image(corpus, hit.id);
                let source = match entries.images[hit.id as usize] {
                    ImageEntry::Pair(_) => "pair",
                    ImageEntry::Corpus(_) => "image_corpus",
                };
                Item {
                    text: None,
                    ref_id: Some(image.image_id.to_string()),
                    kind: "image_neighbour".into(),
                    generator: "retrieval".into(),
                    params: serde_json::json!({
                        "rank": rank,
                        "source": source,
                        "image_path": image.image_path,
                        "object_jaccard": overlap(hit.id),
                    })
                    .to_string(),
                    score: hit.distance,
                }
            })
            .collect())
    }

    /// The `k` nearest kept nodes to node `node`, at most one per duplicate key (when
    /// nodes can be duplicates).
    fn search_distinct(
        &self,
        index: &Hnsw,
        node: u32,
        k: usize,
        keep: &(dyn Fn(u32) -> bool + Sync),
        keys: Option<&[u32]>,
    ) -> Result<Vec<Hit>> {
        let query = index.vector(node).to_vec();
        let mut want = k;
        loop {
            let hits = index.search(&query, want, self.config.ef.max(want), keep)?;
            let exhausted = hits.len() < want;
            let mut seen = BTreeSet::new();
            let distinct: Vec<Hit> = hits
                .into_iter()
                .filter(|h| keys.is_none_or(|keys| seen.insert(keys[h.id as usize])))
                .take(k)
                .collect();
            // Duplicates among the hits push real neighbours out; ask for more.
            if distinct.len() == k || exhausted {
                return Ok(distinct);
            }
            want *= 2;
        }
    }
}

impl Stage for RetrievalStage {
    fn name(&self) -> &str {
        "retrieval"
    }

    fn augment(&self, batch: Batch) -> Result<()> {
        let (corpus, rows, out, stats) = (batch.corpus, batch.rows, batch.out, batch.stats);
        let found: Vec<(Vec<Item>, Vec<Item>)> = rows
            .clone()
            .into_par_iter()
            .map(|row| {
                Ok((
                    self.image_neighbours(corpus, row)?,
                    self.text_neighbours(corpus, row)?,
                ))
            })
            .collect::<Result<_>>()?;
        let stats = stats.entry(self.name().to_string()).or_default();
        for (augmented, (images, texts)) in out.iter_mut().zip(found) {
            stats.count("pairs_with_image_neighbour", u64::from(!images.is_empty()));
            stats.count("pairs_with_text_neighbour", u64::from(!texts.is_empty()));
            stats.produced += (images.len() + texts.len()) as u64;
            augmented.neighbours.extend(images);
            augmented.neighbours.extend(texts);
        }
        Ok(())
    }
}

/// Mean object-label Jaccard between each labelled image and its `k` nearest labelled
/// images (no object filter), against that of random labelled pairs: how much the image
/// embedding knows about objects.
pub fn object_overlap(
    entries: &Entries,
    corpus: &Corpus,
    image: &Hnsw,
    k: usize,
    ef: usize,
    seed: u64,
) -> Result<Option<(f64, f64)>> {
    use rand::{Rng, SeedableRng};
    let sets = label_sets(entries, corpus);
    let is_labelled = |id: u32| sets[id as usize].as_ref().is_some_and(|s| !s.is_empty());
    let labels = |n: u32| sets[n as usize].as_deref().unwrap_or(&[]);
    let labelled: Vec<u32> = (0..image.len() as u32)
        .filter(|&n| is_labelled(n))
        .collect();
    if labelled.len() < 2 {
        return Ok(None);
    }
    let (mut near, mut near_n) = (0f64, 0usize);
    for &node in &labelled {
        let hits = image.search(image.vector(node), k, ef.max(k), &|id| {
            id != node && is_labelled(id)
        })?;
        for hit in hits {
            near += f64::from(jaccard(labels(node), labels(hit.id)));
            near_n += 1;
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut random, samples) = (0f64, near_n.max(1000));
    for _ in 0..samples {
        let a = rng.random_range(0..labelled.len());
        // Another image, never the same one (that would count as full overlap).
        let b = (a + rng.random_range(1..labelled.len())) % labelled.len();
        let (a, b) = (labelled[a], labelled[b]);
        random += f64::from(jaccard(labels(a), labels(b)));
    }
    Ok(Some((near / near_n.max(1) as f64, random / samples as f64)))
}
