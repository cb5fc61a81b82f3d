//! The samples a run produces: the items the stages attach to each pair, and the
//! per-stage statistics the manifest records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One generated sample attached to a pair: a positive, a negative or a neighbour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The text, for text items.
    pub text: Option<String>,
    /// The id of what it refers to: another pair's uid, an image or text id.
    pub ref_id: Option<String>,
    /// What it is, e.g. `tfidf`, `backtranslation`, `replace_attribute`.
    pub kind: String,
    /// The stage that made it.
    pub generator: String,
    /// Generator parameters and details as a JSON object (edit spans, rank, pivot, ...).
    pub params: String,
    /// Similarity or distance, as the kind documents.
    pub score: f32,
}

/// Everything the stages attached to one pair.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Augmented {
    pub positives: Vec<Item>,
    pub negatives: Vec<Item>,
    pub neighbours: Vec<Item>,
}

/// What one stage did: items produced, candidates rejected by reason, time taken.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageStats {
    pub produced: u64,
    pub rejected: BTreeMap<String, u64>,
    pub seconds: f64,
    /// Anything else worth counting (cache hits, translator starts, ...).
    #[serde(default)]
    pub counters: BTreeMap<String, u64>,
}

impl StageStats {
    pub fn reject(&mut self, reason: &str, n: u64) {
        if n > 0 {
            *self.rejected.entry(reason.to_string()).or_insert(0) += n;
        }
    }

    pub fn count(&mut self, counter: &str, n: u64) {
        *self.counters.entry(counter.to_string()).or_insert(0) += n;
    }

    pub fn add(&mut self, other: &StageStats) {
        self.produced += other.produced;
        for (reason, n) in &other.rejected {
            self.reject(reason, *n);
        }
        for (counter, n) in &other.counters {
            self.count(counter, *n);
        }
        self.seconds += other.seconds;
    }
}

/// Stage name -> statistics.
pub type Stats = BTreeMap<String, StageStats>;
