//! What each image's captions (and object labels) state, for the negative stages (scene
//! graph edits, TF-IDF and BM25 neighbours) to ask
//! whether a negative may be true of the anchor's image after all: a triple another of
//! its captions states, an object it names or is labelled with, or a kind it has several
//! of (then an edit may describe the other one).
//!
//! Facts are kept as 64-bit hashes of (image, fact), so a million pairs cost a few
//! tens of megabytes rather than a copy of every caption's graph.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::lexicon::{AttributeKind, Lexicon};
use super::{Parser, SceneGraph};
use crate::core::record::Corpus;
use crate::text::words::head_word;

pub struct ImageFacts {
    /// Per pair, in corpus order, its image's index.
    image_of_pair: Vec<u32>,
    facts: HashSet<u64>,
}

fn fact(image: u32, parts: &[&str]) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(image.to_le_bytes());
    for p in parts {
        hasher.update(p.as_bytes());
        hasher.update([0x1f]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// The kinds of attribute two captions of one image can contradict each other on.
fn contrastive_kind(lex: &Lexicon, value: &str) -> Option<AttributeKind> {
    let kind = lex.attribute_kind(value);
    matches!(
        kind,
        AttributeKind::Colour
            | AttributeKind::Size
            | AttributeKind::Material
            | AttributeKind::Age
            | AttributeKind::Shape
    )
    .then_some(kind)
}

/// A count attribute ("two"): captions of one image disagree on counts too often for it
/// to tell a caption apart.
fn is_count(triple: &[String; 3]) -> bool {
    triple[1] == "is" && triple[2].chars().all(|c| c.is_ascii_digit())
}

impl ImageFacts {
    /// `graph_of_pair[i]` indexes `graphs` with pair `i`'s caption graph.
    pub fn build(
        parser: &Parser,
        corpus: &Corpus,
        graph_of_pair: &[u32],
        graphs: &[SceneGraph],
    ) -> ImageFacts {
        let lex = parser.lexicon();
        let mut image_ids: HashMap<&str, u32> = HashMap::new();
        let mut image_of_pair = Vec::with_capacity(corpus.pairs.len());
        let mut facts = HashSet::new();
        let mut labelled: HashSet<u32> = HashSet::new();
        for (pair, &g) in corpus.pairs.iter().zip(graph_of_pair) {
            let next = image_ids.len() as u32;
            let image = *image_ids.entry(pair.image_id.as_str()).or_insert(next);
            image_of_pair.push(image);
            let graph = &graphs[g as usize];
            for [s, p, o] in graph.triples() {
                facts.insert(fact(image, &[&s, &p, &o]));
                if let Some(kind) = (p == "is").then(|| contrastive_kind(lex, &o)).flatten() {
                    facts.insert(fact(image, &["kind", &s, kind.name()]));
                }
            }
            for object in &graph.objects {
                facts.insert(fact(image, &["object", &object.name]));
                facts.insert(fact(image, &["head", head_word(&object.name)]));
            }
            // Every caption of an image carries the same labels: count them once.
            if pair.objects.is_none() || !labelled.insert(image) {
                continue;
            }
            let mut labels: BTreeMap<String, usize> = BTreeMap::new();
            for label in pair.objects.iter().flatten() {
                let label = label.to_lowercase();
                let last = head_word(&label);
                *labels.entry(lex.noun_lemma(last)).or_default() += 1;
                facts.insert(fact(image, &["object", &label]));
            }
            for (name, n) in labels {
                facts.insert(fact(image, &["object", &name]));
                if n > 1 {
                    facts.insert(fact(image, &["several", &name]));
                }
            }
        }
        ImageFacts {
            image_of_pair,
            facts,
        }
    }

    /// The image of pair `row` (corpus order).
    pub fn image_of(&self, row: usize) -> u32 {
        self.image_of_pair[row]
    }

    /// Whether a caption of `image` states the triple.
    pub fn states(&self, image: u32, [s, p, o]: [&str; 3]) -> bool {
        self.facts.contains(&fact(image, &[s, p, o]))
    }

    /// Whether a caption of `image` names the object, or it is labelled with it.
    pub fn names(&self, image: u32, object: &str) -> bool {
        self.facts.contains(&fact(image, &["object", object]))
    }

    /// Whether the labels show more than one object of this name in `image`.
    pub fn several(&self, image: u32, object: &str) -> bool {
        self.facts.contains(&fact(image, &["several", object]))
    }

    /// Whether `graph` may well be true of `image`: every object it names is named by a
    /// caption of the image or among its labels (or is the head of a compound one names:
    /// "train" for "passenger train"; quantity words such as "group" aside), and no
    /// attribute contradicts one the image's captions state of the same object and kind
    /// ("white bus" against "red bus"). An attribute the captions leave unsaid ("a tall
    /// giraffe") is no contradiction: a blind audit found such neighbours mostly still
    /// true. Relations are not asked for: another caption of the same things ("a man
    /// swinging a racket" for "a man holding a racket") is seldom false of the image. An
    /// empty graph says nothing checkable and is never entailed.
    pub fn entails(&self, image: u32, graph: &SceneGraph, lex: &Lexicon) -> bool {
        let named = |name: &str| {
            lex.is_quantity_noun(name)
                || self.names(image, name)
                || self.facts.contains(&fact(image, &["head", name]))
        };
        let contradicted = |[s, p, o]: &[String; 3]| {
            !self.states(image, [s, p, o])
                && contrastive_kind(lex, o).is_some_and(|kind| {
                    self.facts.contains(&fact(image, &["kind", s, kind.name()]))
                })
        };
        !graph.objects.is_empty()
            && graph.objects.iter().all(|o| named(&o.name))
            && !graph
                .triples()
                .iter()
                .filter(|t| t[1] == "is" && !is_count(t))
                .any(contradicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What one image's captions entail, on COCO-style captions.
    #[test]
    fn a_neighbour_is_entailed_unless_it_names_or_contradicts_something_new() {
        let parser = crate::text::parse::tests::parser();
        let corpus = crate::core::record::test_corpus([
            "A passenger train passing a station.",
            "A red bus parked at the curb.",
        ]);
        let graphs: Vec<SceneGraph> = corpus
            .pairs
            .iter()
            .map(|p| parser.parse(&p.caption))
            .collect();
        let facts = ImageFacts::build(parser, &corpus, &[0, 1], &graphs);
        let lex = parser.lexicon();
        let entailed =
            |row: usize, text: &str| facts.entails(facts.image_of(row), &parser.parse(text), lex);
        // The head of a named compound, an unsaid size, a quantity word: possibly true.
        assert!(entailed(0, "A train at a station."));
        assert!(entailed(1, "A very big bus parked at the curb."));
        assert!(entailed(1, "A group of buses at the curb."));
        // Another object, a contradicting colour: false of the image.
        assert!(!entailed(0, "A train next to a bus."));
        assert!(!entailed(1, "A white bus parked at the curb."));
    }
}
