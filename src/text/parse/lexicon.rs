//! The parser's word knowledge: WordNet 3.0 (installed from Debian's `wordnet-base`) for
//! parts of speech, lemmas and categories, plus the project's own closed-class lists and
//! caption-domain rules below. Nothing here is fetched from another repository.

use std::collections::HashMap;
use std::path::Path;

use crate::core::error::{Error, Result};
use crate::text::wordnet::{Pos, WordNet};

/// Where Debian's `wordnet-base` puts the database.
pub const DEFAULT_WORDNET_DIR: &str = "/usr/share/wordnet";

const DETERMINERS: &[&str] = &[
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "another",
    "other", "his", "her", "their", "its", "my", "your", "our", "several", "many", "few", "both",
    "all", "no", "one's", "whose", "either", "neither", "much", "more", "most", "various",
    "multiple", "numerous", "such",
];

/// Prepositions and particles; multi-word ones are in [`COMPLEX_PREPOSITIONS`].
const PREPOSITIONS: &[&str] = &[
    "on",
    "in",
    "at",
    "of",
    "with",
    "by",
    "under",
    "over",
    "above",
    "below",
    "behind",
    "beside",
    "besides",
    "near",
    "between",
    "among",
    "amongst",
    "across",
    "along",
    "alongside",
    "around",
    "through",
    "into",
    "onto",
    "inside",
    "outside",
    "from",
    "to",
    "toward",
    "towards",
    "against",
    "beneath",
    "underneath",
    "atop",
    "upon",
    "off",
    "out",
    "up",
    "down",
    "past",
    "during",
    "for",
    "about",
    "like",
    "within",
    "without",
    "via",
    "beyond",
    "after",
    "before",
    "throughout",
    "amid",
    "opposite",
    "unto",
    "aboard",
    "round",
    "inbetween",
    "thru",
];

/// Longest first within a shared prefix is not needed: matching tries every entry and keeps
/// the longest. Articles inside are optional ("on top of", "on the top of").
const COMPLEX_PREPOSITIONS: &[&str] = &[
    "in front of",
    "in back of",
    "on top of",
    "next to",
    "close to",
    "near to",
    "out of",
    "in between",
    "along side",
    "away from",
    "across from",
    "together with",
    "ahead of",
    "on the left of",
    "on the right of",
    "to the left of",
    "to the right of",
    "left of",
    "right of",
    "at the left of",
    "at the right of",
    "in the middle of",
    "in middle of",
    "on the side of",
    "on side of",
    "on the edge of",
    "on edge of",
    "at the end of",
    "at end of",
    "in the corner of",
    "in corner of",
    "at the bottom of",
    "at bottom of",
    "on the back of",
    "on back of",
    "on the front of",
    "on front of",
    "in the center of",
    "in center of",
    "in the centre of",
    "at the top of",
    "at top of",
    "on the bottom of",
    "on bottom of",
    "in the back of",
    "on the other side of",
    "on either side of",
    "in the shape of",
    "by the side of",
    "up to",
    "down to",
    "all over",
    "far from",
    "on to",
    "in to",
    "out from",
    "up against",
    "instead of",
    "because of",
    "full of",
    "part of",
];

const CONJUNCTIONS: &[&str] = &[
    "and", "or", "but", "while", "as", "&", "plus", "nor", "whilst",
];

const RELATIVE_PRONOUNS: &[&str] = &["who", "which", "that", "whom", "where"];

const PRONOUNS: &[&str] = &[
    "he",
    "she",
    "it",
    "they",
    "him",
    "them",
    "someone",
    "something",
    "somebody",
    "everyone",
    "everything",
    "anyone",
    "i",
    "we",
    "you",
    "us",
    "me",
    "himself",
    "herself",
    "itself",
    "themselves",
    "one",
];

const AUXILIARIES: &[&str] = &[
    "is", "are", "was", "were", "be", "being", "been", "am", "'s", "'re", "has", "have", "had",
    "having", "does", "do", "did", "can", "could", "will", "would", "may", "might", "must",
    "should", "shall", "get", "gets", "getting", "got",
];

