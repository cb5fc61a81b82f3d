//! Chunks tagged tokens into noun phrases and predicates, then links them left to right.
//! The rules follow how captions are written: "SUBJECT [who is] VERB [PREP] OBJECT",
//! "SUBJECT PREP OBJECT", "SUBJECT is ADJ", "there is ...", "PREP OBJECT there is SUBJECT",
//! lists joined by "and" or commas, and "X of Y".

use std::path::Path;

use super::lexicon::{AttributeKind, Lexicon, WordClass};
use super::tagger::{self, Tag, Token, VerbForm};
use super::{Attribute, Object, Relation, RelationKind, SceneGraph, Span};
use crate::core::error::Result;

/// Nouns that turn "PREP [the] NOUN of" into one preposition ("on the side of").
const SIDE_NOUNS: &[&str] = &[
    "top", "side", "front", "back", "edge", "corner", "middle", "end", "bottom", "left", "right",
    "center", "centre", "rear", "base", "tip", "surface", "outside", "inside", "rim", "far",
    "other",
];

pub struct Parser {
    lexicon: Lexicon,
    /// Complex prepositions split into words, longest first.
    complex: Vec<Vec<&'static str>>,
}

#[derive(Debug, Clone)]
enum Chunk {
    Np(usize),
    Prep {
        lemma: String,
        span: Span,
        /// "to its left": the object is a pronoun folded into the preposition.
        pronoun_object: bool,
    },
    Verb {
        lemma: String,
        form: VerbForm,
        span: Span,
    },
    Auxiliary,
    Adjectives(Vec<(Span, String)>),
    Conjunction,
    Comma,
    RelativePronoun,
    /// "it" or "them": may refer back to the object of "X with Y ... it".
    Pronoun {
        refers_back: bool,
    },
    There,
    Possessive,
    Other,
}

/// A predicate waiting for its object.
#[derive(Debug, Clone)]
struct Pending {
    sources: Vec<usize>,
    predicate: String,
    span: Span,
    kind: RelationKind,
    /// Passive with an agent: the object of "by" is the subject.
    reversed: bool,
}

impl Pending {
    /// "X of Y": who has whom depends on X.
    fn is_of(&self) -> bool {
        self.predicate == "of"
    }
}

impl Parser {
    pub fn new(lexicon: Lexicon) -> Parser {
        let mut complex: Vec<Vec<&'static str>> = lexicon
            .complex_prepositions()
            .iter()
            .map(|p| p.split(' ').collect())
            .collect();
        complex.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Parser { lexicon, complex }
    }

    /// Loads WordNet from `dir` and builds a parser.
    pub fn load(wordnet_dir: &Path) -> Result<Parser> {
        Ok(Parser::new(Lexicon::load(wordnet_dir)?))
    }

    pub fn lexicon(&self) -> &Lexicon {
        &self.lexicon
    }

    pub fn parse(&self, caption: &str) -> SceneGraph {
        let tokens = tagger::tag(&self.lexicon, caption);
        let mut graph = SceneGraph::default();
        let chunks = self.chunk(caption, &tokens, &mut graph);
        link(&self.lexicon, &chunks, &mut graph);
        graph
    }

    /// A multi-word preposition starting at token `i`: its length in tokens and lemma.
    fn complex_preposition(&self, tokens: &[Token], i: usize) -> Option<(usize, String)> {
        let word = |k: usize| tokens.get(k).map(|t| t.word.as_str());
        for words in &self.complex {
            if words
                .iter()
                .enumerate()
                .all(|(k, w)| word(i + k) == Some(*w))
            {
                return Some((words.len(), words.join(" ")));
            }
        }
        // "on the far side of", "at the top of": PREP [the] SIDE-NOUN of.
        if matches!(
            word(i),
            Some("on" | "in" | "at" | "to" | "by" | "from" | "near")
        ) {
            let mut k = i + 1;
            if word(k) == Some("the") {
                k += 1;
            }
            let mut nouns = Vec::new();
            while let Some(w) = word(k).filter(|w| SIDE_NOUNS.contains(w)) {
                nouns.push(w);
                k += 1;
            }
            if !nouns.is_empty() && nouns.len() <= 2 && word(k) == Some("of") {
                let lemma = format!("{} {} of", word(i)?, nouns.join(" "));
                return Some((k + 1 - i, lemma));
            }
        }
        None
    }

