//! Positives of kind `rewrite`: the caption said again in another construction that
//! keeps its scene graph, fluent by construction where back-translation is not.
//!
//! Rules, each applied where the parse shows its pattern:
//! - `relative_clause`: a participle after its subject becomes a relative clause ("a man
//!   riding a horse" -> "a man who is riding a horse"; "that" for things, "are" for
//!   plurals);
//! - `reduced_clause`: the reverse ("a dog that is sitting on a bed" -> "a dog sitting on
//!   a bed");
//! - `there_insertion`: a caption that is one noun phrase with a participle gets "There
//!   is" / "There are" ("Two dogs playing in the snow" -> "There are two dogs playing in
//!   the snow");
//! - `finite_verb`: such a caption as a sentence ("A man riding a horse" -> "A man is
//!   riding a horse");
//! - `participle`: the reverse ("A man is riding a horse" -> "A man riding a horse");
//! - `with_clause`: "with" right after the caption's opening noun phrase as "that has"
//!   ("A kitchen with a stove" -> "A kitchen that has a stove"; "who" for people, "have"
//!   for plurals). Only there: elsewhere "with" may be an instrument ("cutting a cake with
//!   a knife").
//!
//! Every rewrite is parsed again and kept only when its graph equals the original's
//! (objects and triples), so no rule changes what the caption says.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::core::error::Result;
use crate::core::record::Corpus;
use crate::core::sample::Item;
use crate::stages::{boxed, Batch, BuildContext, Stage, StageSpec};
use crate::text::parse::lexicon::DEFAULT_WORDNET_DIR;
use crate::text::parse::tagger::{self, Tag, VerbForm};
use crate::text::parse::{Parser, RelationKind, SceneGraph};
use crate::text::wordnet::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    RelativeClause,
    ReducedClause,
    ThereInsertion,
    FiniteVerb,
    Participle,
    WithClause,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::RelativeClause => "relative_clause",
            Rule::ReducedClause => "reduced_clause",
            Rule::ThereInsertion => "there_insertion",
            Rule::FiniteVerb => "finite_verb",
            Rule::Participle => "participle",
            Rule::WithClause => "with_clause",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// WordNet 3.0 database folder (Debian: wordnet-base) for the parser.
    #[serde(default = "default_wordnet_dir")]
    pub wordnet_dir: PathBuf,
    #[serde(default = "all_rules")]
    pub rules: Vec<Rule>,
    /// Most rewrites kept per caption, in rule order.
    #[serde(default = "default_max_rewrites")]
    pub max_rewrites: usize,
}

fn default_wordnet_dir() -> PathBuf {
    PathBuf::from(DEFAULT_WORDNET_DIR)
}
fn all_rules() -> Vec<Rule> {
    vec![
        Rule::RelativeClause,
        Rule::ReducedClause,
        Rule::ThereInsertion,
        Rule::FiniteVerb,
        Rule::Participle,
        Rule::WithClause,
    ]
}
fn default_max_rewrites() -> usize {
    2
}

impl StageSpec for RewriteConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.rules.is_empty() || self.max_rewrites == 0 {
            return Err("rules needs at least one rule and max_rewrites at least 1".into());
        }
        Ok(())
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.wordnet_dir]
    }

    fn build(&self, _corpus: &Corpus, _context: &BuildContext) -> Result<Box<dyn Stage>> {
        Ok(boxed(RewriteStage {
            parser: Parser::load(&self.wordnet_dir)?,
            config: self.clone(),
        }))
    }
}

pub struct RewriteStage {
    config: RewriteConfig,
    parser: Parser,
}

/// Objects and triples, the part of a graph a rewrite must keep. "with" and "have" are
/// one relation here: "a kitchen with a stove" is "a kitchen that has a stove".
fn meaning(graph: &SceneGraph) -> (Vec<String>, BTreeSet<[String; 3]>) {
    let mut objects: Vec<String> = graph.objects.iter().map(|o| o.name.clone()).collect();
    objects.sort();
    let triples = graph
        .triples()
        .into_iter()
        .map(|[s, p, o]| {
            let p = if p == "with" { "have".to_string() } else { p };
            [s, p, o]
        })
        .collect();
    (objects, triples)
}