const ADVERBS: &[&str] = &[
    "very",
    "really",
    "too",
    "so",
    "quite",
    "just",
    "partly",
    "partially",
    "mostly",
    "almost",
    "slightly",
    "nearly",
    "fully",
    "brightly",
    "not",
    "also",
    "still",
    "together",
    "here",
    "there",
    "away",
    "outdoors",
    "indoors",
    "high",
    "low",
    "closely",
    "rather",
    "somewhat",
    "extremely",
    "completely",
    "currently",
    "possibly",
    "only",
    "even",
    "well",
    "again",
    "then",
    "now",
];

/// Adjectives that modify a following colour word into one attribute ("dark green").
const COLOUR_SHADES: &[&str] = &[
    "dark", "light", "bright", "pale", "deep", "navy", "hot", "neon",
];

/// Nouns that count or group what follows "of": the entity is the second noun.
const QUANTITY_NOUNS: &[&str] = &[
    "group",
    "bunch",
    "pair",
    "couple",
    "herd",
    "flock",
    "stack",
    "pile",
    "lot",
    "lots",
    "bits",
    "bit",
    "number",
    "row",
    "set",
    "crowd",
    "team",
    "line",
    "variety",
    "assortment",
    "collection",
    "selection",
    "array",
    "couple",
    "dozen",
    "few",
    "piece",
    "pieces",
    "slice",
    "slices",
    "kind",
    "type",
    "sort",
    "bundle",
    "cluster",
    "mass",
    "series",
    "handful",
    "amount",
    "plenty",
    "bunches",
    "groups",
    "pairs",
    "stacks",
    "piles",
    "rows",
    "sets",
    "teams",
    "lines",
    "clusters",
    "swarm",
    "fleet",
    "batch",
    "display",
    "full",
    "view",
];

/// Nouns whose "X of Y" means X holds or consists of Y (else Y has X: "the seat of the toilet").
const CONTAINER_NOUNS: &[&str] = &[
    "plate",
    "bowl",
    "cup",
    "glass",
    "box",
    "basket",
    "bag",
    "field",
    "bottle",
    "jar",
    "tray",
    "pot",
    "pan",
    "bucket",
    "container",
    "cart",
    "truck",
    "sink",
    "table",
    "shelf",
    "vase",
    "mug",
    "carton",
    "crate",
    "platter",
    "dish",
    "pitcher",
    "sack",
    "barrel",
    "bin",
    "can",
    "loaf",
    "pizza",
    "sandwich",
    "cake",
    "photo",
    "picture",
    "image",
    "painting",
    "sign",
    "poster",
    "drawing",
    "map",
    "statue",
    "model",
    "toy",
    "close",
    "closeup",
    "close-up",
];

/// Verbs whose participle with "by" means placement ("parked by the building"), not a
/// passive agent ("surrounded by grass").
const PLACEMENT_VERBS: &[&str] = &[
    "park", "place", "sit", "stand", "lay", "lie", "locate", "position", "situate", "put", "set",
    "hang", "lean", "stack", "line", "pile", "rest", "seat", "stop", "station",
];

/// Count words and their values; numbers attach as attributes ("two dogs" -> dog is 2).
const NUMBER_WORDS: &[(&str, u32)] = &[
    ("one", 1),
    ("two", 2),
    ("three", 3),
    ("four", 4),
    ("five", 5),
    ("six", 6),
    ("seven", 7),
    ("eight", 8),
    ("nine", 9),
    ("ten", 10),
    ("eleven", 11),
    ("twelve", 12),
    ("thirteen", 13),
    ("fourteen", 14),
    ("fifteen", 15),
    ("twenty", 20),
    ("dozen", 12),
    ("single", 1),
];

