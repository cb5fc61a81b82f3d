//! Phrase- and word-level hard negatives: edit one node of a caption's scene graph (or
//! swap one pair) so the caption turns false for its image yet stays fluent.
//!
//! Every candidate word comes from the caption corpus itself, in the surface form the
//! corpus used it ("riding", "dogs"), so no inflection rules can produce a non-word. A
//! replacement must share the original's category (animal for animal, colour for colour,
//! spatial preposition for spatial preposition), must not be a WordNet synonym, hypernym
//! or hyponym of it, and among those the language model picks the ones that fit the
//! context. Each negative then passes the validity checks in [`NegativeChecker`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::error::{Error, Result};
use crate::core::record::Corpus;
use crate::core::sample::Item;
use crate::embed::text::TextEncoder;
use crate::stages::{boxed, Batch, BuildContext, IndexRun, Stage, StageSpec};
use crate::store::artifact::{inputs_sha256, Artifact, Built, Details, IndexPolicy};
use crate::store::layout::index_dir;
use crate::text::ngram::{NgramConfig, NgramModel};
use crate::text::parse::lexicon::{canonical_spatial, AttributeKind, Lexicon, DEFAULT_WORDNET_DIR};
use crate::text::parse::{tagger, Object, Parser, RelationKind, SceneGraph};
use crate::text::wordnet::Pos;

/// SugarCrepe's edit kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditKind {
    ReplaceObject,
    ReplaceAttribute,
    ReplaceRelation,
    SwapObjects,
    SwapAttributes,
}

impl EditKind {
    pub const ALL: [EditKind; 5] = [
        EditKind::ReplaceObject,
        EditKind::ReplaceAttribute,
        EditKind::ReplaceRelation,
        EditKind::SwapObjects,
        EditKind::SwapAttributes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EditKind::ReplaceObject => "replace_object",
            EditKind::ReplaceAttribute => "replace_attribute",
            EditKind::ReplaceRelation => "replace_relation",
            EditKind::SwapObjects => "swap_objects",
            EditKind::SwapAttributes => "swap_attributes",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneGraphConfig {
    /// WordNet 3.0 database folder (Debian: wordnet-base).
    #[serde(default = "default_wordnet_dir")]
    pub wordnet_dir: PathBuf,
    /// Edit kinds to make, each at most `per_kind` times per caption.
    #[serde(default = "all_kinds")]
    pub kinds: Vec<EditKind>,
    #[serde(default = "one")]
    pub per_kind: usize,
    /// Replacements tried per slot: the language model's best this many.
    #[serde(default = "default_candidates")]
    pub candidates: usize,
    /// Same-category words the language model ranks per slot, drawn by seed: scoring every
    /// noun of a large corpus for every caption would dominate the run.
    #[serde(default = "default_pool")]
    pub pool: usize,
    /// A negative may score at most this much below its original, in mean log-probability
    /// per token under the caption language model (natural log).
    #[serde(default = "default_fluency_margin")]
    pub fluency_margin: f64,
    #[serde(default)]
    pub language_model: LanguageModelConfig,
    /// Sentence encoder folder (all-MiniLM-L6-v2 layout): replacements more similar than
    /// `max_similarity` to their original are paraphrases and rejected. Swaps and
    /// relation edits are not checked: MiniLM scores "a dog left of a cat" and "a cat left
    /// of a dog" as near-identical, which is the very confusion these negatives target;
    /// the unchanged-graph check guards swaps instead. Without an encoder, the WordNet
    /// check (no synonym, hypernym, hyponym or similar adjective) is the guard.
    #[serde(default)]
    pub encoder: Option<PathBuf>,
    #[serde(default = "default_max_similarity")]
    pub max_similarity: f32,
    /// Words used in fewer distinct texts than this are not offered as replacements.
    #[serde(default = "default_min_candidate_count")]
    pub min_candidate_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageModelConfig {
    #[serde(default = "default_order")]
    pub order: usize,
    #[serde(default = "default_min_count")]
    pub min_count: u32,
}

impl Default for LanguageModelConfig {
    fn default() -> Self {
        LanguageModelConfig {
            order: default_order(),
            min_count: default_min_count(),
        }
    }
}

fn default_wordnet_dir() -> PathBuf {
    PathBuf::from(DEFAULT_WORDNET_DIR)
}
fn all_kinds() -> Vec<EditKind> {
    EditKind::ALL.to_vec()
}
fn one() -> usize {
    1
}
fn default_candidates() -> usize {
    5
}
fn default_pool() -> usize {
    40
}
fn default_fluency_margin() -> f64 {
    0.6
}
fn default_max_similarity() -> f32 {
    // MiniLM puts "a small red circle" and "a small blue circle" above 0.95.
    0.98
}
fn default_min_candidate_count() -> u32 {
    3
}
fn default_order() -> usize {
    3
}
fn default_min_count() -> u32 {
    2
}

impl Default for SceneGraphConfig {
    fn default() -> Self {
        SceneGraphConfig {
            wordnet_dir: default_wordnet_dir(),
            kinds: all_kinds(),
            per_kind: 1,
            candidates: default_candidates(),
            pool: default_pool(),
            fluency_margin: default_fluency_margin(),
            language_model: LanguageModelConfig::default(),
            encoder: None,
            max_similarity: default_max_similarity(),
            min_candidate_count: default_min_candidate_count(),
        }
    }
}

impl StageSpec for SceneGraphConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.kinds.is_empty() {
            return Err("kinds needs at least one edit kind".into());
        }
        if self.per_kind == 0 || self.candidates == 0 || self.pool == 0 {
            return Err("per_kind, candidates and pool must be at least 1".into());
        }
        if !(1..=crate::text::ngram::MAX_ORDER).contains(&self.language_model.order) {
            return Err(format!(
                "language_model.order must be 1..={}",
                crate::text::ngram::MAX_ORDER
            ));
        }
        if self.fluency_margin < 0.0 || !self.fluency_margin.is_finite() {
            return Err("fluency_margin must be a non-negative number".into());
        }
        Ok(())
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![&mut self.wordnet_dir];
        if let Some(encoder) = &mut self.encoder {
            paths.push(encoder);
        }
        paths
    }

    fn build(&self, corpus: &Corpus, context: &BuildContext) -> Result<Box<dyn Stage>> {
        SceneGraphStage::build(self.clone(), corpus, context).map(boxed)
    }

    fn build_indexes(&self, corpus: &Corpus, run: &IndexRun) -> Result<Vec<String>> {
        language_model(&self.language_model, corpus, run.dir, IndexPolicy::Build)?;
        Ok(vec![format!(
            "caption language model: {} texts",
            corpus.pairs.len() + corpus.texts.len()
        )])
    }
}

/// One text replacement; a negative is its original with these applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replacement {
    pub start: usize,
    pub end: usize,
    pub from: String,
    pub to: String,
    /// False for agreement fixes ("a" -> "an"), true for the node edit itself.
    pub node: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    pub kind: EditKind,
    /// Sorted by position, never overlapping.
    pub replacements: Vec<Replacement>,
}

