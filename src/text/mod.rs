//! Language, with no model to download: WordNet 3.0, the n-gram language model, word
//! helpers (tokens, normalisation, stop words) and the scene-graph parser. Imports only
//! `core`.

pub mod ngram;
pub mod parse;
pub mod wordnet;
pub mod words;
