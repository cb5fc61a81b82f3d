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

use super::category::{category_of, opposite_sex, Categories, SCENE_POSITIONS, VAGUE_CATEGORIES};
use super::lexicon::{AttributeKind, Lexicon};
use super::{Parser, SceneGraph};
use crate::core::record::Corpus;
use crate::text::wordnet::Pos;
use crate::text::words::head_word;

pub struct ImageFacts {
    /// Per pair, in corpus order, its image's index.
    image_of_pair: Vec<u32>,
    facts: HashSet<u64>,
    /// Per image, the objects its captions name and its labels, as indexes into `names`,
    /// for the WordNet questions a hash cannot answer ("is a dog a kind of what it names").
    named: Vec<Vec<u32>>,
    names: Vec<String>,
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
        let mut name_ids: HashMap<String, u32> = HashMap::new();
        let mut named: Vec<Vec<u32>> = Vec::new();
        let mut name = |image: u32, object: &str, named: &mut Vec<Vec<u32>>| {
            let next = name_ids.len() as u32;
            let id = *name_ids.entry(object.to_string()).or_insert(next);
            let list = &mut named[image as usize];
            if !list.contains(&id) {
                list.push(id);
            }
        };
        for (pair, &g) in corpus.pairs.iter().zip(graph_of_pair) {
            let next = image_ids.len() as u32;
            let image = *image_ids.entry(pair.image_id.as_str()).or_insert(next);
            image_of_pair.push(image);
            if named.len() <= image as usize {
                named.push(Vec::new());
            }
            let graph = &graphs[g as usize];
            for [s, p, o] in graph.triples() {
                facts.insert(fact(image, &[&s, &p, &o]));
            }
            for object in &graph.objects {
                name(image, &object.name, &mut named);
                facts.insert(fact(image, &["object", &object.name]));
            }
            // Every caption of an image carries the same labels: count them once.
            if pair.objects.is_none() || !labelled.insert(image) {
                continue;
            }
            facts.insert(fact(image, &["labelled"]));
            let mut labels: BTreeMap<String, usize> = BTreeMap::new();
            for label in pair.objects.iter().flatten() {
                let label = label.to_lowercase();
                let last = head_word(&label);
                *labels.entry(lex.noun_lemma(last)).or_default() += 1;
                facts.insert(fact(image, &["object", &label]));
            }
            for (label, n) in labels {
                name(image, &label, &mut named);
                facts.insert(fact(image, &["object", &label]));
                if n > 1 {
                    facts.insert(fact(image, &["several", &label]));
                }
            }
        }
        let mut names = vec![String::new(); name_ids.len()];
        for (object, id) in name_ids {
            names[id as usize] = object;
        }
        ImageFacts {
            image_of_pair,
            facts,
            named,
            names,
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

    /// Whether a retrieved caption, `neighbour`, is false of `image`, whose caption
    /// `anchor` it was retrieved for. A caption that merely adds what the image's captions
    /// leave unsaid ("in the rain", "a computer on the table") may well be true, and
    /// captions of one image disagree on sizes and shades, so one of three conflicts that
    /// a reader of the anchor can see is asked for:
    /// - a colour against the one the anchor states of the same object ("a green bus" for
    ///   "a red bus"), which no caption of the image states;
    /// - another main subject: the neighbour's first thing is one the image's captions
    ///   never name, nor any kind, instance or word of what they name, the anchor's first
    ///   thing is absent from the neighbour, and the two are of one category ("a cow" for
    ///   elephants, "a bathroom" for a kitchen) or the new one is of a kind captions do
    ///   not leave out (a person, an animal, a vehicle). People differ only by sex ("a
    ///   woman" for "a man"; "a guy" may be the kid);
    /// - where the image has object labels, a visual thing among none of them and named
    ///   by no caption.
    pub fn contradicts(
        &self,
        image: u32,
        anchor: &SceneGraph,
        neighbour: &SceneGraph,
        lex: &Lexicon,
        categories: &Categories,
    ) -> bool {
        let colours = |graph: &'_ SceneGraph, object: &str| -> Vec<String> {
            graph
                .attributes
                .iter()
                .filter(|a| {
                    a.kind == AttributeKind::Colour && graph.objects[a.object].name == object
                })
                .map(|a| a.value.clone())
                .collect()
        };
        // The anchor colours an object the neighbour colours otherwise, none of its own
        // colours kept, and no caption of the image says the new one.
        let colour_conflict = neighbour.objects.iter().any(|o| {
            let (said, new) = (colours(anchor, &o.name), colours(neighbour, &o.name));
            !said.is_empty()
                && !said.iter().any(|c| new.contains(c))
                && new.iter().any(|c| !self.states(image, [&o.name, "is", c]))
        });
        if colour_conflict {
            return true;
        }
        // "person" and "people" are WordNet's top nodes (noun.Tops, noun.group), outside
        // every category, yet plainly people.
        let category = |name: &str| match name {
            "person" | "people" => Some("person"),
            _ => category_of(categories, lex, name)
                .or_else(|| category_of(categories, lex, head_word(name))),
        };
        let unknown_to_image = |name: &str| {
            !lex.is_quantity_noun(name)
                && !self.names(image, name)
                && !self.named[image as usize]
                    .iter()
                    .any(|&id| same_thing(lex, &self.names[id as usize], name))
        };
        if self.facts.contains(&fact(image, &["labelled"]))
            && neighbour
                .objects
                .iter()
                .any(|o| category(&o.name).is_some() && unknown_to_image(&o.name))
        {
            return true;
        }
        let main = |graph| main_object(graph, lex, &category);
        let (Some((new, new_kind)), Some((old, old_kind))) = (main(neighbour), main(anchor)) else {
            return false;
        };
        let differ = match (new_kind, old_kind) {
            ("person", "person") => opposite_sex(new, old),
            _ => new_kind == old_kind || SALIENT_CATEGORIES.contains(&new_kind),
        };
        // Cheapest first: the WordNet walks over the image's names come last.
        differ
            && !neighbour
                .objects
                .iter()
                .any(|o| same_thing(lex, &o.name, old))
            && unknown_to_image(new)
    }
}