    fn chunk(&self, caption: &str, tokens: &[Token], graph: &mut SceneGraph) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let t = &tokens[i];
            // "to its left", "on its right": a preposition whose object is "it".
            if matches!(t.word.as_str(), "to" | "on" | "at")
                && tokens.get(i + 1).is_some_and(|n| n.word == "its")
                && tokens
                    .get(i + 2)
                    .is_some_and(|n| n.word == "left" || n.word == "right")
            {
                let side = tokens[i + 2].word.clone();
                chunks.push(Chunk::Prep {
                    lemma: format!("{side} of"),
                    span: t.span.start..tokens[i + 2].span.end,
                    pronoun_object: true,
                });
                i += 3;
                continue;
            }
            if let Some((len, lemma)) = self.complex_preposition(tokens, i) {
                chunks.push(Chunk::Prep {
                    lemma,
                    span: t.span.start..tokens[i + len - 1].span.end,
                    pronoun_object: false,
                });
                i += len;
                continue;
            }
            match t.tag {
                Tag::Determiner | Tag::Number(_) | Tag::Adjective | Tag::Noun | Tag::Adverb => {
                    let (consumed, chunk) = self.noun_phrase(caption, tokens, i, graph);
                    if consumed == 0 {
                        chunks.push(Chunk::Other);
                        i += 1;
                    } else {
                        chunks.push(chunk);
                        i += consumed;
                    }
                    continue;
                }
                Tag::Verb(form) => {
                    let lemma = if matches!(t.word.as_str(), "has" | "have" | "had" | "having") {
                        "have".to_string()
                    } else {
                        self.lexicon.verb_lemma(&t.word)
                    };
                    chunks.push(Chunk::Verb {
                        lemma,
                        form,
                        span: t.span.clone(),
                    });
                }
                Tag::Preposition => chunks.push(Chunk::Prep {
                    lemma: t.word.clone(),
                    span: t.span.clone(),
                    pronoun_object: false,
                }),
                Tag::Auxiliary => chunks.push(Chunk::Auxiliary),
                Tag::Conjunction => chunks.push(Chunk::Conjunction),
                Tag::RelativePronoun => chunks.push(Chunk::RelativePronoun),
                Tag::Pronoun => chunks.push(Chunk::Pronoun {
                    refers_back: matches!(t.word.as_str(), "it" | "them"),
                }),
                Tag::There => chunks.push(Chunk::There),
                Tag::Possessive => chunks.push(Chunk::Possessive),
                Tag::Punctuation => chunks.push(if t.word == "," || t.word == ";" {
                    Chunk::Comma
                } else {
                    Chunk::Other
                }),
            }
            i += 1;
        }
        chunks
    }

    /// Reads a noun phrase at `start`: [determiner] modifiers* head. Returns the tokens
    /// consumed (0 when nothing usable) and the chunk: an object, or bare adjectives when no
    /// noun follows them ("is white").
    fn noun_phrase(
        &self,
        caption: &str,
        tokens: &[Token],
        start: usize,
        graph: &mut SceneGraph,
    ) -> (usize, Chunk) {
        let lex = &self.lexicon;
        let mut i = start;
        let mut determiner = None;
        if tokens[i].tag == Tag::Determiner {
            determiner = Some(tokens[i].span.clone());
            i += 1;
        }
        let body_start = i;
        let mut head = None;
        let mut before_preposition = false;
        while i < tokens.len() {
            let tag = tokens[i].tag;
            let continues = match tag {
                Tag::Number(_) | Tag::Adjective | Tag::Noun => true,
                Tag::Adverb => tokens
                    .get(i + 1)
                    .is_some_and(|n| matches!(n.tag, Tag::Adjective | Tag::Number(_))),
                // "black and white dog", "red, white and blue flag".
                Tag::Conjunction | Tag::Punctuation => {
                    (tokens[i].word == "and" || tokens[i].word == ",")
                        && i > body_start
                        && tokens[i - 1].tag == Tag::Adjective
                        && tokens.get(i + 1).is_some_and(|n| n.tag == Tag::Adjective)
                }
                _ => false,
            };
            if !continues {
                break;
            }
            // A complex preposition ends the phrase ("a man on top of ...").
            if i > start && self.complex_preposition(tokens, i).is_some() {
                before_preposition = true;
                break;
            }
            if tag == Tag::Noun {
                head = Some(i);
                // A plural noun followed by a noun-verb word is the verb's subject: stop.
            }
            i += 1;
        }
        // "a red square left of ...": the tagger read "square" as modifying "left"; an
        // adjective that can be a noun heads the phrase when nothing follows it.
        if before_preposition
            && head.is_none_or(|h| h + 1 < i)
            && i > body_start
            && tokens[i - 1].tag == Tag::Adjective
            && matches!(
                lex.class(&tokens[i - 1].word),
                WordClass::Open { noun: true, .. }
            )
        {
            head = Some(i - 1);
        }
        let Some(head) = head else {
            let adjectives: Vec<(Span, String)> = (body_start..i)
                .filter(|&k| tokens[k].tag == Tag::Adjective)
                .map(|k| (tokens[k].span.clone(), tokens[k].word.clone()))
                .collect();
            return if adjectives.is_empty() {
                (0, Chunk::Other)
            } else {
                (i - start, Chunk::Adjectives(adjectives))
            };
        };
        // Nouns right before the head: compound name unless they name a material or colour.
        let mut name_start = head;
        while name_start > body_start
            && tokens[name_start - 1].tag == Tag::Noun
            && !lex.is_material(&tokens[name_start - 1].word)
            && !lex.is_colour(&tokens[name_start - 1].word)
        {
            name_start -= 1;
        }
        let head_word = &tokens[head].word;
        let mut name: Vec<String> = tokens[name_start..head]
            .iter()
            .map(|t| t.word.clone())
            .collect();
        name.push(lex.noun_lemma(head_word));
        let object_index = graph.objects.len();
        let mut count = None;
        let mut attributes = Vec::new();
        let mut k = body_start;
        while k < name_start {
            let t = &tokens[k];
            match t.tag {
                Tag::Number(n) => {
                    count = Some(n);
                    if n > 1 {
                        attributes.push((t.span.clone(), n.to_string(), AttributeKind::Count));
                    }
                }
                Tag::Adverb | Tag::Adjective | Tag::Noun => {
                    // "partly cloudy", "dark green": one attribute of two words.
                    let joins_next = tokens.get(k + 1).is_some_and(|n| {
                        k + 1 < name_start
                            && n.tag == Tag::Adjective
                            && (t.tag == Tag::Adverb
                                || (lex.is_colour_shade(&t.word) && lex.is_colour(&n.word)))
                    });
                    let (span, value) = if joins_next {
                        let n = &tokens[k + 1];
                        k += 1;
                        (
                            t.span.start..n.span.end,
                            caption[t.span.start..n.span.end].to_lowercase(),
                        )
                    } else if t.tag == Tag::Adverb {
                        k += 1;
                        continue;
                    } else {
                        (t.span.clone(), t.word.clone())
                    };
                    let kind = lex.attribute_kind(&value);
                    attributes.push((span, value, kind));
                }
                _ => {}
            }
            k += 1;
        }
        graph.objects.push(Object {
            phrase: tokens[start].span.start..tokens[head].span.end,
            head: tokens[name_start].span.start..tokens[head].span.end,
            name: name.join(" "),
            plural: lex.is_plural_noun(head_word),
            count,
            determiner,
        });
        for (span, value, kind) in attributes {
            graph.attributes.push(Attribute {
                object: object_index,
                span,
                value,
                kind,
            });
        }
        (head + 1 - start, Chunk::Np(object_index))
    }
}

