//! Tokens and their classes in context. Captions are short noun-heavy phrases, so a
//! lexicon plus a handful of neighbour rules tags them well without a trained model.

use super::lexicon::{Lexicon, WordClass};
use super::Span;
use crate::text::wordnet::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerbForm {
    Base,
    /// Third person singular ("rides").
    S,
    /// Gerund or present participle ("riding").
    Ing,
    /// Past tense or past participle ("parked", "ridden").
    Ed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Determiner,
    Number(u32),
    Adjective,
    Noun,
    Verb(VerbForm),
    Auxiliary,
    Preposition,
    Conjunction,
    RelativePronoun,
    Pronoun,
    Adverb,
    There,
    Possessive,
    Punctuation,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub span: Span,
    /// Lowercased text.
    pub word: String,
    pub tag: Tag,
}

/// Words and punctuation with byte spans. Internal hyphens and apostrophes stay in a word
/// ("t-shirt", "o'clock"); a trailing "'s" is its own token.
pub fn tokenize(text: &str) -> Vec<(Span, String)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (start, c) = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let word_char = |c: char| c.is_alphanumeric();
        if word_char(c) {
            let mut j = i + 1;
            while j < chars.len() {
                let (_, d) = chars[j];
                let joins = (d == '-' || d == '\'' || d == '’' || d == '.')
                    && j + 1 < chars.len()
                    && word_char(chars[j + 1].1)
                    // "man's" splits off "'s"; "o'clock" stays whole.
                    && !(d != '-' && d != '.' && is_clitic(&chars, j + 1));
                // "3.5" keeps its point, "end.Next" does not.
                let joins = joins && (d != '.' || (chars[j - 1].1.is_ascii_digit()));
                if word_char(d) || joins {
                    j += 1;
                } else {
                    break;
                }
            }
            let end = chars.get(j).map_or(text.len(), |(b, _)| *b);
            out.push((start..end, text[start..end].to_lowercase()));
            i = j;
        } else if (c == '\'' || c == '’') && is_clitic(&chars, i + 1) {
            let end = chars.get(i + 2).map_or(text.len(), |(b, _)| *b);
            out.push((start..end, "'s".to_string()));
            i += 2;
        } else {
            let end = chars.get(i + 1).map_or(text.len(), |(b, _)| *b);
            out.push((start..end, c.to_string()));
            i += 1;
        }
    }
    out
}

/// An "s" after an apostrophe that ends the word.
fn is_clitic(chars: &[(usize, char)], s_at: usize) -> bool {
    chars.get(s_at).is_some_and(|(_, c)| *c == 's' || *c == 'S')
        && chars
            .get(s_at + 1)
            .is_none_or(|(_, c)| !c.is_alphanumeric())
}

pub fn verb_form(lexicon: &Lexicon, word: &str) -> VerbForm {
    let lemma = lexicon.verb_lemma(word);
    if lemma == word {
        // "string", "sing": base forms that merely end in "ing".
        return VerbForm::Base;
    }
    if word.ends_with("ing") {
        return VerbForm::Ing;
    }
    if word.ends_with('s') && !word.ends_with("ss") && lemma.len() < word.len() {
        return VerbForm::S;
    }
    VerbForm::Ed
}

/// Tags every token; see the rules in [`decide`].
pub fn tag(lexicon: &Lexicon, text: &str) -> Vec<Token> {
    let words = tokenize(text);
    let classes: Vec<WordClass> = words.iter().map(|(_, w)| lexicon.class(w)).collect();
    let mut tags: Vec<Tag> = Vec::with_capacity(words.len());
    for i in 0..words.len() {
        let prev = tags.last().copied();
        // "parking lot", "cutting board", "cell phone": WordNet noun compounds.
        let compound_first = words.get(i + 1).is_some_and(|(_, next)| {
            matches!(classes[i], WordClass::Open { .. })
                && lexicon.is_collocation(&[&words[i].1, &lexicon.noun_lemma(next)])
        });
        let compound_second = i > 0
            && prev == Some(Tag::Noun)
            && matches!(classes[i], WordClass::Open { noun: true, .. })
            && lexicon.is_collocation(&[&words[i - 1].1, &lexicon.noun_lemma(&words[i].1)]);
        let tag = if compound_first || compound_second {
            Tag::Noun
        } else {
            decide(lexicon, &words, &classes, i, prev)
        };
        tags.push(tag);
    }
    words
        .into_iter()
        .zip(tags)
        .map(|((span, word), tag)| Token { span, word, tag })
        .collect()
}