/// Materials named before a noun ("metal poles", "brick wall"); WordNet files many of them
/// under artifacts, so the substance category alone misses them.
const MATERIALS: &[&str] = &[
    "wood",
    "wooden",
    "metal",
    "metallic",
    "steel",
    "iron",
    "brick",
    "stone",
    "glass",
    "plastic",
    "leather",
    "concrete",
    "wire",
    "paper",
    "cardboard",
    "cloth",
    "cotton",
    "wool",
    "silk",
    "denim",
    "rubber",
    "ceramic",
    "porcelain",
    "marble",
    "granite",
    "tile",
    "straw",
    "wicker",
    "bamboo",
    "dirt",
    "gravel",
    "sand",
    "clay",
    "gold",
    "silver",
    "copper",
    "brass",
    "aluminum",
    "tin",
    "chrome",
    "fur",
    "lace",
    "velvet",
    "vinyl",
    "canvas",
    "stainless",
    "cement",
    "asphalt",
    "mesh",
    "plaster",
    "foam",
    "felt",
    "suede",
    "wax",
    "crystal",
];

/// Nouns that only exist in the plural; their lemma keeps the "s".
const PLURALIA_TANTUM: &[&str] = &[
    "pants",
    "jeans",
    "glasses",
    "scissors",
    "shorts",
    "trousers",
    "sunglasses",
    "goggles",
    "tongs",
    "clothes",
    "stairs",
    "pajamas",
    "overalls",
    "leggings",
    "binoculars",
    "tweezers",
    "headphones",
    "earphones",
    "skis",
    "groceries",
    "tights",
    "suspenders",
    "pliers",
];

/// Spatial-preposition synonyms the scorer treats as one predicate, documented in
/// ARCHITECTURE.md: the caption says either, the scene is the same.
pub const SPATIAL_SYNONYMS: &[(&str, &str)] = &[
    ("beside", "next to"),
    ("by", "next to"),
    ("over", "above"),
    ("under", "below"),
    ("beneath", "below"),
    ("underneath", "below"),
    ("to the left of", "left of"),
    ("on the left of", "left of"),
    ("at the left of", "left of"),
    ("to the right of", "right of"),
    ("on the right of", "right of"),
    ("at the right of", "right of"),
    ("atop", "on top of"),
    ("inside", "in"),
    ("in between", "between"),
];

/// The words of `phrase`, lowercased, without articles, joined by single spaces.
pub fn without_articles(phrase: &str) -> String {
    phrase
        .to_lowercase()
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One name for synonymous spatial prepositions ("to the left of", "on the left of" ->
/// "left of"; "beside" -> "next to"), articles dropped.
pub fn canonical_spatial(phrase: &str) -> String {
    let bare = without_articles(phrase);
    SPATIAL_SYNONYMS
        .iter()
        .find(|(from, _)| without_articles(from) == bare)
        .map_or(bare, |(_, to)| to.to_string())
}

/// Coarse part of speech of one token, as the caption grammar needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordClass {
    Determiner,
    Number(u32),
    Preposition,
    Conjunction,
    RelativePronoun,
    Pronoun,
    Auxiliary,
    Adverb,
    There,
    Possessive,
    Punctuation,
    /// Open-class word: the tagger decides between these from context.
    Open {
        noun: bool,
        verb: bool,
        adj: bool,
    },
}

/// Category of an attribute, for choosing same-kind replacements.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AttributeKind {
    Colour,
    Size,
    Material,
    Count,
    Age,
    Shape,
    State,
    Other,
}

impl AttributeKind {
    pub fn name(self) -> &'static str {
        match self {
            AttributeKind::Colour => "colour",
            AttributeKind::Size => "size",
            AttributeKind::Material => "material",
            AttributeKind::Count => "count",
            AttributeKind::Age => "age",
            AttributeKind::Shape => "shape",
            AttributeKind::State => "state",
            AttributeKind::Other => "other",
        }
    }
}

/// WordNet plus the curated lists, with lookups cached per word form.
pub struct Lexicon {
    wordnet: WordNet,
    closed: HashMap<&'static str, WordClass>,
}

