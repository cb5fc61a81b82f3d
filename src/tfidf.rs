//! Sentence-level hard negatives: for each caption, the captions of *other* images with
//! the highest TF-IDF cosine similarity.
//!
//! Weights follow scikit-learn's `TfidfVectorizer` so results can be checked against it:
//! tf is the raw count (or `1 + ln tf` when sublinear), idf is `ln((1 + n) / (1 + df)) + 1`
//! with smoothing (`ln(n / df) + 1` without), and every vector is L2-normalised.
//!
//! Mining is exact: an inverted index (CSR postings, doc ids ascending) finds the
//! captions that share a term with the query, with MaxScore-style pruning of common
//! terms (see [`TfidfIndex::top_k`]). Memory is the postings (8 bytes per non-zero)
//! plus a few bytes per caption per thread, so a million captions need a few hundred MB.
//!
//! Ranking rule: higher score first; equal scores go to the lower corpus index (input
//! order). Candidates from the query's own image, with score <= 0, or with score above
//! `max_similarity` (near-duplicates are paraphrases, not negatives) are excluded.

use std::collections::HashMap;
use std::ops::Range;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::record::Corpus;
use crate::stage::{Augmented, Item, Stage, Stats};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TfidfConfig {
    /// Negatives kept per caption.
    pub k: usize,
    pub lowercase: bool,
    /// Shortest token kept, in characters (scikit-learn's default pattern keeps 2+).
    pub min_token_chars: usize,
    /// `"none"` or `"english"` (a built-in list of function words).
    pub stop_words: StopWords,
    /// Further stop words, matched after lowercasing.
    pub extra_stop_words: Vec<String>,
    /// Terms in fewer captions than this are dropped.
    pub min_df: usize,
    pub sublinear_tf: bool,
    pub smooth_idf: bool,
    /// Candidates above this cosine are near-duplicates and skipped.
    pub max_similarity: f32,
    /// Speed only, never results: terms in more captions than this are skipped while
    /// gathering candidates [default: 1% of the corpus, at least 64].
    pub common_df: Option<usize>,
}

impl Default for TfidfConfig {
    fn default() -> Self {
        TfidfConfig {
            k: 5,
            lowercase: true,
            min_token_chars: 2,
            stop_words: StopWords::None,
            extra_stop_words: Vec::new(),
            min_df: 1,
            sublinear_tf: false,
            smooth_idf: true,
            max_similarity: 0.9,
            common_df: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopWords {
    None,
    English,
}

/// Function words dropped by `stop_words = "english"`.
const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "an", "and", "any", "are", "as", "at", "be", "been", "being",
    "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he",
    "her", "here", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "me", "my",
    "of", "on", "or", "our", "she", "so", "some", "than", "that", "the", "their", "them", "then",
    "there", "these", "they", "this", "those", "to", "too", "up", "very", "was", "we", "were",
    "what", "when", "where", "which", "while", "who", "will", "with", "would", "you", "your",
];

impl TfidfConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.k == 0 {
            return Err("k must be at least 1".into());
        }
        if self.min_df == 0 {
            return Err("min_df must be at least 1".into());
        }
        if !(self.max_similarity > 0.0 && self.max_similarity <= 1.0) {
            return Err("max_similarity must be in (0, 1]".into());
        }
        Ok(())
    }
}

/// Splits text into word tokens: maximal runs of alphanumerics or `_` (scikit-learn's
/// `\w`), lowercased if configured, at least `min_token_chars` long, minus stop words.
pub struct Tokenizer {
    lowercase: bool,
    min_chars: usize,
    stop: std::collections::HashSet<String>,
}

impl Tokenizer {
    pub fn new(config: &TfidfConfig) -> Self {
        let mut stop: std::collections::HashSet<String> = config
            .extra_stop_words
            .iter()
            .map(|w| w.to_lowercase())
            .collect();
        if config.stop_words == StopWords::English {
            stop.extend(ENGLISH_STOP_WORDS.iter().map(|w| w.to_string()));
        }
        Tokenizer {
            lowercase: config.lowercase,
            min_chars: config.min_token_chars,
            stop,
        }
    }

    pub fn tokens<'a>(&'a self, text: &'a str) -> impl Iterator<Item = String> + 'a {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(move |t| t.chars().count() >= self.min_chars)
            .map(move |t| {
                if self.lowercase {
                    t.to_lowercase()
                } else {
                    t.to_string()
                }
            })
            .filter(move |t| !self.stop.contains(t.as_str()))
    }
}