impl Edit {
    /// The original with every replacement applied.
    pub fn apply(&self, original: &str) -> Option<String> {
        let mut out = String::with_capacity(original.len() + 16);
        let mut at = 0;
        for r in &self.replacements {
            if r.start < at || r.end > original.len() || original.get(r.start..r.end)? != r.from {
                return None;
            }
            out.push_str(original.get(at..r.start)?);
            out.push_str(&r.to);
            at = r.end;
        }
        out.push_str(original.get(at..)?);
        Some(out)
    }

    /// Node edits: one for a replacement, two for a swap.
    pub fn node_changes(&self) -> usize {
        self.replacements.iter().filter(|r| r.node).count()
    }
}

/// What the corpus says about the words a replacement may use.
#[derive(Default)]
struct Vocabulary {
    /// Object lemma -> category, singular surface, plural surface, count.
    objects: BTreeMap<String, ObjectWord>,
    /// (attribute kind) -> value -> count.
    attributes: BTreeMap<AttributeKind, BTreeMap<String, u32>>,
    /// Spatial prepositions as written -> count.
    spatial: BTreeMap<String, u32>,
    /// Verb predicates as written ("riding", "sitting on") -> lemma and count.
    verbs: BTreeMap<String, (String, u32)>,
}

/// The words a slot may draw from, filtered once at build time by everything that does
/// not depend on the caption (count, surface form, particle), in vocabulary order. A
/// slot then only leaves out its own caption's few words: the per-caption filter used
/// to look every word of a category up again, a cost that grew with the vocabulary
/// (that is, with the corpus).
#[derive(Default)]
struct Candidates {
    /// Every object lemma of the vocabulary, in its (sorted) order; lists below hold
    /// indices into it, so filtering a category compares numbers, not strings scattered
    /// in the heap.
    object_names: Vec<String>,
    /// Category -> object lemmas that have a singular (resp. plural) surface form.
    singular_objects: BTreeMap<String, Vec<u32>>,
    plural_objects: BTreeMap<String, Vec<u32>>,
    /// Attribute kind -> one-word values.
    attributes: BTreeMap<AttributeKind, Vec<String>>,
    /// Spatial prepositions that may replace one ("of", "with", ... never do).
    spatial: Vec<String>,
    /// Verb predicates as written, with the first word of their lemma: without a
    /// particle (`[0]`) and with one (`[1]`).
    verbs: [Vec<(String, String)>; 2],
}

impl Candidates {
    fn of(vocabulary: &Vocabulary, min_count: u32) -> Candidates {
        let mut c = Candidates::default();
        for (name, w) in vocabulary
            .objects
            .iter()
            .filter(|(_, w)| w.count >= min_count)
        {
            let id = c.object_names.len() as u32;
            c.object_names.push(name.clone());
            for (form, lists) in [
                (&w.singular, &mut c.singular_objects),
                (&w.plural, &mut c.plural_objects),
            ] {
                if form.is_some() {
                    lists.entry(w.category.clone()).or_default().push(id);
                }
            }
        }
        for (kind, values) in &vocabulary.attributes {
            c.attributes.insert(
                *kind,
                values
                    .iter()
                    .filter(|(v, n)| **n >= min_count && !v.contains(' '))
                    .map(|(v, _)| v.clone())
                    .collect(),
            );
        }
        c.spatial = vocabulary
            .spatial
            .iter()
            .filter(|(p, n)| {
                **n >= min_count && !matches!(p.as_str(), "of" | "with" | "for" | "like")
            })
            .map(|(p, _)| p.clone())
            .collect();
        for (written, (lemma, n)) in &vocabulary.verbs {
            if *n >= min_count {
                let head = lemma.split(' ').next().unwrap_or("").to_string();
                c.verbs[usize::from(written.contains(' '))].push((written.clone(), head));
            }
        }
        c
    }
}

#[derive(Default, Clone)]
struct ObjectWord {
    category: String,
    singular: Option<String>,
    plural: Option<String>,
    count: u32,
}

/// Nouns that name a part of the picture, not a thing in it: replacing "background" with
/// "distance" changes no fact.
const SCENE_POSITIONS: &[&str] = &[
    "background",
    "foreground",
    "distance",
    "middle",
    "side",
    "top",
    "front",
    "back",
    "bottom",
    "view",
    "picture",
    "image",
    "photo",
    "photograph",
    "shot",
    "close",
    "closeup",
    "center",
    "centre",
    "corner",
    "edge",
    "left",
    "right",
    "area",
    "scene",
    "way",
];

/// Coarse object categories, most specific first, each with the lexicographer file its
/// members' first sense must be in: a replacement stays in the same category.
const OBJECT_CATEGORIES: &[(&str, &str)] = &[
    ("person", "noun.person"),
    ("animal", "noun.animal"),
    ("plant", "noun.plant"),
    ("food", "noun.food"),
    ("vehicle", "noun.artifact"),
    ("furniture", "noun.artifact"),
    ("clothing", "noun.artifact"),
    ("container", "noun.artifact"),
    ("electronic equipment", "noun.artifact"),
    ("device", "noun.artifact"),
    ("structure", "noun.artifact"),
    ("sports equipment", "noun.artifact"),
    ("tableware", "noun.artifact"),
    ("utensil", "noun.artifact"),
    ("instrument", "noun.artifact"),
    ("body part", "noun.body"),
    ("geological formation", "noun.object"),
    ("body of water", "noun.object"),
];

