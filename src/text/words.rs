//! Word-level helpers every text component shares: tokens, the normalised form texts are
//! compared in, and English function words.

/// Function words dropped by `stop_words = "english"` (TF-IDF) and not counted as
/// content words (the back-translation filter).
pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "an", "and", "any", "are", "as", "at", "be", "been", "being",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "here", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "me", "my",
    "of", "on", "or", "our", "she", "so", "some", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "to", "too", "up", "very", "was", "we", "were",
    "what", "when", "where", "which", "while", "who", "will", "with", "would", "you", "your",
];

/// Lowercased alphanumeric tokens.
pub fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The text as compared for identity and duplicates: tokens joined by single spaces.
pub fn normalize(text: &str) -> String {
    tokens(text).join(" ")
}

/// "a"/"an" as the next word needs it. Spelling rules only, with the few exceptions
/// captions meet ("hour", "one", "unicorn").
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

/// Whether every "a" and "an" of `text` is the one the next word needs ("an open
/// field", not "a open field"); a number after it is not judged ("an 8", "a 3").
pub fn articles_agree(text: &str) -> bool {
    let words = tokens(text);
    words.windows(2).all(|pair| match pair[0].as_str() {
        "a" | "an" if pair[1].starts_with(|c: char| c.is_alphabetic()) => {
            pair[0] == article_for(&pair[1])
        }
        _ => true,
    })
}

/// The last word of a compound name, its head: "train" of "passenger train".
pub fn head_word(name: &str) -> &str {
    name.rsplit(' ').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_agree_with_the_next_word() {
        assert!(articles_agree(
            "A man holding an umbrella and a one-way sign near an hour glass."
        ));
        assert!(articles_agree("an 8 foot tall statue"));
        assert!(!articles_agree(
            "A LITTLE GIRL IS RUNNING WITH HER KITE IN A OPEN FIELD"
        ));
        assert!(!articles_agree(
            "An tusked elephant playing with a fallen tree"
        ));
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
}