/// One ranked neighbour: corpus index and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub doc: u32,
    pub score: f32,
}

/// The TF-IDF model of a corpus with its inverted index.
pub struct TfidfIndex {
    /// Per doc: (term, weight), terms ascending, L2-normalised.
    docs: Vec<Vec<(u32, f32)>>,
    /// CSR postings: for term t, `post_docs[post_start[t]..post_start[t+1]]`.
    post_start: Vec<usize>,
    post_docs: Vec<u32>,
    post_weights: Vec<f32>,
    /// Per term, its largest weight in any doc (the pruning bound).
    max_weight: Vec<f32>,
    /// Terms in more docs than this are "common": their postings are walked only when
    /// pruning cannot prove the answer.
    common_df: usize,
}

impl TfidfIndex {
    pub fn build<S: AsRef<str> + Sync>(texts: &[S], config: &TfidfConfig) -> TfidfIndex {
        let tokenizer = Tokenizer::new(config);
        let tokenized: Vec<Vec<String>> = texts
            .par_iter()
            .map(|t| tokenizer.tokens(t.as_ref()).collect())
            .collect();

        // Term ids in order of first occurrence: deterministic, independent of threads.
        let mut vocab: HashMap<&str, u32> = HashMap::new();
        let mut df: Vec<u32> = Vec::new();
        let mut counted: Vec<Vec<(u32, u32)>> = Vec::with_capacity(texts.len());
        for tokens in &tokenized {
            let mut ids: Vec<u32> = tokens
                .iter()
                .map(|t| {
                    let next = vocab.len() as u32;
                    *vocab.entry(t.as_str()).or_insert_with(|| {
                        df.push(0);
                        next
                    })
                })
                .collect();
            ids.sort_unstable();
            let mut counts: Vec<(u32, u32)> = Vec::new();
            for id in ids {
                match counts.last_mut() {
                    Some((last, c)) if *last == id => *c += 1,
                    _ => counts.push((id, 1)),
                }
            }
            for &(id, _) in &counts {
                df[id as usize] += 1;
            }
            counted.push(counts);
        }

        let n = texts.len() as f64;
        let idf: Vec<f64> = df
            .iter()
            .map(|&d| {
                if (d as usize) < config.min_df {
                    0.0
                } else if config.smooth_idf {
                    ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0
                } else {
                    (n / d as f64).ln() + 1.0
                }
            })
            .collect();

        let docs: Vec<Vec<(u32, f32)>> = counted
            .par_iter()
            .map(|counts| {
                let mut weighted: Vec<(u32, f64)> = counts
                    .iter()
                    .filter(|(t, _)| idf[*t as usize] > 0.0)
                    .map(|&(t, c)| {
                        let tf = if config.sublinear_tf {
                            1.0 + (c as f64).ln()
                        } else {
                            c as f64
                        };
                        (t, tf * idf[t as usize])
                    })
                    .collect();
                let norm = weighted.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
                if norm > 0.0 {
                    for (_, w) in &mut weighted {
                        *w /= norm;
                    }
                }
                weighted.into_iter().map(|(t, w)| (t, w as f32)).collect()
            })
            .collect();

        let mut post_start = vec![0usize; df.len() + 1];
        for doc in &docs {
            for &(t, _) in doc {
                post_start[t as usize + 1] += 1;
            }
        }
        for t in 0..df.len() {
            post_start[t + 1] += post_start[t];
        }
        let nnz = post_start[df.len()];
        let mut fill = post_start.clone();
        let mut post_docs = vec![0u32; nnz];
        let mut post_weights = vec![0f32; nnz];
        for (d, doc) in docs.iter().enumerate() {
            for &(t, w) in doc {
                let slot = &mut fill[t as usize];
                post_docs[*slot] = d as u32;
                post_weights[*slot] = w;
                *slot += 1;
            }
        }
        let max_weight = (0..df.len())
            .map(|t| {
                post_weights[post_start[t]..post_start[t + 1]]
                    .iter()
                    .fold(0f32, |m, &w| m.max(w))
            })
            .collect();
        TfidfIndex {
            docs,
            post_start,
            post_docs,
            post_weights,
            max_weight,
            common_df: config.common_df.unwrap_or((texts.len() / 100).max(64)),
        }
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn postings(&self, term: u32) -> (&[u32], &[f32]) {
        let range = self.post_start[term as usize]..self.post_start[term as usize + 1];
        (&self.post_docs[range.clone()], &self.post_weights[range])
    }

    fn df(&self, term: u32) -> usize {
        self.post_start[term as usize + 1] - self.post_start[term as usize]
    }

    /// Cosine of two docs: products summed in ascending term order, the same order
    /// [`Self::scatter`] adds them in, so both give bit-identical scores.
    fn dot(&self, a: usize, b: usize) -> f32 {
        let (mut x, mut y) = (
            self.docs[a].iter().peekable(),
            self.docs[b].iter().peekable(),
        );
        let mut sum = 0f32;
        while let (Some(&&(ta, wa)), Some(&&(tb, wb))) = (x.peek(), y.peek()) {
            match ta.cmp(&tb) {
                std::cmp::Ordering::Less => {
                    x.next();
                }
                std::cmp::Ordering::Greater => {
                    y.next();
                }
                std::cmp::Ordering::Equal => {
                    sum += wa * wb;
                    x.next();
                    y.next();
                }
            }
        }
        sum
    }

    /// Adds the cosine of `query` to every doc into `acc`.
    fn scatter(&self, query: usize, acc: &mut [f32]) {
        for &(t, wq) in &self.docs[query] {
            let (docs, weights) = self.postings(t);
            for (&d, &wd) in docs.iter().zip(weights) {
                acc[d as usize] += wq * wd;
            }
        }
    }

    /// Top `k` docs for doc `query`, skipping docs whose `groups` entry equals the
    /// query's (its own image) and scores outside (0, max_similarity]. Also returns how
    /// many candidates the ceiling removed.
    ///
    /// Exact, with MaxScore-style pruning: postings of common terms (df above
    /// `common_df`) are not walked; only docs sharing a rarer term are scored. A doc
    /// sharing only common terms scores at most the sum of their largest contributions,
    /// so when the k-th best candidate beats that bound the answer is final; otherwise
    /// the query falls back to a full scatter over all postings.
    pub fn top_k(
        &self,
        query: usize,
        groups: &[u32],
        k: usize,
        max_similarity: f32,
        scratch: &mut Scratch,
    ) -> (Vec<Hit>, u64) {
        let mut top = TopK::new(k, groups[query], max_similarity);
        let mut common_bound = 0f32;
        scratch.touched.clear();
        for &(t, wq) in &self.docs[query] {
            if self.df(t) > self.common_df {
                common_bound += wq * self.max_weight[t as usize];
                continue;
            }
            for &d in self.postings(t).0 {
                if !std::mem::replace(&mut scratch.seen[d as usize], true) {
                    scratch.touched.push(d);
                }
            }
        }
        // Ascending doc order makes ties go to the lower index, as documented.
        scratch.touched.sort_unstable();
        for &d in &scratch.touched {
            scratch.seen[d as usize] = false;
            top.offer(d, self.dot(query, d as usize), groups);
        }
        // The margin covers rounding in the bound's own summation.
        let bound = common_bound * (1.0 + 1e-5) + 1e-6;
        if common_bound == 0.0 || top.best.len() == k && top.best[k - 1].score > bound {
            return (top.best, top.above_ceiling);
        }
        let mut top = TopK::new(k, groups[query], max_similarity);
        self.scatter(query, &mut scratch.acc);
        for (d, slot) in scratch.acc.iter_mut().enumerate() {
            top.offer(d as u32, std::mem::take(slot), groups);
        }
        (top.best, top.above_ceiling)
    }

    /// Scratch space for [`Self::top_k`], one per thread.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            acc: vec![0.0; self.len()],
            seen: vec![false; self.len()],
            touched: Vec::new(),
        }
    }
}