fn object_category(lex: &Lexicon, lemma: &str) -> Option<String> {
    let wn = lex.wordnet();
    // Only the most frequent sense counts: "shower" the fixture, not one who shows.
    let first = *wn.lexnames(lemma, Pos::Noun).first()?;
    for (anchor, lexname) in OBJECT_CATEGORIES {
        if first == *lexname && wn.is_a(lemma, anchor) {
            return Some((*anchor).to_string());
        }
    }
    Some(first.to_string())
}

/// `word` with the capitalisation of the text it replaces ("Small" -> "Compact").
fn match_case(replaced: &str, word: &str) -> String {
    let mut chars = word.chars();
    match (replaced.chars().next(), chars.next()) {
        (Some(r), Some(first)) if r.is_uppercase() => first.to_uppercase().chain(chars).collect(),
        _ => word.to_string(),
    }
}

/// The stage: parses every caption, learns the vocabulary and the language model from the
/// corpus, then edits each caption's graph.
pub struct SceneGraphStage {
    config: SceneGraphConfig,
    seed: u64,
    parser: Parser,
    vocabulary: Vocabulary,
    candidates: Candidates,
    model: NgramModel,
    encoder: Option<TextEncoder>,
    /// Parsed graph of every distinct text.
    graphs: Vec<SceneGraph>,
    /// Per pair, in corpus order, the index of its caption's graph.
    graph_of_pair: Vec<u32>,
}

impl SceneGraphStage {
    pub fn build(
        config: SceneGraphConfig,
        corpus: &Corpus,
        context: &BuildContext,
    ) -> Result<SceneGraphStage> {
        let parser = Parser::load(&config.wordnet_dir)?;
        // Pair captions and text-corpus texts, in that order, each distinct text parsed
        // once: a repeated caption shares its graph, and counts once in the vocabulary,
        // as in the language model.
        let (distinct, text_ids) = corpus.distinct_texts();
        let graphs: Vec<SceneGraph> = distinct.par_iter().map(|t| parser.parse(t)).collect();
        let mut vocabulary = Vocabulary::default();
        for (text, graph) in distinct.iter().zip(&graphs) {
            learn(&parser, &mut vocabulary, text, graph);
        }
        let candidates = Candidates::of(&vocabulary, config.min_candidate_count);
        let model = language_model(
            &config.language_model,
            corpus,
            &index_dir(context.out_dir),
            context.indexes,
        )?;
        let encoder = config
            .encoder
            .as_deref()
            .map(TextEncoder::load)
            .transpose()?;
        Ok(SceneGraphStage {
            config,
            seed: context.seed,
            parser,
            vocabulary,
            candidates,
            model,
            encoder,
            graphs,
            graph_of_pair: text_ids[..corpus.pairs.len()].to_vec(),
        })
    }

