//! Scene graphs from captions, in pure Rust: objects with their attributes, and relations
//! between objects. Character data is never copied into the graph without its byte span in
//! the caption, so edits (the negatives of the `scene_graph` stage) apply to the original text.
//!
//! The parser is a caption grammar, not a general one: a lexicon tagger
//! ([`tagger`]) picks each word's class from WordNet and its neighbours, a chunker groups
//! noun phrases, and a left-to-right pass ([`parser`]) links them through prepositions and
//! verbs, with rules for coordination, relative clauses, passives and fronted phrases.

pub mod category;
pub mod eval;
pub mod facts;
pub mod lexicon;
pub mod parser;
pub mod tagger;

use std::ops::Range;

use serde::{Deserialize, Serialize};

pub use lexicon::{AttributeKind, Lexicon};
pub use parser::Parser;

/// The parser's version: artifacts counted from its parses (the scene_graph stage's
/// triple support) record it, so a parser that reads captions differently rebuilds them.
pub const VERSION: u32 = 1;

/// Byte range into the caption (UTF-8), so `&caption[span]` is the words.
pub type Span = Range<usize>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// The whole noun phrase, determiner included ("the two black dogs").
    pub phrase: Span,
    /// The head noun, with any compound nouns before it ("parking lot").
    pub head: Span,
    /// Lemmatised head ("dog", "parking lot").
    pub name: String,
    pub plural: bool,
    /// From a count word or digits ("two", "3").
    pub count: Option<u32>,
    /// The article or determiner, when there is one: agreement fixes rewrite it.
    pub determiner: Option<Span>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// Index into [`SceneGraph::objects`].
    pub object: usize,
    pub span: Span,
    /// The words as written, lowercased ("dark green", "wooden", "2" for "two").
    pub value: String,
    pub kind: AttributeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelationKind {
    /// A verb, possibly with a particle or preposition ("ride", "sit on").
    Verb,
    /// A preposition, possibly multi-word ("in front of").
    Spatial,
    /// Possession or part-whole from "of", "'s", "has".
    Have,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub subject: usize,
    pub object: usize,
    /// Lemmatised predicate ("sit on", "in front of", "have").
    pub predicate: String,
    /// The predicate's words in the caption; empty for implicit "have" ("player's hat").
    pub span: Span,
    pub kind: RelationKind,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneGraph {
    pub objects: Vec<Object>,
    pub attributes: Vec<Attribute>,
    pub relations: Vec<Relation>,
}

impl SceneGraph {
    /// The graph as (subject, predicate, object) triples, attributes as (object, "is",
    /// value) and counts above one as (object, "is", "N"): the form FACTUAL writes.
    pub fn triples(&self) -> Vec<[String; 3]> {
        let mut out = Vec::new();
        for a in &self.attributes {
            out.push([
                self.objects[a.object].name.clone(),
                "is".to_string(),
                a.value.clone(),
            ]);
        }
        for r in &self.relations {
            out.push([
                self.objects[r.subject].name.clone(),
                r.predicate.clone(),
                self.objects[r.object].name.clone(),
            ]);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One parser for all tests: WordNet takes a moment to load.
    pub(crate) fn parser() -> &'static Parser {
        static PARSER: OnceLock<Parser> = OnceLock::new();
        PARSER.get_or_init(|| {
            Parser::load(std::path::Path::new(lexicon::DEFAULT_WORDNET_DIR))
                .unwrap_or_else(|e| panic!("{e} (`make apt-deps` installs wordnet-base)"))
        })
    }

    fn triples(caption: &str) -> Vec<String> {
        let mut out: Vec<String> = parser()
            .parse(caption)
            .triples()
            .iter()
            .map(|t| t.join(" | "))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn objects_attributes_and_prepositions() {
        assert_eq!(
            triples("a black and white dog on a wooden bench"),
            [
                "bench | is | wooden",
                "dog | is | black",
                "dog | is | white",
                "dog | on | bench"
            ]
        );
    }

    #[test]
    fn numbers_plurals_and_coordination() {
        assert_eq!(
            triples("two cats and a dog on a bed"),
            ["cat | is | 2", "cat | on | bed", "dog | on | bed"]
        );
        let graph = parser().parse("two cats and a dog on a bed");
        assert!(graph.objects[0].plural);
        assert_eq!(graph.objects[0].count, Some(2));
    }

    #[test]
    fn verbs_with_particles_and_multiword_prepositions() {
        assert_eq!(triples("a man riding a horse"), ["man | ride | horse"]);
        assert_eq!(
            triples("a cat sitting on a table"),
            ["cat | sit on | table"]
        );
        assert_eq!(
            triples("a car parked next to a building"),
            ["car | park | building"]
                .iter()
                .map(|s| s.to_string())
                .filter(|_| false)
                .chain(["car | park next to | building".to_string()])
                .collect::<Vec<_>>()
        );
        assert_eq!(
            triples("a lamp in front of a window"),
            ["lamp | in front of | window"]
        );
        assert_eq!(
            triples("a box on top of a shelf"),
            ["box | on top of | shelf"]
        );
    }

    #[test]
    fn relative_clauses_and_passives() {
        assert_eq!(
            triples("a man who is riding a horse"),
            ["man | ride | horse"]
        );
        assert_eq!(
            triples("a horse being ridden by a man"),
            ["man | ride | horse"]
        );
        assert_eq!(
            triples("a bear surrounded by grass"),
            ["grass | surround | bear"]
        );
        // "by" after a placement verb is a place, not an agent.
        assert_eq!(
            triples("cars are parked by the building"),
            ["building | is | 2"]
                .iter()
                .map(|s| s.to_string())
                .filter(|_| false)
                .chain(["car | park by | building".to_string()])
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn predicative_adjectives_and_possession() {
        assert_eq!(triples("the stove is white"), ["stove | is | white"]);
        assert_eq!(
            triples("the player's socks are green"),
            ["player | have | sock", "sock | is | green"]
        );
        assert_eq!(triples("the seat of the toilet"), ["toilet | have | seat"]);
        assert_eq!(
            triples("a group of people on a beach"),
            ["people | on | beach"]
        );
    }

    #[test]
    fn fronted_phrases_and_pronouns() {
        assert_eq!(
            triples("beside the red star there is a small circle"),
            [
                "circle | beside | star",
                "circle | is | small",
                "star | is | red"
            ]
        );
        assert_eq!(
            triples("a blue square with a green circle above it"),
            [
                "circle | above | square",
                "circle | is | green",
                "square | is | blue"
            ]
        );
    }

    #[test]
    fn spans_point_into_the_caption() {
        let caption = "Two brown Dogs sitting on the SOFA.";
        let graph = parser().parse(caption);
        let heads: Vec<&str> = graph
            .objects
            .iter()
            .map(|o| &caption[o.head.clone()])
            .collect();
        assert_eq!(heads, ["Dogs", "SOFA"]);
        let attributes: Vec<&str> = graph
            .attributes
            .iter()
            .map(|a| &caption[a.span.clone()])
            .collect();
        assert_eq!(attributes, ["Two", "brown"]);
        assert_eq!(&caption[graph.relations[0].span.clone()], "sitting on");
        assert_eq!(
            graph.objects[1].determiner.clone().map(|d| &caption[d]),
            Some("the")
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for caption in [
            "",
            "   ",
            "...",
            "a",
            "of of of",
            "the the",
            "'s",
            "ñandú über café",
            "a 3.5 inch nail",
        ] {
            let _ = parser().parse(caption);
        }
    }

    /// How much of Visual Genome's VG150 vocabulary the lexicon knows (a coverage report,
    /// with floors so a lexicon regression fails).
    #[test]
    fn vg150_coverage() {
        let path = crate::test_data_dir().join("vg/VG-SGG-dicts-with-attri.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (tests read ../shared/data)", path.display()));
        let dicts: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys = |field: &str| -> Vec<String> {
            dicts[field].as_object().unwrap().keys().cloned().collect()
        };
        let lex = parser().lexicon();
        let wn = lex.wordnet();
        let objects = keys("label_to_idx");
        let known_objects = objects
            .iter()
            .filter(|o| wn.contains(&lex.noun_lemma(o), crate::text::wordnet::Pos::Noun))
            .count();
        let attributes = keys("attribute_to_idx");
        let known_attributes = attributes
            .iter()
            .filter(|a| {
                !matches!(
                    lex.class(a),
                    lexicon::WordClass::Open {
                        noun: true,
                        verb: false,
                        adj: false
                    }
                ) || wn.contains(a, crate::text::wordnet::Pos::Noun)
            })
            .count();
        // A predicate is covered when the parser reads "subject PREDICATE object" into it.
        let predicates = keys("predicate_to_idx");
        let known_predicates = predicates
            .iter()
            .filter(|p| {
                let graph = parser().parse(&format!("the man {p} the table"));
                graph.relations.len() == 1
            })
            .count();
        eprintln!(
            "VG150 coverage: objects {known_objects}/{}, attributes {known_attributes}/{}, predicates {known_predicates}/{}",
            objects.len(),
            attributes.len(),
            predicates.len()
        );
        assert!(known_objects >= 145, "{known_objects}");
        assert!(known_attributes >= 190, "{known_attributes}");
        assert!(known_predicates >= 40, "{known_predicates}");
    }
}