/// Links noun phrases through the predicates between them.
fn link(lex: &Lexicon, chunks: &[Chunk], graph: &mut SceneGraph) {
    let mut subject: Vec<usize> = Vec::new();
    let mut last: Vec<usize> = Vec::new();
    let mut pending: Option<Pending> = None;
    // Sources of the last relation, for "X left of Y and above Z".
    let mut last_sources: Vec<usize> = Vec::new();
    let mut relative_source: Option<Vec<usize>> = None;
    // "with Y" seen after X: (X, Y, index of the emitted relation).
    let mut with: Option<(Vec<usize>, Vec<usize>, usize)> = None;
    // A fronted phrase "beside the star there is ...": predicate, then its object.
    let mut fronted: Option<(Pending, Vec<usize>)> = None;
    let mut after_conjunction = false;
    let mut i = 0;
    while i < chunks.len() {
        match &chunks[i] {
            Chunk::Np(first) => {
                let (group, next) = np_group(chunks, i, *first, pending.is_some());
                if let Some(p) = pending.take() {
                    if p.is_of() {
                        let source_is_quantity = p.sources.iter().all(|&s| {
                            let name = &graph.objects[s].name;
                            lex.is_quantity_noun(name.rsplit(' ').next().unwrap_or(name))
                        });
                        if source_is_quantity {
                            // Quantity nouns vanish: drop their relations too.
                            retarget(graph, &p.sources, &group);
                            if subject == p.sources {
                                subject = group.clone();
                            }
                            last = group;
                            i = next;
                            after_conjunction = false;
                            continue;
                        }
                        let container = p.sources.iter().all(|&s| {
                            let name = &graph.objects[s].name;
                            lex.is_container_noun(name.rsplit(' ').next().unwrap_or(name))
                        });
                        if container {
                            emit(
                                graph,
                                &p.sources,
                                "have",
                                &group,
                                p.span.clone(),
                                RelationKind::Have,
                            );
                        } else {
                            emit(
                                graph,
                                &group,
                                "have",
                                &p.sources,
                                p.span.clone(),
                                RelationKind::Have,
                            );
                        }
                        last = p.sources.clone();
                    } else {
                        if p.reversed {
                            emit(
                                graph,
                                &group,
                                &p.predicate,
                                &p.sources,
                                p.span.clone(),
                                p.kind,
                            );
                        } else {
                            let at = graph.relations.len();
                            emit(
                                graph,
                                &p.sources,
                                &p.predicate,
                                &group,
                                p.span.clone(),
                                p.kind,
                            );
                            if p.predicate == "with" {
                                with = Some((p.sources.clone(), group.clone(), at));
                            }
                        }
                        last_sources = p.sources.clone();
                        last = group;
                    }
                } else if let Some((_, object)) = fronted.as_mut().filter(|(_, o)| o.is_empty()) {
                    *object = group.clone();
                    last = group;
                } else {
                    if let Some((p, object)) = fronted.take() {
                        emit(graph, &group, &p.predicate, &object, p.span.clone(), p.kind);
                    }
                    if !(after_conjunction
                        && !subject.is_empty()
                        && next_is_predicate(chunks, next) == Some(false))
                    {
                        subject = group.clone();
                    }
                    last = group;
                }
                after_conjunction = false;
                i = next;
                continue;
            }
            Chunk::Prep {
                lemma,
                span,
                pronoun_object,
            } => {
                if *pronoun_object {
                    // "X with Y to its left": Y is left of X; "with" was only glue.
                    if let Some((x, y, at)) = with.take() {
                        graph.relations.truncate(at);
                        emit(graph, &y, lemma, &x, span.clone(), RelationKind::Spatial);
                    }
                    i += 1;
                    continue;
                }
                let sources = if after_conjunction && !last_sources.is_empty() {
                    last_sources.clone()
                } else {
                    last.clone()
                };
                let p = Pending {
                    sources,
                    predicate: lemma.clone(),
                    span: span.clone(),
                    kind: if lemma == "of" {
                        RelationKind::Have
                    } else {
                        RelationKind::Spatial
                    },
                    reversed: false,
                };
                if p.sources.is_empty() {
                    fronted = Some((p, Vec::new()));
                } else {
                    pending = Some(p);
                }
            }
            Chunk::Verb { lemma, form, span } => {
                let sources = relative_source.take().unwrap_or_else(|| {
                    if subject.is_empty() {
                        last.clone()
                    } else {
                        subject.clone()
                    }
                });
                let mut predicate = lemma.clone();
                let mut span = span.clone();
                let mut reversed = false;
                // A particle or preposition belongs to the verb ("sitting on", "looking at").
                if let Some(Chunk::Prep {
                    lemma: prep,
                    span: prep_span,
                    pronoun_object: false,
                }) = chunks.get(i + 1)
                {
                    if prep == "by" && *form == VerbForm::Ed && !lex.is_placement_verb(lemma) {
                        reversed = true;
                    } else if prep != "of" {
                        predicate = format!("{lemma} {prep}");
                    }
                    span = span.start..prep_span.end;
                    i += 1;
                }
                let kind = if lemma == "have" {
                    RelationKind::Have
                } else {
                    RelationKind::Verb
                };
                last_sources = sources.clone();
                pending = (!sources.is_empty()).then_some(Pending {
                    sources,
                    predicate,
                    span,
                    kind,
                    reversed,
                });
            }
            Chunk::Adjectives(adjectives) => {
                // "the stove is white": predicative adjectives describe the subject.
                let owners = if subject.is_empty() { &last } else { &subject };
                if matches!(i.checked_sub(1).map(|k| &chunks[k]), Some(Chunk::Auxiliary)) {
                    for &o in owners {
                        for (span, value) in adjectives {
                            graph.attributes.push(Attribute {
                                object: o,
                                span: span.clone(),
                                value: value.clone(),
                                kind: lex.attribute_kind(value),
                            });
                        }
                    }
                }
            }
            Chunk::Possessive => {
                // "the player's socks": the player has the socks.
                if let Some(Chunk::Np(owned)) = chunks.get(i + 1) {
                    let owners = last.clone();
                    emit(graph, &owners, "have", &[*owned], 0..0, RelationKind::Have);
                    last = vec![*owned];
                    if subject == owners {
                        subject = last.clone();
                    }
                    i += 2;
                    continue;
                }
            }
            Chunk::RelativePronoun => relative_source = Some(last.clone()),
            Chunk::Conjunction => {
                after_conjunction = true;
                i += 1;
                continue;
            }
            Chunk::Comma => {
                pending = None;
                subject.clear();
            }
            Chunk::There => subject.clear(),
            Chunk::Pronoun { refers_back: true } => {
                // "X with Y above it": Y is above X; "with" was only glue.
                if let (Some(p), Some((x, y, at))) = (&pending, &with) {
                    if p.sources == *y && !p.reversed && !p.is_of() {
                        graph.relations.truncate(*at);
                        emit(graph, y, &p.predicate, x, p.span.clone(), p.kind);
                        pending = None;
                        with = None;
                    }
                }
            }
            Chunk::Auxiliary | Chunk::Pronoun { .. } | Chunk::Other => {}
        }
        after_conjunction = false;
        i += 1;
    }
}