/// Categories of things no caption of an image would leave out if they were in it.
const SALIENT_CATEGORIES: &[&str] = &["person", "animal", "vehicle"];

/// The first thing a caption names ("a close up of", "a group of" and other positions
/// and quantities aside), with its category; none when it is of no category, a scene ("a
/// field with") or a part ("a hand holding"), as another caption's first thing may then
/// be in the picture too.
fn main_object<'g>(
    graph: &'g SceneGraph,
    lex: &Lexicon,
    category: &impl Fn(&str) -> Option<&'static str>,
) -> Option<(&'g str, &'static str)> {
    let first = graph
        .objects
        .iter()
        .filter(|o| !lex.is_quantity_noun(&o.name) && !SCENE_POSITIONS.contains(&o.name.as_str()))
        .min_by_key(|o| o.head.start)?;
    let kind = category(&first.name)?;
    (kind != "body part" && !VAGUE_CATEGORIES.contains(&kind))
        .then_some((first.name.as_str(), kind))
}

/// Whether two object names may name one thing: equal, of one head ("passenger train"
/// and "train"), one a word of the other's compound ("clock" in "clock tower"), or, by
/// their most frequent senses, one a synonym, kind or instance of the other within a few
/// WordNet steps.
fn same_thing(lex: &Lexicon, a: &str, b: &str) -> bool {
    a == b
        || head_word(a) == head_word(b)
        || a.split(' ').any(|w| w == b)
        || b.split(' ').any(|w| w == a)
        || lex
            .wordnet()
            .first_senses_related(a, b, Pos::Noun, RELATED_STEPS)
}

/// Hypernym steps within which two nouns count as one thing ("puppy" and "dog", "room"
/// and "kitchen"); siblings ("man" and "woman") never do.
const RELATED_STEPS: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    /// Which retrieved captions contradict an image, on COCO-style captions.
    #[test]
    fn a_neighbour_counts_only_when_it_contradicts_the_image() {
        let parser = crate::text::parse::tests::parser();
        let mut corpus = crate::core::record::test_corpus([
            "A man riding a horse on a beach.",
            "A person on a horse by the ocean.",
            "A red bus parked at the curb.",
        ]);
        // The first two captions describe one image.
        corpus.pairs[1].image_id = corpus.pairs[0].image_id.clone();
        let graphs: Vec<SceneGraph> = corpus
            .pairs
            .iter()
            .map(|p| parser.parse(&p.caption))
            .collect();
        let facts = ImageFacts::build(parser, &corpus, &[0, 1, 2], &graphs);
        let lex = parser.lexicon();
        let known = Categories::new();
        let contradicts = |row: usize, text: &str| {
            facts.contradicts(
                facts.image_of(row),
                &graphs[row],
                &parser.parse(text),
                lex,
                &known,
            )
        };
        // Same subject; a subject another caption names ("person"); unsaid things.
        assert!(!contradicts(0, "A man on a horse at the beach."));
        assert!(!contradicts(0, "A woman riding a horse."));
        assert!(!contradicts(0, "A horse walking on the sand."));
        assert!(!contradicts(2, "A very big bus parked at the curb."));
        assert!(!contradicts(2, "A fire hydrant at the curb."));
        // A part has no sex or kind to differ by.
        assert!(!contradicts(0, "A hand holding a cell phone."));
        // Another main subject, of a kind no caption leaves out; another colour.
        assert!(contradicts(0, "A dog running on a beach."));
        assert!(contradicts(2, "A car parked at the curb."));
        assert!(contradicts(2, "A green bus parked at the curb."));
        // A colour the anchor leaves unsaid contradicts nothing.
        assert!(!contradicts(0, "A brown horse on a beach."));
    }

    /// Where labels list what an image shows, anything else is absent.
    #[test]
    fn an_object_missing_from_the_labels_is_a_contradiction() {
        let parser = crate::text::parse::tests::parser();
        let mut corpus = crate::core::record::test_corpus(["a little circle and two tiny stars"]);
        corpus.pairs[0].objects = Some(vec!["circle".into(), "star".into(), "star".into()]);
        let graphs = vec![parser.parse(&corpus.pairs[0].caption)];
        let facts = ImageFacts::build(parser, &corpus, &[0], &graphs);
        let lex = parser.lexicon();
        let known = Categories::new();
        let contradicts =
            |text: &str| facts.contradicts(0, &graphs[0], &parser.parse(text), lex, &known);
        assert!(!contradicts("two stars and a circle"));
        assert!(contradicts("two stars and a square"));
    }
}
