//! In-context synonyms for the `synonym` rule: a curated list of word pairs that mean the
//! same in captions, each kept only when WordNet puts both words in one synset, so a
//! wrong entry (or a WordNet without it) drops the pair instead of changing a meaning.

use std::collections::HashMap;

use crate::text::wordnet::{Pos, WordNet};

/// How a pair may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Both,
    /// Only first -> second: "bicycle" is always a "bike", but a "bike" may be a motorbike.
    Forward,
}

/// (word, synonym, part of speech, direction). Singular and plural forms are listed
/// apart so a replacement never needs inflecting. Left out on purpose: spelling variants
/// ("donut", "colour": a reader sees no paraphrase), words with a second common sense in
/// captions ("rock" music, "picture" as painting, "plane" as a surface, "kid" is kept:
/// COCO's kids are children), pairs WordNet keeps apart ("motorbike" is a small
/// motorcycle; "fridge" is only an electric refrigerator), and adjectives WordNet only calls similar ("tiny", "small").
const PAIRS: &[(&str, &str, Pos, Direction)] = &[
    ("large", "big", Pos::Adj, Direction::Both),
    ("small", "little", Pos::Adj, Direction::Both),
    ("couch", "sofa", Pos::Noun, Direction::Both),
    ("couches", "sofas", Pos::Noun, Direction::Both),
    ("photo", "photograph", Pos::Noun, Direction::Both),
    ("photos", "photographs", Pos::Noun, Direction::Both),
    ("bicycle", "bike", Pos::Noun, Direction::Forward),
    ("bicycles", "bikes", Pos::Noun, Direction::Forward),
    ("airplane", "plane", Pos::Noun, Direction::Forward),
    ("airplanes", "planes", Pos::Noun, Direction::Forward),
    ("aeroplane", "plane", Pos::Noun, Direction::Forward),
    ("television", "tv", Pos::Noun, Direction::Both),
    ("televisions", "tvs", Pos::Noun, Direction::Both),
    ("child", "kid", Pos::Noun, Direction::Both),
    ("children", "kids", Pos::Noun, Direction::Both),
    ("teenager", "teen", Pos::Noun, Direction::Both),
    ("teenagers", "teens", Pos::Noun, Direction::Both),
    ("cellphone", "mobile phone", Pos::Noun, Direction::Both),
    ("automobile", "car", Pos::Noun, Direction::Forward),
    ("automobiles", "cars", Pos::Noun, Direction::Forward),
    ("luggage", "baggage", Pos::Noun, Direction::Both),
    ("kitten", "kitty", Pos::Noun, Direction::Both),
    ("kittens", "kitties", Pos::Noun, Direction::Both),
    ("shop", "store", Pos::Noun, Direction::Both),
    ("shops", "stores", Pos::Noun, Direction::Both),
];

/// The pairs WordNet confirms, as replacement lists by lowercase word (one or two
/// words), and a canonical name per word so two graphs can be compared up to synonyms.
pub struct Synonyms {
    replacements: HashMap<&'static str, Vec<(&'static str, Pos)>>,
    canonical: HashMap<&'static str, &'static str>,
}

impl Synonyms {
    pub fn confirmed(wordnet: &WordNet) -> Synonyms {
        let mut replacements: HashMap<&'static str, Vec<(&'static str, Pos)>> = HashMap::new();
        let mut canonical = HashMap::new();
        for &(a, b, pos, direction) in PAIRS {
            if !shares_synset(wordnet, a, b, pos) {
                continue;
            }
            replacements.entry(a).or_default().push((b, pos));
            if direction == Direction::Both {
                replacements.entry(b).or_default().push((a, pos));
            }
            // Chains ("cellphone", "cell phone" -> "mobile phone") meet at one name.
            let root = *canonical.get(b).unwrap_or(&b);
            canonical.insert(a, root);
            canonical.insert(b, root);
        }
        Synonyms {
            replacements,
            canonical,
        }
    }

    /// Replacements for `word` (lowercase) used as `pos`.
    pub fn of(&self, word: &str, pos: Pos) -> impl Iterator<Item = &'static str> + '_ {
        self.replacements
            .get(word)
            .into_iter()
            .flatten()
            .filter(move |(_, p)| *p == pos)
            .map(|(w, _)| *w)
    }

    /// The name `word` is compared under: itself, or its synonym group's.
    pub fn canonical<'a>(&self, word: &'a str) -> &'a str {
        self.canonical.get(word).copied().unwrap_or(word)
    }

    /// The longest listed word or two-word phrase starting at `words[0]`.
    pub fn listed_phrase(&self, words: &[&str]) -> Option<usize> {
        if words.len() >= 2 && self.replacements.contains_key(format!("{} {}", words[0], words[1]).as_str()) {
            return Some(2);
        }
        words
            .first()
            .filter(|w| self.replacements.contains_key(**w))
            .map(|_| 1)
    }
}

/// Both forms' base forms in one WordNet synset (WordNet spells compounds with "_").
fn shares_synset(wordnet: &WordNet, a: &str, b: &str, pos: Pos) -> bool {
    let lemmas = |w: &str| {
        let w = w.replace(' ', "_");
        let mut forms = wordnet.morphy(&w, pos);
        forms.push(w);
        forms
    };
    let (la, lb) = (lemmas(a), lemmas(b));
    la.iter()
        .any(|x| lb.iter().any(|y| wordnet.related(x, y, pos, 0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse::lexicon::DEFAULT_WORDNET_DIR;

    #[test]
    fn every_listed_pair_is_a_wordnet_synonym() {
        let wordnet = WordNet::load(std::path::Path::new(DEFAULT_WORDNET_DIR))
            .unwrap_or_else(|e| panic!("{e} (`make apt-deps` installs wordnet-base)"));
        let missing: Vec<_> = PAIRS
            .iter()
            .filter(|(a, b, pos, _)| !shares_synset(&wordnet, a, b, *pos))
            .collect();
        assert!(missing.is_empty(), "not synonyms in WordNet: {missing:?}");
        // The check has teeth: neither a hypernym nor a merely similar adjective passes.
        assert!(!shares_synset(&wordnet, "truck", "automobile", Pos::Noun));
        assert!(!shares_synset(&wordnet, "tiny", "small", Pos::Adj));
        let synonyms = Synonyms::confirmed(&wordnet);
        assert_eq!(synonyms.of("bike", Pos::Noun).count(), 0, "one-way pair used backwards");
        assert_eq!(synonyms.canonical("cellphone"), synonyms.canonical("mobile phone"));
        assert_eq!(synonyms.canonical("sofa"), synonyms.canonical("couch"));
    }
}