/// "a cat and a dog": noun phrases joined by "and" (or commas inside a list) act together,
/// unless the later one starts a clause of its own ("a man rides a horse and a dog runs").
fn np_group(
    chunks: &[Chunk],
    start: usize,
    first: usize,
    object_position: bool,
) -> (Vec<usize>, usize) {
    let mut group = vec![first];
    let mut i = start + 1;
    loop {
        let joined = matches!(chunks.get(i), Some(Chunk::Conjunction));
        let new_clause = object_position && next_is_predicate(chunks, i + 2) == Some(true);
        match (joined, chunks.get(i + 1)) {
            (true, Some(Chunk::Np(next))) if !new_clause => {
                group.push(*next);
                i += 2;
            }
            _ => break,
        }
    }
    (group, i)
}

/// Whether the chunk at `i` starts a predicate of its own (a verb or an auxiliary).
fn next_is_predicate(chunks: &[Chunk], i: usize) -> Option<bool> {
    chunks.get(i).map(|c| {
        matches!(
            c,
            Chunk::Verb { .. } | Chunk::Auxiliary | Chunk::RelativePronoun
        )
    })
}

fn emit(
    graph: &mut SceneGraph,
    subjects: &[usize],
    predicate: &str,
    objects: &[usize],
    span: Span,
    kind: RelationKind,
) {
    for &s in subjects {
        for &o in objects {
            if s != o {
                graph.relations.push(Relation {
                    subject: s,
                    object: o,
                    predicate: predicate.to_string(),
                    span: span.clone(),
                    kind,
                });
            }
        }
    }
}

/// Points relations of quantity nouns at what they quantify ("a group of people on X").
fn retarget(graph: &mut SceneGraph, from: &[usize], to: &[usize]) {
    let Some(&target) = to.first() else { return };
    for r in &mut graph.relations {
        if from.contains(&r.subject) {
            r.subject = target;
        }
        if from.contains(&r.object) {
            r.object = target;
        }
    }
    for a in &mut graph.attributes {
        if from.contains(&a.object) && a.kind == AttributeKind::Count {
            a.object = target;
        }
    }
    graph.attributes.retain(|a| !from.contains(&a.object));
}
