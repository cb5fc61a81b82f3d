//! Verb forms for the tense rules ("rides" <-> "is riding"), spelled by English rules and
//! then required to exist: the stage keeps a form only when the run's texts use it and
//! the parser's lexicon maps it back to the same base form.

/// Verbs that describe a state, not an action in progress: "seems" does not become "is
/// seeming", nor "a sign reads" "a sign is reading", nor "trees line the street" "trees
/// are lining". Postures stay in ("a cat sits" is "a cat is sitting").
const STATIVE: &[&str] = &[
    "be", "have", "seem", "appear", "contain", "belong", "own", "need", "want", "like",
    "love", "hate", "know", "consist", "include", "resemble", "mean", "matter", "exist",
    "cost", "weigh", "fit", "lack", "deserve", "prefer", "look", "sound", "smell", "taste",
    "feel", "read", "say", "show", "feature", "depict", "indicate", "remain", "match",
    "line", "surround", "cover", "overlook", "border", "fill", "top", "support", "display",
];

/// Whether the present simple and progressive of `lemma` say the same in a caption.
pub fn is_action(lemma: &str) -> bool {
    !STATIVE.contains(&lemma)
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// The "-ing" form by spelling rules: "lie" -> "lying", "ride" -> "riding", "see" ->
/// "seeing", "sit" -> "sitting" (one syllable ending consonant-vowel-consonant), else
/// "eat" -> "eating".
pub fn ing_form(lemma: &str) -> String {
    let b = lemma.as_bytes();
    let n = b.len();
    if let Some(stem) = lemma.strip_suffix("ie") {
        return format!("{stem}ying");
    }
    if n >= 2 && b[n - 1] == b'e' && !matches!(b[n - 2], b'e' | b'y' | b'o') {
        return format!("{}ing", &lemma[..n - 1]);
    }
    let vowel_groups = b
        .iter()
        .enumerate()
        .filter(|&(i, &c)| is_vowel(c) && (i == 0 || !is_vowel(b[i - 1])))
        .count();
    if n >= 3
        && vowel_groups == 1
        && !is_vowel(b[n - 1])
        && !matches!(b[n - 1], b'w' | b'x' | b'y')
        && is_vowel(b[n - 2])
        && !is_vowel(b[n - 3])
    {
        return format!("{lemma}{}ing", b[n - 1] as char);
    }
    format!("{lemma}ing")
}

/// Past participles that spelling rules cannot make, for verbs captions use with an
/// object; regular verbs get "-ed" by [`ed_form`].
const IRREGULAR_PARTICIPLES: &[(&str, &str)] = &[
    ("ride", "ridden"), ("throw", "thrown"), ("eat", "eaten"), ("take", "taken"),
    ("fly", "flown"), ("drive", "driven"), ("hold", "held"), ("catch", "caught"),
    ("hit", "hit"), ("cut", "cut"), ("feed", "fed"), ("lead", "led"), ("swing", "swung"),
    ("bite", "bitten"), ("draw", "drawn"), ("write", "written"), ("see", "seen"),
    ("sell", "sold"), ("buy", "bought"), ("bring", "brought"), ("build", "built"),
    ("give", "given"), ("blow", "blown"), ("shake", "shaken"), ("make", "made"),
    ("hug", "hugged"), ("grab", "grabbed"), ("pet", "petted"), ("dig", "dug"),
    ("drink", "drunk"), ("wear", "worn"), ("beat", "beaten"), ("chase", "chased"),
];

/// The past participle: an irregular form from the list, else "-ed" by spelling rules
/// ("carry" -> "carried", "pull" -> "pulled", "chase" -> "chased", "stop" -> "stopped").
pub fn ed_form(lemma: &str) -> String {
    if let Some((_, form)) = IRREGULAR_PARTICIPLES.iter().find(|(l, _)| *l == lemma) {
        return (*form).to_string();
    }
    let b = lemma.as_bytes();
    let n = b.len();
    if lemma.ends_with('e') {
        return format!("{lemma}d");
    }
    if n >= 2 && b[n - 1] == b'y' && !is_vowel(b[n - 2]) {
        return format!("{}ied", &lemma[..n - 1]);
    }
    let ing = ing_form(lemma);
    // The "-ing" rule doubled the last consonant ("stopping"): so does "-ed".
    match ing.strip_suffix("ing") {
        Some(stem) if stem.len() > n => format!("{stem}ed"),
        _ => format!("{lemma}ed"),
    }
}

/// The third person singular: "ride" -> "rides", "watch" -> "watches", "fly" -> "flies",
/// "go" -> "goes".
pub fn s_form(lemma: &str) -> String {
    let b = lemma.as_bytes();
    let n = b.len();
    if lemma == "have" {
        return "has".into();
    }
    if n >= 2 && b[n - 1] == b'y' && !is_vowel(b[n - 2]) {
        return format!("{}ies", &lemma[..n - 1]);
    }
    if ["s", "sh", "ch", "x", "z", "o"].iter().any(|e| lemma.ends_with(e)) {
        return format!("{lemma}es");
    }
    format!("{lemma}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_rules() {
        for (lemma, ing, s) in [
            ("ride", "riding", "rides"),
            ("lie", "lying", "lies"),
            ("see", "seeing", "sees"),
            ("run", "running", "runs"),
            ("swim", "swimming", "swims"),
            ("eat", "eating", "eats"),
            ("play", "playing", "plays"),
            ("fly", "flying", "flies"),
            ("watch", "watching", "watches"),
            ("visit", "visiting", "visits"),
            ("go", "going", "goes"),
            ("fix", "fixing", "fixes"),
            ("throw", "throwing", "throws"),
        ] {
            assert_eq!(ing_form(lemma), ing);
            assert_eq!(s_form(lemma), s);
        }
        assert!(!is_action("seem") && is_action("ride"));
        for (lemma, ed) in [
            ("ride", "ridden"),
            ("carry", "carried"),
            ("pull", "pulled"),
            ("chase", "chased"),
            ("stop", "stopped"),
            ("play", "played"),
            ("visit", "visited"),
        ] {
            assert_eq!(ed_form(lemma), ed);
        }
    }
}