impl RewriteStage {
    /// Each rule's rewrite of `caption`, where its pattern applies.
    fn rewrites(&self, caption: &str, graph: &SceneGraph) -> Vec<(Rule, String)> {
        let lex = self.parser.lexicon();
        let tokens = tagger::tag(lex, caption);
        let mut out = Vec::new();
        for &rule in &self.config.rules {
            let text = match rule {
                Rule::RelativeClause => self.relative_clause(caption, graph),
                Rule::ReducedClause => reduced_clause(caption, &tokens),
                Rule::ThereInsertion => self.there_insertion(caption, graph, &tokens),
                Rule::FiniteVerb => self.finite_verb(caption, graph, &tokens),
                Rule::Participle => participle(caption, &tokens),
                Rule::WithClause => self.with_clause(caption, graph, &tokens),
            };
            if let Some(text) = text {
                out.push((rule, text));
            }
        }
        out
    }

    /// The first verb relation whose "-ing" predicate directly follows its subject's
    /// noun phrase: (subject index, byte offset of the predicate). Not when the subject
    /// is the last of a coordination ("food and a drink sitting"): the participle may
    /// belong to all of them.
    fn participle_after_subject(&self, caption: &str, graph: &SceneGraph) -> Option<(usize, usize)> {
        let lex = self.parser.lexicon();
        graph.relations.iter().find_map(|r| {
            let subject = &graph.objects[r.subject];
            let before = caption[..subject.phrase.start].trim_end().to_lowercase();
            if before.ends_with(" and") || before.ends_with(',') || before == "and" {
                return None;
            }
            let first = caption.get(r.span.clone())?.split(' ').next()?.to_lowercase();
            let adjacent = subject.phrase.end <= r.span.start
                && caption[subject.phrase.end..r.span.start].trim().is_empty();
            (r.kind == RelationKind::Verb
                && adjacent
                && tagger::verb_form(lex, &first) == VerbForm::Ing)
                .then_some((r.subject, r.span.start))
        })
    }

    /// "who" for people, by the noun's most frequent sense (a dog has a rare person
    /// sense), else "that".
    fn relative_pronoun(&self, noun: &str) -> &'static str {
        let wordnet = self.parser.lexicon().wordnet();
        match wordnet.lexnames(noun, Pos::Noun).first() {
            Some(&"noun.person") => "who",
            _ => "that",
        }
    }

    fn relative_clause(&self, caption: &str, graph: &SceneGraph) -> Option<String> {
        let (subject, at) = self.participle_after_subject(caption, graph)?;
        let object = &graph.objects[subject];
        let pronoun = self.relative_pronoun(&object.name);
        let verb = if is_plural(caption, object) { "are" } else { "is" };
        Some(format!("{}{pronoun} {verb} {}", &caption[..at], &caption[at..]))
    }

    /// The subject and predicate offset of a caption that is one noun phrase, opening the
    /// caption, with its participle, and no finite verb that a rewrite would clash with.
    fn lone_phrase(
        &self,
        caption: &str,
        graph: &SceneGraph,
        tokens: &[tagger::Token],
    ) -> Option<(usize, usize)> {
        if tokens
            .iter()
            .any(|t| matches!(t.tag, Tag::Auxiliary | Tag::There | Tag::Verb(VerbForm::S)))
        {
            return None;
        }
        let (subject, at) = self.participle_after_subject(caption, graph)?;
        let first = tokens.first()?;
        (graph.objects[subject].phrase.start == first.span.start).then_some((subject, at))
    }

    fn finite_verb(
        &self,
        caption: &str,
        graph: &SceneGraph,
        tokens: &[tagger::Token],
    ) -> Option<String> {
        let (subject, at) = self.lone_phrase(caption, graph, tokens)?;
        let verb = if is_plural(caption, &graph.objects[subject]) {
            "are"
        } else {
            "is"
        };
        Some(format!("{}{verb} {}", &caption[..at], &caption[at..]))
    }

    fn with_clause(
        &self,
        caption: &str,
        graph: &SceneGraph,
        tokens: &[tagger::Token],
    ) -> Option<String> {
        let first = graph.objects.first()?;
        let opening = tokens.first()?;
        if first.phrase.start != opening.span.start {
            return None;
        }
        let with = tokens
            .iter()
            .find(|t| t.span.start >= first.phrase.end)
            .filter(|t| t.word == "with" && caption[first.phrase.end..t.span.start].trim().is_empty())?;
        let pronoun = self.relative_pronoun(&first.name);
        let verb = if is_plural(caption, first) { "have" } else { "has" };
        Some(format!(
            "{}{pronoun} {verb}{}",
            &caption[..with.span.start],
            &caption[with.span.end..]
        ))
    }

    fn there_insertion(
        &self,
        caption: &str,
        graph: &SceneGraph,
        tokens: &[tagger::Token],
    ) -> Option<String> {
        let (subject, _) = self.lone_phrase(caption, graph, tokens)?;
        let object = &graph.objects[subject];
        let first = tokens.first()?;
        if object.phrase.start != first.span.start
            || !matches!(first.tag, Tag::Determiner | Tag::Number(_))
        {
            return None;
        }
        let determiner = first.word.as_str();
        let plural = is_plural(caption, object);
        if (plural && matches!(determiner, "a" | "an" | "the")) || determiner == "the" {
            return None;
        }
        let verb = if plural { "are" } else { "is" };
        Some(format!("There {verb} {}{}", first.word, &caption[first.span.end..]))
    }
}