/// True for a class that can head or continue a noun phrase after the current word.
fn nounish(class: Option<&WordClass>) -> bool {
    matches!(class, Some(WordClass::Open { noun: true, .. }))
}

/// Starts a noun phrase or follows a transitive verb.
fn object_follows(class: Option<&WordClass>) -> bool {
    matches!(
        class,
        Some(
            WordClass::Determiner
                | WordClass::Number(_)
                | WordClass::Pronoun
                | WordClass::Preposition
                | WordClass::Open { .. }
        )
    )
}

fn decide(
    lexicon: &Lexicon,
    words: &[(Span, String)],
    classes: &[WordClass],
    i: usize,
    prev: Option<Tag>,
) -> Tag {
    let word = words[i].1.as_str();
    let next = classes.get(i + 1);
    // "plane sitting on", "dirt covering the": the next word is a participle opening a
    // predicate, so this word ends its noun phrase rather than modifying the next.
    let next_is_participle = matches!(next, Some(WordClass::Open { verb: true, .. }))
        && matches!(
            verb_form(lexicon, &words[i + 1].1),
            VerbForm::Ing | VerbForm::Ed
        )
        // "white stove in": "stove" is far more often the noun than "stave" in the past.
        && lexicon.usage(&words[i + 1].1, Pos::Verb) > lexicon.usage(&words[i + 1].1, Pos::Noun)
        && matches!(
            classes.get(i + 2),
            Some(
                WordClass::Preposition
                    | WordClass::Determiner
                    | WordClass::Number(_)
                    | WordClass::Pronoun
            )
        );
    // Inside a noun phrase, before its head.
    let in_np = matches!(
        prev,
        Some(Tag::Determiner | Tag::Number(_) | Tag::Adjective | Tag::Possessive)
    );
    match classes[i] {
        WordClass::Determiner => {
            // "that" after a noun opens a relative clause ("a man that is ...").
            if word == "that" && matches!(prev, Some(Tag::Noun)) {
                Tag::RelativePronoun
            } else if matches!(
                next,
                Some(WordClass::Auxiliary | WordClass::Preposition | WordClass::Punctuation) | None
            ) && matches!(word, "that" | "this" | "these" | "those" | "all" | "both")
            {
                Tag::Pronoun
            } else {
                Tag::Determiner
            }
        }
        WordClass::Number(n) => Tag::Number(n),
        WordClass::Preposition => Tag::Preposition,
        WordClass::Conjunction => Tag::Conjunction,
        WordClass::RelativePronoun => {
            if matches!(prev, Some(Tag::Noun | Tag::Pronoun)) {
                Tag::RelativePronoun
            } else {
                Tag::Pronoun
            }
        }
        WordClass::Pronoun => Tag::Pronoun,
        WordClass::Auxiliary => {
            // "has"/"have" before a noun phrase is the verb "have".
            if matches!(word, "has" | "have" | "had" | "having")
                && matches!(
                    next,
                    Some(WordClass::Determiner | WordClass::Number(_) | WordClass::Open { .. })
                )
                && !matches!(
                    next,
                    Some(WordClass::Open {
                        verb: true,
                        noun: false,
                        ..
                    })
                )
            {
                Tag::Verb(VerbForm::Base)
            } else if word == "'s" && matches!(prev, Some(Tag::Noun)) {
                Tag::Possessive
            } else {
                Tag::Auxiliary
            }
        }
        WordClass::Adverb => Tag::Adverb,
        WordClass::There => Tag::There,
        WordClass::Possessive => Tag::Possessive,
        WordClass::Punctuation => Tag::Punctuation,
        WordClass::Open { noun, verb, adj } => {
            let prev_plural =
                matches!(prev, Some(Tag::Noun)) && i > 0 && lexicon.is_plural_noun(&words[i - 1].1);
            let next = if next_is_participle { None } else { next };
            // "a black and white dog": adjectives joined by "and" inside a noun phrase.
            let adjective_coordination = in_np
                && matches!(next, Some(WordClass::Conjunction))
                && matches!(classes.get(i + 2), Some(WordClass::Open { adj: true, .. }));
            decide_open(
                lexicon,
                word,
                noun,
                verb,
                adj,
                prev,
                in_np,
                prev_plural,
                adjective_coordination,
                next,
            )
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn decide_open(
    lexicon: &Lexicon,
    word: &str,
    noun: bool,
    verb: bool,
    adj: bool,
    prev: Option<Tag>,
    in_np: bool,
    prev_plural: bool,
    adjective_coordination: bool,
    next: Option<&WordClass>,
) -> Tag {
    let form = if verb {
        verb_form(lexicon, word)
    } else {
        VerbForm::Base
    };
    let modifier_position = nounish(next) && !matches!(next, Some(WordClass::Preposition));
    let after_subject = matches!(prev, Some(Tag::Noun | Tag::Pronoun | Tag::RelativePronoun));
    if verb && form == VerbForm::Ing {
        if in_np {
            return if modifier_position || !noun {
                Tag::Adjective
            } else {
                Tag::Noun
            };
        }
        if matches!(prev, Some(Tag::Preposition)) && noun && !object_follows(next) {
            return Tag::Noun;
        }
        return Tag::Verb(VerbForm::Ing);
    }
    if verb && form == VerbForm::Ed {
        if in_np && (modifier_position || !noun) {
            return Tag::Adjective;
        }
        if matches!(prev, Some(Tag::Auxiliary | Tag::Adverb))
            && adj
            && !matches!(
                next,
                Some(WordClass::Preposition | WordClass::Determiner | WordClass::Open { .. })
            )
        {
            return Tag::Adjective;
        }
        if in_np && noun {
            return Tag::Noun;
        }
        return Tag::Verb(VerbForm::Ed);
    }
    if adj && form == VerbForm::Base && matches!(prev, Some(Tag::Auxiliary | Tag::Adverb)) {
        // "the top is blue": "blue" the colour, not the verb.
        return Tag::Adjective;
    }
    if noun && verb {
        if in_np || matches!(prev, Some(Tag::Preposition)) {
            return if adj && (modifier_position || adjective_coordination) {
                Tag::Adjective
            } else {
                Tag::Noun
            };
        }
        let takes_object = matches!(
            next,
            Some(
                WordClass::Determiner
                    | WordClass::Number(_)
                    | WordClass::Pronoun
                    | WordClass::Preposition
            )
        );
        if after_subject {
            let subject_plural =
                prev_plural || matches!(prev, Some(Tag::Pronoun | Tag::RelativePronoun));
            // "a man sits on", "people walk on"; but "a clock face on" is a compound.
            let agrees = match form {
                VerbForm::S => true,
                _ => subject_plural && takes_object && !lexicon.is_plural_noun(word),
            };
            if agrees && (takes_object || form == VerbForm::S) {
                return Tag::Verb(form);
            }
            return Tag::Noun;
        }
        if matches!(prev, Some(Tag::Auxiliary | Tag::Adverb)) && takes_object {
            return Tag::Verb(form);
        }
        if takes_object
            && lexicon.usage(word, Pos::Verb) > 2 * lexicon.usage(word, Pos::Noun).max(1)
            && prev.is_some()
        {
            return Tag::Verb(form);
        }
        return if adj && modifier_position {
            Tag::Adjective
        } else {
            Tag::Noun
        };
    }
    if noun && adj {
        if modifier_position
            || matches!(prev, Some(Tag::Auxiliary | Tag::Adverb))
            || adjective_coordination
        {
            return Tag::Adjective;
        }
        return Tag::Noun;
    }
    if adj && verb {
        if in_np || matches!(prev, Some(Tag::Auxiliary | Tag::Adverb)) {
            return Tag::Adjective;
        }
        if matches!(
            next,
            Some(WordClass::Determiner | WordClass::Number(_) | WordClass::Pronoun)
        ) {
            return Tag::Verb(form);
        }
        return Tag::Adjective;
    }
    if noun {
        Tag::Noun
    } else if verb {
        Tag::Verb(form)
    } else if adj {
        Tag::Adjective
    } else {
        Tag::Noun
    }
}