impl Lexicon {
    /// Loads WordNet from `dir` (usually [`DEFAULT_WORDNET_DIR`]).
    pub fn load(dir: &Path) -> Result<Lexicon> {
        if !dir.join("index.noun").is_file() {
            return Err(Error::model(
                dir,
                "WordNet 3.0 not found; install it with 'apt-get install wordnet-base' \
                 (or 'make apt-deps') or set scene_graph.wordnet_dir",
            ));
        }
        let wordnet = WordNet::load(dir).map_err(|e| Error::model(dir, e))?;
        let mut closed = HashMap::new();
        // Later lists win for words in two lists: "that" is a determiner until context says
        // otherwise, "one" a number.
        for w in RELATIVE_PRONOUNS {
            closed.insert(*w, WordClass::RelativePronoun);
        }
        for w in PRONOUNS {
            closed.insert(*w, WordClass::Pronoun);
        }
        for w in ADVERBS {
            closed.insert(*w, WordClass::Adverb);
        }
        for w in PREPOSITIONS {
            closed.insert(*w, WordClass::Preposition);
        }
        for w in CONJUNCTIONS {
            closed.insert(*w, WordClass::Conjunction);
        }
        for w in AUXILIARIES {
            closed.insert(*w, WordClass::Auxiliary);
        }
        for w in DETERMINERS {
            closed.insert(*w, WordClass::Determiner);
        }
        for (w, n) in NUMBER_WORDS {
            closed.insert(*w, WordClass::Number(*n));
        }
        closed.insert("there", WordClass::There);
        Ok(Lexicon { wordnet, closed })
    }

    pub fn wordnet(&self) -> &WordNet {
        &self.wordnet
    }

    /// The class of a lowercased token before context is considered.
    pub fn class(&self, word: &str) -> WordClass {
        if let Some(class) = self.closed.get(word) {
            return *class;
        }
        if let Ok(n) = word.parse::<u32>() {
            return WordClass::Number(n);
        }
        if word.chars().all(|c| !c.is_alphanumeric()) {
            return WordClass::Punctuation;
        }
        let noun = !self.wordnet.morphy(word, Pos::Noun).is_empty();
        let verb = !self.wordnet.morphy(word, Pos::Verb).is_empty();
        let adj = !self.wordnet.morphy(word, Pos::Adj).is_empty();
        if !noun && !verb && !adj && !self.wordnet.morphy(word, Pos::Adv).is_empty() {
            return WordClass::Adverb;
        }
        // Unknown words (typos, brand names) are most often nouns in captions.
        WordClass::Open {
            noun: noun || (!verb && !adj),
            verb,
            adj,
        }
    }

    /// How often WordNet's sense-tagged corpus used the word as `pos` (any of its lemmas).
    pub fn usage(&self, word: &str, pos: Pos) -> u32 {
        self.wordnet
            .morphy(word, pos)
            .iter()
            .map(|l| self.wordnet.tagged_count(l, pos))
            .max()
            .unwrap_or(0)
    }

    /// Singular base form of a noun; unknown words lose a plural "s".
    pub fn noun_lemma(&self, word: &str) -> String {
        if PLURALIA_TANTUM.contains(&word) {
            return word.to_string();
        }
        let forms = self.wordnet.morphy(word, Pos::Noun);
        // The shortest base form is the singular ("glasses" -> "glass" unless listed above).
        if let Some(best) = forms.iter().min_by_key(|f| (f.len(), f.as_str())) {
            return best.clone();
        }
        if word.len() > 3 && word.ends_with('s') && !word.ends_with("ss") {
            return word[..word.len() - 1].to_string();
        }
        word.to_string()
    }

    /// Base form of a verb. A form other than the word itself wins ("lay" -> "lie", so
    /// "lying" and "lay" agree); among several, the one WordNet's corpus used most
    /// ("riding" -> "ride", not "rid").
    pub fn verb_lemma(&self, word: &str) -> String {
        let forms = self.wordnet.morphy(word, Pos::Verb);
        forms
            .iter()
            .filter(|f| f.as_str() != word)
            .max_by_key(|f| {
                (
                    self.wordnet.tagged_count(f, Pos::Verb),
                    std::cmp::Reverse(f.len()),
                )
            })
            .or_else(|| forms.first())
            .cloned()
            .unwrap_or_else(|| word.to_string())
    }

