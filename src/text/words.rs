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
