//! Relations that contradict one another. A relation edit must make the caption false,
//! so it never draws just any other preposition or verb: "next to" -> "in front of" and
//! "in the grass" -> "in the middle of the grass" can both stay true. It replaces a
//! relation with one that cannot hold at the same time (on/under, in front of/behind,
//! left/right, sitting/standing, holding/throwing, ...), and a relation with no such
//! opposite is left alone.

/// Whole prepositions (or the particle of a verb) and what contradicts them.
const SPATIAL: &[(&str, &[&str])] = &[
    ("in front of", &["behind"]),
    ("behind", &["in front of"]),
    ("on top of", &["underneath", "under"]),
    ("inside of", &["outside of"]),
    ("outside of", &["inside of"]),
    ("inside", &["outside"]),
    ("outside", &["inside"]),
    ("out of", &["into"]),
    ("into", &["out of"]),
    ("towards", &["away from"]),
    ("toward", &["away from"]),
    ("away from", &["towards"]),
    ("above", &["below", "under"]),
    ("over", &["under"]),
    ("below", &["above"]),
    ("beneath", &["above"]),
    ("under", &["on", "above"]),
    ("underneath", &["on top of"]),
    ("on", &["under"]),
    ("onto", &["off"]),
    ("off", &["onto"]),
    ("in", &["outside"]),
    ("near", &["far from"]),
    ("next to", &["far from"]),
    ("beside", &["far from"]),
];

/// Single words inside a longer phrase that flip it: "to the left of" -> "to the right
/// of", "at the top of" -> "at the bottom of".
const WORDS: &[(&str, &str)] = &[
    ("left", "right"),
    ("right", "left"),
    ("top", "bottom"),
    ("bottom", "top"),
    ("front", "back"),
    ("back", "front"),
];

/// Verbs (lemmas) of one group exclude each other: one cannot sit and stand, or throw a
/// ball and catch it, at once. Pairs where one implies or often goes with the other
/// (swinging a racket is holding it) are left out.
const VERB_GROUPS: &[&[&str]] = &[
    POSTURES,
    &["throw", "catch", "kick"],
    &["eat", "cut", "cook", "serve"],
    &["ride", "push", "walk"],
    &["open", "close"],
    &["enter", "leave", "exit"],
    &["fly", "land"],
];

/// Body postures and gaits: only a person's or a mammal's are told apart at a glance (a
/// bird "sitting" on a branch is standing on it; a cup "sitting" on a desk is lying there).
/// "lay" is left out: captions use it for "lie".
pub const POSTURES: &[&str] = &["sit", "stand", "lie", "kneel", "walk", "run", "jump"];

/// Phrases that contradict the preposition `written` (lowercase), in preference order.
pub fn spatial(written: &str) -> Vec<String> {
    let written = written.trim();
    if let Some((_, opposites)) = SPATIAL.iter().find(|(p, _)| *p == written) {
        return opposites.iter().map(|s| s.to_string()).collect();
    }
    let words: Vec<&str> = written.split(' ').collect();
    if words.len() < 2 {
        return Vec::new();
    }
    let flipped: Vec<String> = words
        .iter()
        .map(|w| {
            WORDS
                .iter()
                .find(|(from, _)| from == w)
                .map_or(w.to_string(), |(_, to)| to.to_string())
        })
        .collect();
    let flipped = flipped.join(" ");
    if flipped == written {
        Vec::new()
    } else {
        vec![flipped]
    }
}

/// Verb lemmas that contradict `lemma` (the lemma of a verb's head word).
pub fn verbs(lemma: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for group in VERB_GROUPS {
        if group.contains(&lemma) {
            out.extend(group.iter().filter(|v| **v != lemma));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepositions_flip_to_their_opposite() {
        assert_eq!(spatial("on"), ["under"]);
        assert_eq!(spatial("in front of"), ["behind"]);
        assert_eq!(spatial("to the left of"), ["to the right of"]);
        assert_eq!(spatial("on its right"), ["on its left"]);
        assert_eq!(spatial("at the top of"), ["at the bottom of"]);
    }

    #[test]
    fn no_opposite_means_no_edit() {
        // "in the middle of" has no opposite a reader would call false for sure.
        assert!(spatial("in the middle of").is_empty());
        assert!(spatial("with").is_empty());
        assert!(spatial("of").is_empty());
        assert!(spatial("across").is_empty());
    }

    #[test]
    fn synonyms_are_never_opposites() {
        for (p, opposites) in SPATIAL {
            for o in *opposites {
                assert_ne!(
                    crate::text::parse::lexicon::canonical_spatial(p),
                    crate::text::parse::lexicon::canonical_spatial(o),
                    "{p} -> {o}"
                );
            }
        }
    }

    #[test]
    fn verbs_stay_in_their_group() {
        assert!(verbs("sit").contains(&"stand"));
        assert!(verbs("catch").contains(&"throw"));
        // Swinging a racket is holding it: no contrast.
        assert!(verbs("hold").is_empty());
        assert!(!verbs("swing").contains(&"hold"));
        assert!(verbs("ride").contains(&"push"));
        assert!(verbs("smile").is_empty());
    }
}