/// Per-thread buffers of corpus length; left cleared after every query.
pub struct Scratch {
    acc: Vec<f32>,
    seen: Vec<bool>,
    touched: Vec<u32>,
}

/// The running top k; docs must be offered in ascending order.
struct TopK {
    k: usize,
    own_group: u32,
    ceiling: f32,
    best: Vec<Hit>,
    above_ceiling: u64,
}

impl TopK {
    fn new(k: usize, own_group: u32, ceiling: f32) -> Self {
        TopK {
            k,
            own_group,
            ceiling,
            best: Vec::with_capacity(k + 1),
            above_ceiling: 0,
        }
    }

    fn offer(&mut self, doc: u32, score: f32, groups: &[u32]) {
        if score <= 0.0 || groups[doc as usize] == self.own_group {
            return;
        }
        if score > self.ceiling {
            self.above_ceiling += 1;
            return;
        }
        // Docs arrive in ascending order, so an equal score never displaces a kept doc.
        if self.best.len() == self.k && score <= self.best[self.k - 1].score {
            return;
        }
        let at = self.best.partition_point(|h| h.score >= score);
        self.best.insert(at, Hit { doc, score });
        self.best.truncate(self.k);
    }
}

/// The `tfidf` stage: attaches the top-k TF-IDF neighbours from other images as
/// negatives of kind `tfidf`, scored by cosine similarity.
pub struct TfidfStage {
    config: TfidfConfig,
    index: TfidfIndex,
    /// Per pair, a dense id of its image (dataset + image id).
    groups: Vec<u32>,
}