/// Whether the noun phrase takes "are": a plural form, a count above one ("two car"), or
/// a noun that is plural without an "s" ("people").
fn is_plural(caption: &str, object: &crate::text::parse::Object) -> bool {
    let head = caption[object.head.clone()].to_lowercase();
    object.plural
        || object.count.is_some_and(|n| n > 1)
        || matches!(
            head.rsplit(' ').next().unwrap_or(&head),
            "people" | "police" | "cattle" | "men" | "women" | "children"
        )
}

/// "A man is riding a horse" -> "A man riding a horse": the first "is"/"are" of the
/// caption, right before an "-ing" verb and after a noun, and nothing finite elsewhere.
fn participle(caption: &str, tokens: &[tagger::Token]) -> Option<String> {
    let finite = tokens
        .iter()
        .filter(|t| matches!(t.tag, Tag::Auxiliary | Tag::Verb(VerbForm::S) | Tag::There))
        .count();
    if finite != 1 {
        return None;
    }
    tokens.windows(3).find_map(|w| {
        let copula = matches!(w[1].word.as_str(), "is" | "are") && w[1].tag == Tag::Auxiliary;
        (w[0].tag == Tag::Noun && copula && w[2].tag == Tag::Verb(VerbForm::Ing))
            .then(|| format!("{}{}", &caption[..w[1].span.start], &caption[w[2].span.start..]))
    })
}

/// "who is riding" -> "riding": a relative pronoun and "is"/"are" before an "-ing" verb.
fn reduced_clause(caption: &str, tokens: &[tagger::Token]) -> Option<String> {
    tokens.windows(3).find_map(|w| {
        let pronoun = matches!(w[0].word.as_str(), "who" | "that" | "which");
        let copula = matches!(w[1].word.as_str(), "is" | "are");
        (pronoun && copula && w[2].tag == Tag::Verb(VerbForm::Ing))
            .then(|| format!("{}{}", &caption[..w[0].span.start], &caption[w[2].span.start..]))
    })
}

/// One caption's rewrites that kept the graph, and the rules whose rewrite did not.
type Checked = (Vec<(Rule, String)>, Vec<Rule>);

impl Stage for RewriteStage {
    fn name(&self) -> &str {
        "rewrite"
    }