    /// Candidate negatives for one caption, before the fluency and paraphrase checks.
    fn candidates(&self, uid: &[u8; 16], caption: &str, graph: &SceneGraph) -> Vec<Edit> {
        let mut out = Vec::new();
        for &kind in &self.config.kinds {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, uid, kind));
            let edits = match kind {
                EditKind::ReplaceObject => self.replace_objects(caption, graph, &mut rng),
                EditKind::ReplaceAttribute => self.replace_attributes(caption, graph, &mut rng),
                EditKind::ReplaceRelation => self.replace_relations(caption, graph, &mut rng),
                EditKind::SwapObjects => swap_objects(&self.parser, caption, graph, &mut rng),
                EditKind::SwapAttributes => {
                    swap_attributes(self.parser.lexicon().wordnet(), caption, graph, &mut rng)
                }
            };
            out.extend(edits);
        }
        out
    }

    /// Draws up to `pool` of `words` in seeded order, keeping only those `allowed` says
    /// are fine; the check runs on drawn words only, as it is the costly part.
    fn draw(
        &self,
        mut words: Vec<&String>,
        rng: &mut ChaCha8Rng,
        allowed: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        words.shuffle(rng);
        words
            .into_iter()
            .filter(|w| allowed(w))
            .take(self.config.pool)
            .cloned()
            .collect()
    }

    /// Ranks `words` by how well they read in place of `span`, best first, keeping the
    /// `candidates` best.
    fn rank(&self, caption: &str, span: &Range<usize>, words: Vec<String>) -> Vec<String> {
        let mut scored: Vec<(f64, String)> = words
            .into_iter()
            .map(|w| {
                let text = format!("{}{}{}", &caption[..span.start], w, &caption[span.end..]);
                (self.model.mean_log_prob(&text), w)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        scored.truncate(self.config.candidates);
        scored.into_iter().map(|(_, w)| w).collect()
    }

    fn replace_objects(
        &self,
        caption: &str,
        graph: &SceneGraph,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Edit> {
        let lex = self.parser.lexicon();
        let present: Vec<u32> = graph
            .objects
            .iter()
            .filter_map(|o| self.candidates.object_names.binary_search(&o.name).ok())
            .map(|id| id as u32)
            .collect();
        let mut order: Vec<usize> = (0..graph.objects.len()).collect();
        order.shuffle(rng);
        let mut out = Vec::new();
        for o in order {
            let object = &graph.objects[o];
            let Some(entry) = self.vocabulary.objects.get(&object.name) else {
                continue;
            };
            let by_category = match object.plural {
                true => &self.candidates.plural_objects,
                false => &self.candidates.singular_objects,
            };
            let names: Vec<&String> = by_category
                .get(&entry.category)
                .into_iter()
                .flatten()
                .filter(|id| !present.contains(id))
                .map(|&id| &self.candidates.object_names[id as usize])
                .collect();
            let words: Vec<String> = self
                .draw(names, rng, |name| {
                    !lex.wordnet().related(name, &object.name, Pos::Noun, 6)
                })
                .iter()
                .filter_map(|name| {
                    let w = &self.vocabulary.objects[name];
                    if object.plural {
                        w.plural.clone()
                    } else {
                        w.singular.clone()
                    }
                })
                .collect();
            for word in self.rank(caption, &object.head, words) {
                let mut replacements = vec![Replacement {
                    start: object.head.start,
                    end: object.head.end,
                    from: caption[object.head.clone()].to_string(),
                    to: match_case(&caption[object.head.clone()], &word),
                    node: true,
                }];
                fix_article(caption, object, object.head.start, &word, &mut replacements);
                out.push(Edit {
                    kind: EditKind::ReplaceObject,
                    replacements,
                });
            }
            if !out.is_empty() {
                break;
            }
        }
        out
    }

    fn replace_attributes(
        &self,
        caption: &str,
        graph: &SceneGraph,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Edit> {
        let wn = self.parser.lexicon().wordnet();
        let mut order: Vec<usize> = (0..graph.attributes.len()).collect();
        order.shuffle(rng);
        let mut out = Vec::new();
        for a in order {
            let attribute = &graph.attributes[a];
            // Counts change the number of the noun too, and states ("hanging", "dressed")
            // are too often verbs in disguise: only closed, visual kinds are replaced.
            if !matches!(
                attribute.kind,
                AttributeKind::Colour
                    | AttributeKind::Size
                    | AttributeKind::Material
                    | AttributeKind::Age
                    | AttributeKind::Shape
            ) {
                continue;
            }
            let same_object: BTreeSet<&str> = graph
                .attributes
                .iter()
                .filter(|b| b.object == attribute.object)
                .map(|b| b.value.as_str())
                .collect();
            let Some(values) = self.candidates.attributes.get(&attribute.kind) else {
                continue;
            };
            let values: Vec<&String> = values
                .iter()
                .filter(|v| !same_object.contains(v.as_str()))
                .collect();
            let words = self.draw(values, rng, |v| {
                !wn.similar_adjectives(v, &attribute.value)
                    && !wn.related(v, &attribute.value, Pos::Noun, 4)
            });
            let object = &graph.objects[attribute.object];
            for word in self.rank(caption, &attribute.span, words) {
                let mut replacements = vec![Replacement {
                    start: attribute.span.start,
                    end: attribute.span.end,
                    from: caption[attribute.span.clone()].to_string(),
                    to: match_case(&caption[attribute.span.clone()], &word),
                    node: true,
                }];
                fix_article(
                    caption,
                    object,
                    attribute.span.start,
                    &word,
                    &mut replacements,
                );
                out.push(Edit {
                    kind: EditKind::ReplaceAttribute,
                    replacements,
                });
            }
            if !out.is_empty() {
                break;
            }
        }
        out
    }

    fn replace_relations(
        &self,
        caption: &str,
        graph: &SceneGraph,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Edit> {
        let lex = self.parser.lexicon();
        let mut order: Vec<usize> = (0..graph.relations.len()).collect();
        order.shuffle(rng);
        let mut out = Vec::new();
        for r in order {
            let relation = &graph.relations[r];
            // "with" and "of" carry possession or company rather than a scene relation.
            if relation.span.is_empty() || matches!(relation.predicate.as_str(), "with" | "of") {
                continue;
            }
            let written = caption[relation.span.clone()].to_lowercase();
            let words: Vec<String> = match relation.kind {
                RelationKind::Spatial => {
                    let canonical = canonical_spatial(&written);
                    let prepositions = self.candidates.spatial.iter().collect();
                    self.draw(prepositions, rng, |p| canonical_spatial(p) != canonical)
                }
                RelationKind::Verb => {
                    let form_of =
                        |w: &str| tagger::verb_form(lex, w.split(' ').next().unwrap_or(w));
                    let form = form_of(&written);
                    let has_particle = written.contains(' ');
                    let verb = relation.predicate.split(' ').next().unwrap_or("");
                    let verbs = self.candidates.verbs[usize::from(has_particle)]
                        .iter()
                        .filter(|(_, head)| head != verb)
                        .map(|(w, _)| w)
                        .collect();
                    self.draw(verbs, rng, |w| {
                        let lemma = &self.vocabulary.verbs[w].0;
                        form_of(w) == form
                            && !lex.wordnet().related(
                                lemma.split(' ').next().unwrap_or(lemma),
                                verb,
                                Pos::Verb,
                                3,
                            )
                    })
                }
                RelationKind::Have => continue,
            };
            for word in self.rank(caption, &relation.span, words) {
                out.push(Edit {
                    kind: EditKind::ReplaceRelation,
                    replacements: vec![Replacement {
                        start: relation.span.start,
                        end: relation.span.end,
                        from: caption[relation.span.clone()].to_string(),
                        to: match_case(&caption[relation.span.clone()], &word),
                        node: true,
                    }],
                });
            }
            if !out.is_empty() {
                break;
            }
        }
        out
    }
}

/// Fills the vocabulary from one parsed caption.
fn learn(parser: &Parser, vocabulary: &mut Vocabulary, caption: &str, graph: &SceneGraph) {
    let lex = parser.lexicon();
    for object in &graph.objects {
        // Single-word heads only: a replacement is one word for one word.
        if object.name.contains(' ') || SCENE_POSITIONS.contains(&object.name.as_str()) {
            continue;
        }
        let written = caption[object.head.clone()].to_lowercase();
        if !written.chars().all(|c| c.is_alphabetic()) {
            continue;
        }
        let entry = vocabulary.objects.entry(object.name.clone()).or_default();
        if entry.count == 0 {
            match object_category(lex, &object.name) {
                Some(category) => entry.category = category,
                None => {
                    vocabulary.objects.remove(&object.name);
                    continue;
                }
            }
        }
        entry.count += 1;
        let slot = if object.plural {
            &mut entry.plural
        } else {
            &mut entry.singular
        };
        slot.get_or_insert(written);
    }
    for attribute in &graph.attributes {
        if attribute.value.chars().all(|c| c.is_alphabetic()) {
            *vocabulary
                .attributes
                .entry(attribute.kind)
                .or_default()
                .entry(attribute.value.clone())
                .or_insert(0) += 1;
        }
    }
    for relation in &graph.relations {
        if relation.span.is_empty() {
            continue;
        }
        let written = caption[relation.span.clone()].to_lowercase();
        match relation.kind {
            RelationKind::Spatial => *vocabulary.spatial.entry(written).or_insert(0) += 1,
            RelationKind::Verb => {
                vocabulary
                    .verbs
                    .entry(written)
                    .or_insert_with(|| (relation.predicate.clone(), 0))
                    .1 += 1
            }
            RelationKind::Have => {}
        }
    }
}

/// The caption language model of the corpus (pair captions, then text-corpus texts):
/// `OUT/index/ngram.bin`, trained when missing or made from other texts or settings
/// (unless `policy` forbids).
pub fn language_model(
    config: &LanguageModelConfig,
    corpus: &Corpus,
    index_dir: &Path,
    policy: IndexPolicy,
) -> Result<NgramModel> {
    let (texts, _) = corpus.distinct_texts();
    let settings = format!("order={} min_count={}", config.order, config.min_count);
    let inputs = inputs_sha256(&settings, texts.iter().copied());
    let opened = Artifact {
        name: "ngram",
        file: "ngram.bin",
        format_version: crate::text::ngram::VERSION,
        build: &|path| {
            let model = NgramModel::train(
                texts.iter().copied(),
                &NgramConfig {
                    order: config.order,
                    min_count: config.min_count,
                },
            );
            model.save(path).map_err(|e| Error::model(path, e))?;
            let details = Details::from([("texts".to_string(), texts.len().into())]);
            Ok(Built {
                value: model,
                details,
            })
        },
        load: &|path| NgramModel::load(path).map_err(|e| Error::model(path, e)),
    }
    .build_or_open(index_dir, &inputs, policy)?;
    Ok(opened.value)
}

fn mix(seed: u64, uid: &[u8; 16], kind: EditKind) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(uid);
    hasher.update(kind.name().as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(bytes)
}

/// Byte range of the first word at or after `at`.
fn next_word(text: &str, at: usize) -> Option<Range<usize>> {
    let rest = text.get(at..)?;
    let start = at + rest.len() - rest.trim_start().len();
    let len = text[start..]
        .find(|c: char| !c.is_alphanumeric() && c != '-' && c != '\'')
        .unwrap_or(text.len() - start);
    (len > 0).then_some(start..start + len)
}

/// "a"/"an" as the next word needs it. Spelling rules only: captions rarely start a noun
/// with a silent "h" or a "you" sound, and the fluency check catches the rest.
pub fn article_for(next: &str) -> &'static str {
    let lower = next.to_lowercase();
    let vowel_sound = lower.starts_with(['a', 'e', 'i', 'o'])
        || (lower.starts_with('u') && !lower.starts_with("uni") && !lower.starts_with("use"))
        || lower.starts_with("hour")
        || lower.starts_with("honest");
    let one_like = lower.starts_with("one") || lower.starts_with("eu");
    if vowel_sound && !one_like {
        "an"
    } else {
        "a"
    }
}

/// Re-chooses the object's "a"/"an" when `word` now starts at `changed_at`, the first
/// word after that article.
fn fix_article(
    caption: &str,
    object: &Object,
    changed_at: usize,
    word: &str,
    replacements: &mut Vec<Replacement>,
) {
    let Some(det) = &object.determiner else {
        return;
    };
    if next_word(caption, det.end).map(|w| w.start) != Some(changed_at) {
        return;
    }
    let written = &caption[det.clone()];
    let lower = written.to_lowercase();
    let wanted = article_for(word);
    if (lower == "a" || lower == "an") && lower != wanted {
        replacements.push(Replacement {
            start: det.start,
            end: det.end,
            from: written.to_string(),
            to: match_case(written, wanted),
            node: false,
        });
        replacements.sort_by_key(|r| r.start);
    }
}

/// Exchanges two objects' head nouns, each taking the number of the slot it moves into
/// ("a man riding a horse" -> "a horse riding a man"), as the corpus spells it.
fn swap_objects(
    parser: &Parser,
    caption: &str,
    graph: &SceneGraph,
    rng: &mut ChaCha8Rng,
) -> Vec<Edit> {
    let lex = parser.lexicon();
    let mut pairs = Vec::new();
    for a in 0..graph.objects.len() {
        for b in a + 1..graph.objects.len() {
            let (x, y) = (&graph.objects[a], &graph.objects[b]);
            if x.name != y.name
                && !x.name.contains(' ')
                && !y.name.contains(' ')
                && !SCENE_POSITIONS.contains(&x.name.as_str())
                && !SCENE_POSITIONS.contains(&y.name.as_str())
                // Synonyms only: "man" and "horse" share a chess-piece hypernym, yet
                // swapping them is exactly the edit wanted.
                && !lex.wordnet().related(&x.name, &y.name, Pos::Noun, 0)
            {
                pairs.push((a, b));
            }
        }
    }
    pairs.shuffle(rng);
    let mut out = Vec::new();
    for (a, b) in pairs {
        let (x, y) = (&graph.objects[a], &graph.objects[b]);
        let x_word = &caption[x.head.clone()];
        let y_word = &caption[y.head.clone()];
        // Same number in both slots keeps every verb agreeing; otherwise skip the pair.
        // A swap that leaves the graph as it was ("a dog and a cat") is a paraphrase.
        if x.plural != y.plural || swap_keeps_graph(graph, &x.name, &y.name) {
            continue;
        }
        let mut replacements = vec![
            Replacement {
                start: x.head.start,
                end: x.head.end,
                from: x_word.to_string(),
                to: match_case(x_word, &y_word.to_lowercase()),
                node: true,
            },
            Replacement {
                start: y.head.start,
                end: y.head.end,
                from: y_word.to_string(),
                to: match_case(y_word, &x_word.to_lowercase()),
                node: true,
            },
        ];
        fix_article(caption, x, x.head.start, y_word, &mut replacements);
        fix_article(caption, y, y.head.start, x_word, &mut replacements);
        out.push(Edit {
            kind: EditKind::SwapObjects,
            replacements,
        });
    }
    out
}

/// True when exchanging the names `a` and `b` gives the same set of triples.
fn swap_keeps_graph(graph: &SceneGraph, a: &str, b: &str) -> bool {
    let swap = |name: &String| {
        if name == a {
            b.to_string()
        } else if name == b {
            a.to_string()
        } else {
            name.clone()
        }
    };
    let triples = graph.triples();
    let swapped: BTreeSet<[String; 3]> = triples
        .iter()
        .cloned()
        .map(|[s, p, o]| {
            // Attribute values stay; only object names move.
            let o = if p == "is" { o } else { swap(&o) };
            [swap(&s), p, o]
        })
        .collect();
    swapped == triples.into_iter().collect()
}

/// Exchanges same-kind attributes of two different objects ("a black dog and a white cat"
/// -> "a white dog and a black cat").
fn swap_attributes(
    wordnet: &crate::text::wordnet::WordNet,
    caption: &str,
    graph: &SceneGraph,
    rng: &mut ChaCha8Rng,
) -> Vec<Edit> {
    let mut pairs = Vec::new();
    for (i, a) in graph.attributes.iter().enumerate() {
        for (j, b) in graph.attributes.iter().enumerate().skip(i + 1) {
            if a.object != b.object
                && a.kind == b.kind
                && a.kind != AttributeKind::Count
                && a.value != b.value
                && !wordnet.similar_adjectives(&a.value, &b.value)
                && graph.objects[a.object].name != graph.objects[b.object].name
            {
                pairs.push((i, j));
            }
        }
    }
    pairs.shuffle(rng);
    pairs
        .into_iter()
        .map(|(i, j)| swap_attribute_pair(caption, graph, i, j))
        .collect()
}

fn swap_attribute_pair(caption: &str, graph: &SceneGraph, i: usize, j: usize) -> Edit {
    let (a, b) = (&graph.attributes[i], &graph.attributes[j]);
    let a_text = &caption[a.span.clone()];
    let b_text = &caption[b.span.clone()];
    let mut replacements = vec![
        Replacement {
            start: a.span.start,
            end: a.span.end,
            from: a_text.to_string(),
            to: match_case(a_text, &b_text.to_lowercase()),
            node: true,
        },
        Replacement {
            start: b.span.start,
            end: b.span.end,
            from: b_text.to_string(),
            to: match_case(b_text, &a_text.to_lowercase()),
            node: true,
        },
    ];
    for (attribute, word) in [(a, b_text), (b, a_text)] {
        let object = &graph.objects[attribute.object];
        fix_article(
            caption,
            object,
            attribute.span.start,
            word,
            &mut replacements,
        );
    }
    replacements.sort_by_key(|r| r.start);
    Edit {
        kind: EditKind::SwapAttributes,
        replacements,
    }
}

/// Why a candidate negative was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    EditMismatch,
    Unchanged,
    NotFluent,
    Paraphrase,
}

impl Stage for SceneGraphStage {
    fn name(&self) -> &str {
        "scene_graph"
    }

    fn augment(&self, batch: Batch) -> Result<()> {
        let (corpus, rows, out, stats) = (batch.corpus, batch.rows, batch.out, batch.stats);
        struct Candidate {
            edit: Edit,
            text: String,
            fluency: f64,
            verdict: Verdict,
        }
        let per_pair: Vec<Vec<Candidate>> = rows
            .clone()
            .into_par_iter()
            .map(|row| {
                let pair = &corpus.pairs[row];
                let original = self.model.mean_log_prob(&pair.caption);
                let graph = &self.graphs[self.graph_of_pair[row] as usize];
                self.candidates(&pair.uid, &pair.caption, graph)
                    .into_iter()
                    .map(|edit| {
                        let (text, verdict, fluency) = match edit.apply(&pair.caption) {
                            None => (String::new(), Verdict::EditMismatch, 0.0),
                            Some(text) if text.to_lowercase() == pair.caption.to_lowercase() => {
                                (text, Verdict::Unchanged, 0.0)
                            }
                            Some(text) => {
                                let delta = self.model.mean_log_prob(&text) - original;
                                let verdict = if delta < -self.config.fluency_margin {
                                    Verdict::NotFluent
                                } else {
                                    Verdict::Keep
                                };
                                (text, verdict, delta)
                            }
                        };
                        Candidate {
                            edit,
                            text,
                            fluency,
                            verdict,
                        }
                    })
                    .collect()
            })
            .collect();
        let mut per_pair = per_pair;
        if let Some(encoder) = &self.encoder {
            // One batch per shard, each original once: the encoder is the slow part.
            let mut texts: Vec<&str> = Vec::new();
            let mut owners = Vec::new();
            for (i, candidates) in per_pair.iter().enumerate() {
                let mut original_at = None;
                for (k, c) in candidates.iter().enumerate() {
                    let replacement = matches!(
                        c.edit.kind,
                        EditKind::ReplaceObject | EditKind::ReplaceAttribute
                    );
                    if c.verdict == Verdict::Keep && replacement {
                        let at = *original_at.get_or_insert_with(|| {
                            texts.push(corpus.pairs[rows.start + i].caption.as_str());
                            texts.len() - 1
                        });
                        texts.push(c.text.as_str());
                        owners.push((i, k, at, texts.len() - 1));
                    }
                }
            }
            let vectors = encoder.encode(&texts)?;
            for (i, k, original, negative) in owners {
                let sim: f32 = vectors[original]
                    .iter()
                    .zip(&vectors[negative])
                    .map(|(a, b)| a * b)
                    .sum();
                if sim > self.config.max_similarity {
                    per_pair[i][k].verdict = Verdict::Paraphrase;
                }
            }
        }
        let stats = stats.entry(self.name().to_string()).or_default();
        for (candidates, aug) in per_pair.into_iter().zip(out.iter_mut()) {
            for kind in &self.config.kinds {
                if !candidates.iter().any(|c| c.edit.kind == *kind) {
                    stats.count(&format!("no_candidate.{}", kind.name()), 1);
                }
            }
            let mut kept: HashMap<EditKind, usize> = HashMap::new();
            let mut seen_texts: BTreeSet<String> = BTreeSet::new();
            let mut any = false;
            for c in candidates {
                let kind = c.edit.kind;
                match c.verdict {
                    Verdict::EditMismatch => stats.reject("edit_mismatch", 1),
                    Verdict::Unchanged => stats.reject("unchanged", 1),
                    Verdict::NotFluent => stats.reject(&format!("not_fluent.{}", kind.name()), 1),
                    Verdict::Paraphrase => stats.reject(&format!("paraphrase.{}", kind.name()), 1),
                    Verdict::Keep => {
                        let n = kept.entry(kind).or_insert(0);
                        if *n >= self.config.per_kind || !seen_texts.insert(c.text.clone()) {
                            continue;
                        }
                        *n += 1;
                        any = true;
                        stats.produced += 1;
                        stats.count(&format!("emitted.{}", kind.name()), 1);
                        if matches!(c.edit.node_changes(), 1 | 2) {
                            stats.count("single_node_edits", 1);
                        }
                        aug.negatives.push(Item {
                            text: Some(c.text),
                            ref_id: None,
                            kind: kind.name().to_string(),
                            generator: "scene_graph".into(),
                            params: serde_json::json!({
                                "edit": c.edit.replacements,
                                "fluency_delta": c.fluency,
                            })
                            .to_string(),
                            score: c.fluency as f32,
                        });
                    }
                }
            }
            stats.count("captions", 1);
            if any {
                stats.count("captions_with_negative", 1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::{Augmented, Stats};
    use proptest::prelude::*;

    fn corpus(captions: &[&str]) -> Corpus {
        crate::core::record::test_corpus(captions.iter().copied())
    }

    fn stage(captions: &[&str], kinds: &[EditKind]) -> (SceneGraphStage, Corpus) {
        let corpus = corpus(captions);
        let config = SceneGraphConfig {
            kinds: kinds.to_vec(),
            min_candidate_count: 1,
            // Tiny corpora give a rough model; these tests check the edits themselves.
            fluency_margin: 100.0,
            ..SceneGraphConfig::default()
        };
        (built(config, &corpus), corpus)
    }

    /// The stage on `corpus`, its language model built in a scratch folder.
    fn built(config: SceneGraphConfig, corpus: &Corpus) -> SceneGraphStage {
        let out = tempfile::tempdir().unwrap();
        SceneGraphStage::build(config, corpus, &context(out.path(), IndexPolicy::Build))
            .unwrap_or_else(|e| panic!("{e} (WordNet comes from `make apt-deps`)"))
    }

    /// What the stage makes for `rows`, and its stats.
    fn augmented(
        stage: &SceneGraphStage,
        corpus: &Corpus,
        rows: Range<usize>,
    ) -> (Vec<Augmented>, Stats) {
        let mut out = vec![Augmented::default(); rows.len()];
        let mut stats = Stats::new();
        let batch = Batch {
            corpus,
            rows,
            out: &mut out,
            stats: &mut stats,
        };
        stage.augment(batch).unwrap();
        (out, stats)
    }

    fn context(out_dir: &Path, indexes: IndexPolicy) -> BuildContext<'_> {
        BuildContext {
            cache_dir: out_dir,
            seed: 7,
            out_dir,
            progress: false,
            indexes,
        }
    }

    /// The negatives made for the first caption.
    fn negatives(captions: &[&str], kind: EditKind) -> Vec<String> {
        let (stage, corpus) = stage(captions, &[kind]);
        let (out, _) = augmented(&stage, &corpus, 0..1);
        out[0]
            .negatives
            .iter()
            .filter_map(|n| n.text.clone())
            .collect()
    }

    #[test]
    fn replace_object_keeps_the_category_and_fixes_the_article() {
        let got = negatives(
            &[
                "a dog on a bed",
                "an elephant near a tree",
                "a chair in a room",
            ],
            EditKind::ReplaceObject,
        );
        // The only other animal is the elephant; chair and room are not animals.
        assert!(got.contains(&"an elephant on a bed".to_string()), "{got:?}");
        assert!(!got.iter().any(|g| g.contains("chair")), "{got:?}");
    }

    #[test]
    fn replace_object_never_uses_synonyms_or_hypernyms() {
        let got = negatives(
            &[
                "a dog on a bed",
                "a puppy on a mat",
                "an animal near a tree",
                "a bed and a mat",
            ],
            EditKind::ReplaceObject,
        );
        for bad in ["puppy", "animal"] {
            assert!(!got.iter().any(|g| g.contains(bad)), "{bad}: {got:?}");
        }
    }

    #[test]
    fn replace_attribute_stays_within_its_kind() {
        let got = negatives(
            &[
                "a red apple on a table",
                "an orange car",
                "a small dog",
                "a wooden chair",
            ],
            EditKind::ReplaceAttribute,
        );
        assert_eq!(got, vec!["an orange apple on a table".to_string()]);
    }

    #[test]
    fn replace_relation_changes_the_preposition() {
        let got = negatives(
            &[
                "a cat on a table",
                "a dog under a chair",
                "a cup with a spoon",
            ],
            EditKind::ReplaceRelation,
        );
        assert_eq!(got, vec!["a cat under a table".to_string()]);
    }

    #[test]
    fn replace_relation_changes_the_verb_in_the_same_form() {
        let got = negatives(
            &[
                "a man riding a horse",
                "a woman holding an umbrella",
                "a boy holds a kite",
            ],
            EditKind::ReplaceRelation,
        );
        assert_eq!(got, vec!["a man holding a horse".to_string()]);
    }

    #[test]
    fn swap_objects_exchanges_heads_and_articles() {
        let got = negatives(&["an elephant next to a dog"], EditKind::SwapObjects);
        assert_eq!(got, vec!["a dog next to an elephant".to_string()]);
        let got = negatives(&["a man riding a horse"], EditKind::SwapObjects);
        assert_eq!(got, vec!["a horse riding a man".to_string()]);
    }

    #[test]
    fn swap_attributes_exchanges_values_between_objects() {
        let got = negatives(&["a black dog and a white cat"], EditKind::SwapAttributes);
        assert_eq!(got, vec!["a white dog and a black cat".to_string()]);
        let got = negatives(
            &["a red apple and an orange ball"],
            EditKind::SwapAttributes,
        );
        assert_eq!(got, vec!["an orange apple and a red ball".to_string()]);
    }

    #[test]
    fn no_valid_edit_means_no_negative() {
        assert!(negatives(&["a dog"], EditKind::SwapObjects).is_empty());
        assert!(negatives(&["a dog"], EditKind::ReplaceRelation).is_empty());
        assert!(negatives(&["a black dog"], EditKind::SwapAttributes).is_empty());
        // "tiny" and "small" say nearly the same: neither swapped nor replaced.
        assert!(negatives(&["a tiny dog and a small cat"], EditKind::SwapAttributes).is_empty());
        assert!(negatives(&["a small dog", "a tiny cat"], EditKind::ReplaceAttribute).is_empty());
        // Two dogs: swapping equal heads changes nothing.
        assert!(negatives(&["a dog next to a dog"], EditKind::SwapObjects).is_empty());
        // Swapping coordinated objects says the same thing.
        assert!(negatives(&["a black dog and a black cat"], EditKind::SwapObjects).is_empty());
        // The only other colour word is a synonym-free match, but nothing else is a colour.
        assert!(negatives(&["a red car", "a car"], EditKind::ReplaceAttribute).is_empty());
    }

    #[test]
    fn unfluent_negatives_are_rejected_and_counted() {
        // Distinct texts: the language model counts each text once.
        let captions = [
            "a man riding a horse on a beach",
            "a man riding a horse",
            "a boy riding a horse on a beach",
            "a dog on a bed",
            "a horse on a beach",
        ];
        let corpus = corpus(&captions);
        let config = SceneGraphConfig {
            kinds: vec![EditKind::SwapObjects],
            min_candidate_count: 1,
            fluency_margin: 0.0,
            ..SceneGraphConfig::default()
        };
        let (out, stats) = augmented(&built(config, &corpus), &corpus, 0..1);
        let s = &stats["scene_graph"];
        assert!(out[0].negatives.is_empty(), "{:?}", out[0].negatives);
        assert!(
            s.rejected
                .get("not_fluent.swap_objects")
                .copied()
                .unwrap_or(0)
                >= 1,
            "{s:?}"
        );
    }

    /// Word support and the language model count distinct texts, so a corpus repeated
    /// under new image ids gives its first copy the same negatives (and the same work per
    /// pair: the scale bench repeats real captions up to 1M pairs).
    #[test]
    fn repeating_the_corpus_changes_no_negative() {
        let captions = [
            "a black dog on a red bed",
            "a white cat under a wooden table",
            "a man riding a brown horse on a beach",
            "a woman holding a red umbrella next to a car",
            "a small dog and a large cat on a bed",
            "a cat on a table",
            "a white horse near a black car",
        ];
        let negatives_of = |copies: usize| {
            let repeated: Vec<&str> = (0..copies).flat_map(|_| captions).collect();
            let corpus = corpus(&repeated);
            let config = SceneGraphConfig {
                min_candidate_count: 2,
                ..SceneGraphConfig::default()
            };
            let (got, _) = augmented(&built(config, &corpus), &corpus, 0..captions.len());
            got.into_iter().map(|a| a.negatives).collect::<Vec<_>>()
        };
        let once = negatives_of(1);
        assert!(once.iter().any(|n| !n.is_empty()), "{once:?}");
        assert_eq!(negatives_of(3), once);
    }

    #[test]
    fn the_language_model_is_an_artifact_built_once() {
        let corpus = corpus(&["a dog on a bed", "a cat on a mat"]);
        let out = tempfile::tempdir().unwrap();
        let build = |corpus: &Corpus, policy| {
            SceneGraphStage::build(
                SceneGraphConfig::default(),
                corpus,
                &context(out.path(), policy),
            )
        };
        build(&corpus, IndexPolicy::Build).unwrap();
        let index_dir = out.path().join("index");
        let record =
            crate::store::artifact::IndexManifest::load(&index_dir).artifacts["ngram"].clone();
        assert_eq!(record.file, "ngram.bin");
        let sum = crate::core::fs::sha256_file(&index_dir.join("ngram.bin")).unwrap();
        assert_eq!(record.file_sha256, sum);
        // A worker reuses it; other captions make it stale, which a worker refuses.
        build(&corpus, IndexPolicy::ReuseOnly).unwrap();
        let other = self::corpus(&["a dog on a bed", "a cat under a mat"]);
        let err = build(&other, IndexPolicy::ReuseOnly).err().unwrap();
        assert!(err.to_string().contains("ngram.bin"), "{err}");
        build(&other, IndexPolicy::Build).unwrap();
        assert_ne!(
            crate::core::fs::sha256_file(&index_dir.join("ngram.bin")).unwrap(),
            sum
        );
    }

    #[test]
    fn edits_refuse_to_apply_to_other_text() {
        let edit = Edit {
            kind: EditKind::ReplaceObject,
            replacements: vec![Replacement {
                start: 2,
                end: 5,
                from: "dog".into(),
                to: "cat".into(),
                node: true,
            }],
        };
        assert_eq!(edit.apply("a dog").as_deref(), Some("a cat"));
        assert_eq!(edit.apply("a pig"), None);
        assert_eq!(edit.apply("a d"), None);
    }

    #[test]
    fn articles_follow_sound() {
        assert_eq!(article_for("elephant"), "an");
        assert_eq!(article_for("dog"), "a");
        assert_eq!(article_for("umbrella"), "an");
        assert_eq!(article_for("unicorn"), "a");
        assert_eq!(article_for("hour"), "an");
        assert_eq!(article_for("one"), "a");
    }

    /// Splices the recorded replacements back to front: an independent way to apply them.
    fn splice(original: &str, replacements: &[serde_json::Value]) -> String {
        let mut text = original.to_string();
        for r in replacements.iter().rev() {
            let (start, end) = (
                r["start"].as_u64().unwrap() as usize,
                r["end"].as_u64().unwrap() as usize,
            );
            assert_eq!(&text[start..end], r["from"].as_str().unwrap());
            text.replace_range(start..end, r["to"].as_str().unwrap());
        }
        text
    }

    const ADJECTIVES: &[&str] = &["red", "black", "small", "large", "wooden", "white", "old"];
    const NOUNS: &[&str] = &[
        "dog", "cat", "man", "horse", "table", "car", "apple", "elephant",
    ];
    const LINKS: &[&str] = &[
        "on", "under", "next to", "riding", "holding", "near", "behind",
    ];

    fn phrase() -> impl Strategy<Value = String> {
        (
            prop::sample::select(ADJECTIVES),
            prop::sample::select(NOUNS),
            any::<bool>(),
        )
            .prop_map(|(adjective, noun, with_adjective)| {
                let words = if with_adjective {
                    format!("{adjective} {noun}")
                } else {
                    noun.to_string()
                };
                format!("{} {words}", article_for(&words))
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn recorded_edits_reproduce_every_negative(
            captions in prop::collection::vec(
                (phrase(), prop::sample::select(LINKS), phrase())
                    .prop_map(|(a, link, b)| format!("{a} {link} {b}")),
                4..10,
            )
        ) {
            let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
            let (stage, corpus) = stage(&refs, &EditKind::ALL);
            let (out, _) = augmented(&stage, &corpus, 0..corpus.pairs.len());
            for (pair, aug) in corpus.pairs.iter().zip(&out) {
                for n in &aug.negatives {
                    let params: serde_json::Value = serde_json::from_str(&n.params).unwrap();
                    let replacements = params["edit"].as_array().unwrap();
                    prop_assert_eq!(splice(&pair.caption, replacements), n.text.clone().unwrap());
                    let nodes = replacements.iter().filter(|r| r["node"] == true).count();
                    let expected = if n.kind.starts_with("swap") { 2 } else { 1 };
                    prop_assert_eq!(nodes, expected);
                    prop_assert_ne!(n.text.as_deref(), Some(pair.caption.as_str()));
                }
            }
        }
    }
}