impl TfidfStage {
    pub fn build(config: TfidfConfig, corpus: &Corpus) -> TfidfStage {
        let captions: Vec<&str> = corpus.pairs.iter().map(|p| p.caption.as_str()).collect();
        let index = TfidfIndex::build(&captions, &config);
        let mut image_ids: HashMap<(&str, &str), u32> = HashMap::new();
        let groups = corpus
            .pairs
            .iter()
            .map(|p| {
                let next = image_ids.len() as u32;
                *image_ids
                    .entry((p.dataset.as_str(), p.image_id.as_str()))
                    .or_insert(next)
            })
            .collect();
        TfidfStage {
            config,
            index,
            groups,
        }
    }
}

impl Stage for TfidfStage {
    fn name(&self) -> &str {
        "tfidf"
    }

    fn augment(
        &self,
        corpus: &Corpus,
        rows: Range<usize>,
        out: &mut [Augmented],
        stats: &mut Stats,
    ) -> Result<()> {
        let (k, ceiling) = (self.config.k, self.config.max_similarity);
        let found: Vec<(Vec<Hit>, u64)> = rows
            .into_par_iter()
            .map_init(
                || self.index.scratch(),
                |scratch, q| self.index.top_k(q, &self.groups, k, ceiling, scratch),
            )
            .collect();
        let stats = stats.entry(self.name().to_string()).or_default();
        for ((hits, above_ceiling), aug) in found.into_iter().zip(out.iter_mut()) {
            stats.reject("near_duplicate", above_ceiling);
            if hits.len() < k {
                stats.reject("fewer_than_k_candidates", (k - hits.len()) as u64);
            }
            stats.produced += hits.len() as u64;
            for (rank, hit) in hits.into_iter().enumerate() {
                let other = &corpus.pairs[hit.doc as usize];
                aug.negatives.push(Item {
                    text: Some(other.caption.clone()),
                    ref_id: Some(other.uid_hex()),
                    kind: "tfidf".into(),
                    generator: "tfidf".into(),
                    params: serde_json::json!({ "rank": rank + 1, "image_id": other.image_id })
                        .to_string(),
                    score: hit.score,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> TfidfConfig {
        TfidfConfig {
            min_token_chars: 1,
            ..TfidfConfig::default()
        }
    }

    /// Brute force: dense vectors, every pair, full sort by the documented rule.
    fn brute_force(
        texts: &[String],
        groups: &[u32],
        cfg: &TfidfConfig,
        q: usize,
    ) -> Vec<(u32, f64)> {
        let tok = Tokenizer::new(cfg);
        let docs: Vec<Vec<String>> = texts.iter().map(|t| tok.tokens(t).collect()).collect();
        let mut vocab: Vec<String> = docs.iter().flatten().cloned().collect();
        vocab.sort();
        vocab.dedup();
        let n = texts.len() as f64;
        let vecs: Vec<Vec<f64>> = docs
            .iter()
            .map(|d| {
                let mut v: Vec<f64> = vocab
                    .iter()
                    .map(|term| {
                        let tf = d.iter().filter(|t| *t == term).count() as f64;
                        let df = docs.iter().filter(|d| d.contains(term)).count() as f64;
                        if tf == 0.0 || df < cfg.min_df as f64 {
                            return 0.0;
                        }
                        let tf = if cfg.sublinear_tf { 1.0 + tf.ln() } else { tf };
                        tf * (((1.0 + n) / (1.0 + df)).ln() + 1.0)
                    })
                    .collect();
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                if norm > 0.0 {
                    v.iter_mut().for_each(|x| *x /= norm);
                }
                v
            })
            .collect();
        let mut scored: Vec<(u32, f64)> = (0..texts.len())
            .filter(|&d| groups[d] != groups[q])
            .map(|d| {
                (
                    d as u32,
                    vecs[q]
                        .iter()
                        .zip(&vecs[d])
                        .map(|(a, b)| a * b)
                        .sum::<f64>(),
                )
            })
            .filter(|&(_, s)| s > 1e-9 && s <= cfg.max_similarity as f64 + 1e-6)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(cfg.k);
        scored
    }

    #[test]
    fn weights_follow_scikit_learn_formulas() {
        // Hand-computed: idf(a) = idf(cat) = ln(4/3) + 1, idf(dog) = idf(the) = idf(sat) = ln(4/2) + 1.
        let texts = ["a cat", "a dog", "the cat sat"];
        let index = TfidfIndex::build(&texts, &config());
        let mut acc = vec![0.0; 3];
        index.scatter(0, &mut acc);
        assert!((acc[1] - 0.428_046).abs() < 1e-5, "{acc:?}");
        assert!((acc[2] - 0.334_907).abs() < 1e-5, "{acc:?}");
    }

    #[test]
    fn excludes_own_image_and_near_duplicates() {
        let texts = [
            "a red circle",
            "a red circle",
            "a red circle",
            "a blue square",
        ];
        let groups = [0, 0, 1, 2];
        let index = TfidfIndex::build(&texts, &config());
        let mut scratch = index.scratch();
        let (hits, above) = index.top_k(0, &groups, 5, 0.9, &mut scratch);
        assert_eq!(
            above, 1,
            "the identical caption of image 1 is a near-duplicate"
        );
        assert_eq!(hits.iter().map(|h| h.doc).collect::<Vec<_>>(), vec![3]);
        assert!(
            scratch.acc.iter().all(|&x| x == 0.0),
            "scratch must be left cleared"
        );
        assert!(
            scratch.seen.iter().all(|&x| !x),
            "scratch must be left cleared"
        );
    }

    proptest! {
        #[test]
        fn top_k_agrees_with_brute_force(
            docs in prop::collection::vec(prop::collection::vec(0usize..12, 0..8), 1..40),
            group_size in 1usize..4,
            k in 1usize..6,
            sublinear in any::<bool>(),
            min_df in 1usize..3,
            common_df in 0usize..6,
        ) {
            let words = ["red", "blue", "cat", "dog", "on", "a", "the", "mat", "big", "sits", "by", "tree"];
            let texts: Vec<String> = docs.iter().map(|d| d.iter().map(|&w| words[w]).collect::<Vec<_>>().join(" ")).collect();
            let groups: Vec<u32> = (0..texts.len()).map(|i| (i / group_size) as u32).collect();
            let cfg = TfidfConfig { k, sublinear_tf: sublinear, min_df, max_similarity: 0.95, common_df: Some(common_df), ..config() };
            let index = TfidfIndex::build(&texts, &cfg);
            let unpruned = TfidfIndex::build(&texts, &TfidfConfig { common_df: Some(usize::MAX), ..cfg.clone() });
            let (mut scratch, mut scratch2) = (index.scratch(), unpruned.scratch());
            for q in 0..texts.len() {
                let (hits, above) = index.top_k(q, &groups, k, cfg.max_similarity, &mut scratch);
                // Pruning changes speed only: the same hits, bit for bit.
                let (full_hits, full_above) = unpruned.top_k(q, &groups, k, cfg.max_similarity, &mut scratch2);
                prop_assert_eq!(&hits, &full_hits);
                prop_assert_eq!(above, full_above);
                let expected = brute_force(&texts, &groups, &cfg, q);
                prop_assert_eq!(hits.len(), expected.len(), "query {}", q);
                for (h, (d, s)) in hits.iter().zip(&expected) {
                    prop_assert!((h.score as f64 - s).abs() < 1e-5, "query {} score {} vs {}", q, h.score, s);
                    // Doc ids must agree unless the scores tie within float noise.
                    if h.doc != *d {
                        let other = expected.iter().find(|(e, _)| *e == h.doc).map(|x| x.1);
                        prop_assert!(other.is_some_and(|o| (o - s).abs() < 1e-5), "query {}: {:?} vs {:?}", q, hits, expected);
                    }
                }
            }
        }
    }
}