    /// True for a noun that was probably written in the plural.
    pub fn is_plural_noun(&self, word: &str) -> bool {
        if PLURALIA_TANTUM.contains(&word) {
            return true;
        }
        let lemma = self.noun_lemma(word);
        lemma != word
    }

    pub fn is_collocation(&self, words: &[&str]) -> bool {
        self.wordnet.contains(&words.join(" "), Pos::Noun)
    }

    pub fn is_quantity_noun(&self, word: &str) -> bool {
        QUANTITY_NOUNS.contains(&word)
    }

    pub fn is_container_noun(&self, lemma: &str) -> bool {
        CONTAINER_NOUNS.contains(&lemma)
    }

    pub fn is_placement_verb(&self, lemma: &str) -> bool {
        PLACEMENT_VERBS.contains(&lemma)
    }

    pub fn is_colour_shade(&self, word: &str) -> bool {
        COLOUR_SHADES.contains(&word)
    }

    pub fn complex_prepositions(&self) -> &'static [&'static str] {
        COMPLEX_PREPOSITIONS
    }

    /// A multi-word preposition or a spatial synonym, articles aside ("to left of").
    pub fn is_preposition_phrase(&self, phrase: &str) -> bool {
        let bare = without_articles(phrase);
        COMPLEX_PREPOSITIONS
            .iter()
            .chain(SPATIAL_SYNONYMS.iter().flat_map(|(from, to)| [from, to]))
            .any(|p| without_articles(p) == bare)
    }

    pub fn number_value(&self, word: &str) -> Option<u32> {
        match self.class(word) {
            WordClass::Number(n) => Some(n),
            _ => None,
        }
    }

    /// The attribute's category, from WordNet's attribute links and noun hierarchy.
    pub fn attribute_kind(&self, attribute: &str) -> AttributeKind {
        let last = attribute.rsplit(' ').next().unwrap_or(attribute);
        if self.number_value(last).is_some() {
            return AttributeKind::Count;
        }
        if self.is_colour(last) {
            return AttributeKind::Colour;
        }
        let links = self.wordnet.attribute_nouns(last);
        let has = |noun: &str| links.iter().any(|l| l == noun);
        if has("size") || has("magnitude") || has("stature") || has("height") || has("length") {
            return AttributeKind::Size;
        }
        if has("age") || has("maturity") || has("oldness") || has("newness") {
            return AttributeKind::Age;
        }
        if has("shape") || has("form") {
            return AttributeKind::Shape;
        }
        if self.is_material(last) {
            return AttributeKind::Material;
        }
        if !links.is_empty() || last.ends_with("ed") || last.ends_with("ing") {
            return AttributeKind::State;
        }
        AttributeKind::Other
    }

    /// Colour words: adjectives or nouns under WordNet's "chromatic color"/"achromatic color".
    pub fn is_colour(&self, word: &str) -> bool {
        let wn = &self.wordnet;
        wn.contains(word, Pos::Noun)
            && (wn.is_a(word, "chromatic color") || wn.is_a(word, "achromatic color"))
            && wn.lexnames(word, Pos::Adj).first() == Some(&"adj.all")
    }

    /// Material words ("wooden", "metal", "brick"): substance nouns, or adjectives whose
    /// pertainym is one ("wooden" has a noun.substance sense "wood" ...).
    pub fn is_material(&self, word: &str) -> bool {
        let wn = &self.wordnet;
        let substance = |w: &str| {
            MATERIALS.contains(&w) || wn.lexnames(w, Pos::Noun).first() == Some(&"noun.substance")
        };
        if substance(word) {
            return true;
        }
        // "wooden" -> "wood", "metallic" -> "metal": the adjective form of a substance.
        for suffix in ["en", "ic", "y"] {
            if let Some(stem) = word.strip_suffix(suffix) {
                if stem.len() > 2 && substance(stem) {
                    return true;
                }
            }
        }
        false
    }
}