    fn augment(&self, batch: Batch) -> Result<()> {
        let (corpus, rows, out, stats) = (batch.corpus, batch.rows, batch.out, batch.stats);
        let found: Vec<Checked> = rows
            .clone()
            .into_par_iter()
            .map(|row| {
                let caption = &corpus.pairs[row].caption;
                let graph = self.parser.parse(caption);
                let want = meaning(&graph);
                let mut kept = Vec::new();
                let mut changed = Vec::new();
                for (rule, text) in self.rewrites(caption, &graph) {
                    if meaning(&self.parser.parse(&text)) == want {
                        kept.push((rule, text));
                    } else {
                        changed.push(rule);
                    }
                }
                (kept, changed)
            })
            .collect();
        let stats = stats.entry(self.name().to_string()).or_default();
        for ((kept, changed), aug) in found.into_iter().zip(out.iter_mut()) {
            for rule in changed {
                stats.reject(&format!("graph_changed.{}", rule.name()), 1);
            }
            let any = !kept.is_empty();
            for (i, (rule, text)) in kept.into_iter().enumerate() {
                if i >= self.config.max_rewrites {
                    stats.reject("over_max_rewrites", 1);
                    continue;
                }
                stats.produced += 1;
                stats.count(&format!("emitted.{}", rule.name()), 1);
                aug.positives.push(Item {
                    text: Some(text),
                    ref_id: None,
                    kind: "rewrite".into(),
                    generator: "rewrite".into(),
                    params: serde_json::json!({ "rule": rule.name() }).to_string(),
                    score: 1.0,
                });
            }
            if any {
                stats.count("pairs_with_rewrite", 1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> RewriteStage {
        let config = RewriteConfig {
            wordnet_dir: default_wordnet_dir(),
            rules: all_rules(),
            max_rewrites: 3,
        };
        RewriteStage {
            parser: Parser::load(&config.wordnet_dir)
                .unwrap_or_else(|e| panic!("{e} (`make apt-deps` installs wordnet-base)")),
            config,
        }
    }

    fn rewrites(stage: &RewriteStage, caption: &str) -> Vec<(&'static str, String)> {
        let graph = stage.parser.parse(caption);
        stage
            .rewrites(caption, &graph)
            .into_iter()
            .filter(|(_, t)| meaning(&stage.parser.parse(t)) == meaning(&graph))
            .map(|(r, t)| (r.name(), t))
            .collect()
    }

    #[test]
    fn each_rule_on_coco_style_captions() {
        let stage = stage();
        let got = rewrites(&stage, "A man riding a wave on top of a surfboard.");
        assert!(got.contains(&(
            "relative_clause",
            "A man who is riding a wave on top of a surfboard.".to_string()
        )), "{got:?}");
        assert!(got.contains(&(
            "there_insertion",
            "There is a man riding a wave on top of a surfboard.".to_string()
        )), "{got:?}");
        let got = rewrites(&stage, "Two dogs playing with a frisbee in the park");
        assert!(got.contains(&(
            "relative_clause",
            "Two dogs that are playing with a frisbee in the park".to_string()
        )), "{got:?}");
        assert!(got.contains(&(
            "there_insertion",
            "There are two dogs playing with a frisbee in the park".to_string()
        )), "{got:?}");
        // Plural without an "s", and a count on a singular form.
        let got = rewrites(&stage, "Two people playing a video game in a living room.");
        assert!(got.contains(&(
            "relative_clause",
            "Two people that are playing a video game in a living room.".to_string()
        )), "{got:?}");
        assert!(got.iter().all(|(_, t)| !t.contains(" is ")), "{got:?}");
        // The participle may belong to both: no rewrite of the last conjunct alone.
        assert!(rewrites(&stage, "A dish of food and a drink sitting on a table.").is_empty());
        let got = rewrites(&stage, "A man riding a horse on a beach");
        assert!(got.contains(&("finite_verb", "A man is riding a horse on a beach".to_string())), "{got:?}");
        let got = rewrites(&stage, "A man is riding a horse on a beach");
        assert!(got.contains(&("participle", "A man riding a horse on a beach".to_string())), "{got:?}");
        let got = rewrites(&stage, "A kitchen with a stove and a sink");
        assert!(got.contains(&("with_clause", "A kitchen that has a stove and a sink".to_string())), "{got:?}");
        let got = rewrites(&stage, "Two dogs with collars");
        assert!(got.contains(&("with_clause", "Two dogs that have collars".to_string())), "{got:?}");
        // An instrument, not a possession: "with" does not follow the opening phrase.
        let got = rewrites(&stage, "A man cutting a cake with a knife");
        assert!(got.iter().all(|(r, _)| *r != "with_clause"), "{got:?}");
        let got = rewrites(&stage, "a cat that is sitting on a bed");
        assert!(got.contains(&("reduced_clause", "a cat sitting on a bed".to_string())), "{got:?}");
    }

    #[test]
    fn no_pattern_or_a_finite_verb_means_no_rewrite() {
        let stage = stage();
        assert!(rewrites(&stage, "Kitchen, stove and sink").is_empty());
        // "is riding" is finite already: no "There is a man is riding".
        let got = rewrites(&stage, "A man is riding a horse");
        assert!(got.iter().all(|(r, _)| *r != "there_insertion"), "{got:?}");
    }
}
