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

pub mod bm25;

use std::collections::HashMap;
use std::path::PathBuf;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::core::error::Result;
use crate::core::record::Corpus;
use crate::core::sample::Item;
use crate::stages::{boxed, Batch, BuildContext, IndexRun, Stage, StageSpec};
use crate::store::artifact::{inputs_sha256, Artifact, Built, Details, IndexPolicy};
use crate::store::layout::index_dir;
use crate::core::binfile::fnv1a64_parts;
use crate::stages::caption_lm::{CaptionLm, LanguageModelConfig};
use crate::text::parse::category::{categories, Categories};
use crate::text::parse::facts::ImageFacts;
use crate::text::parse::lexicon::DEFAULT_WORDNET_DIR;
use crate::text::parse::{Parser, SceneGraph};
use crate::text::words::{articles_agree, ENGLISH_STOP_WORDS};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TfidfConfig {
    /// `"exact"`: TF-IDF cosine over an in-memory inverted index. `"bm25"`: BM25 on the
    /// run's on-disk tantivy index (see [`crate::stages::tfidf::bm25`]), for corpora larger than memory;
    /// only `k` and `max_similarity` apply to it.
    pub method: Method,
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
    /// Keeps only neighbours that contradict the anchor's image (`not_contradicted`
    /// counts the rest): an attribute against one its captions state, another main
    /// subject than theirs, or, where the image has labels, an object among none of them
    /// (see `ImageFacts::contradicts`). Another caption of the same kind of scene ("two
    /// stars and a circle" for "a little circle and two tiny stars") is often true of the
    /// image too. Parses every caption with the scene-graph parser.
    pub false_negative_guard: bool,
    /// WordNet 3.0 database folder for the guard's parser (Debian: wordnet-base).
    pub wordnet_dir: PathBuf,
    /// Picks among the neighbours (best ranked first) so that the caption language model
    /// scores the negative above the caption about as often as below: a seeded coin per
    /// caption and slot asks for one side, and a neighbour on the other side is taken only
    /// within `balance_tolerance` (natural log per token). Without it, the neighbours that
    /// TF-IDF ranks first are the more typical captions, which a text-only model spots.
    /// Neighbours more than `max_lm_gap` from the caption either way are skipped: on COCO
    /// val, a model trained elsewhere (Flickr8k) prefers the caption to such a neighbour
    /// 68% (gap below) or 15% (above) of the time, where within 0.5 it is 32-54%. The
    /// delta is in each negative's `params` as `lm_delta`.
    pub lm_balance: bool,
    pub balance_tolerance: f64,
    pub max_lm_gap: f64,
    pub language_model: LanguageModelConfig,
}

impl Default for TfidfConfig {
    fn default() -> Self {
        TfidfConfig {
            method: Method::Exact,
            k: 5,
            lowercase: true,
            min_token_chars: 2,
            stop_words: StopWords::None,
            extra_stop_words: Vec::new(),
            min_df: 1,
            sublinear_tf: false,
            smooth_idf: true,
            max_similarity: 0.9,
            false_negative_guard: true,
            wordnet_dir: PathBuf::from(DEFAULT_WORDNET_DIR),
            lm_balance: true,
            balance_tolerance: 0.2,
            max_lm_gap: 0.5,
            language_model: LanguageModelConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Exact,
    Bm25,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopWords {
    None,
    English,
}

impl StageSpec for TfidfConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.k == 0 {
            return Err("k must be at least 1".into());
        }
        if self.min_df == 0 {
            return Err("min_df must be at least 1".into());
        }
        if !(self.max_similarity > 0.0 && self.max_similarity <= 1.0) {
            return Err("max_similarity must be in (0, 1]".into());
        }
        if !(self.balance_tolerance >= 0.0 && self.max_lm_gap >= self.balance_tolerance) {
            return Err("balance_tolerance must be at least 0, and max_lm_gap at least balance_tolerance".into());
        }
        let exact_only = TfidfConfig {
            method: Method::Bm25,
            k: self.k,
            max_similarity: self.max_similarity,
            false_negative_guard: self.false_negative_guard,
            wordnet_dir: self.wordnet_dir.clone(),
            lm_balance: self.lm_balance,
            balance_tolerance: self.balance_tolerance,
            max_lm_gap: self.max_lm_gap,
            language_model: self.language_model.clone(),
            ..TfidfConfig::default()
        };
        if self.method == Method::Bm25 && *self != exact_only {
            return Err(
                "method = \"bm25\" tokenises as its index does: only k, max_similarity, the guard and the balance apply"
                    .into(),
            );
        }
        Ok(())
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        vec![&mut self.wordnet_dir]
    }

    fn build(&self, corpus: &Corpus, context: &BuildContext) -> Result<Box<dyn Stage>> {
        TfidfStage::build(self.clone(), corpus, context).map(boxed)
    }

    fn build_indexes(&self, corpus: &Corpus, run: &IndexRun) -> Result<Vec<String>> {
        let mut built = Vec::new();
        if self.lm_balance {
            CaptionLm::build_or_open(&self.language_model, corpus, run.dir, IndexPolicy::Build)?;
            built.push("caption language model".to_string());
        }
        built.push(match self.method {
            Method::Exact => {
                let index = TfidfIndex::build_or_open(self, corpus, run.dir, IndexPolicy::Build)?;
                format!(
                    "tfidf index: {} captions, {} distinct",
                    index.len(),
                    index.distinct()
                )
            }
            Method::Bm25 => bm25::Bm25Index::describe(&bm25::Bm25Index::build_or_open(
                run.dir,
                corpus,
                run.progress,
                IndexPolicy::Build,
            )?),
        });
        Ok(built)
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

/// The TF-IDF model of a corpus with its inverted index. Captions with the same term
/// counts have the same vector, so they share one doc: a corpus full of repeated
/// captions costs what its distinct captions cost, and results are still per caption.
#[derive(Debug, PartialEq)]
pub struct TfidfIndex {
    /// CSR docs: doc d's (term, weight) pairs are `doc_terms/doc_weights[doc_start[d]..
    /// doc_start[d+1]]`, terms ascending, L2-normalised.
    doc_start: Vec<usize>,
    doc_terms: Vec<u32>,
    doc_weights: Vec<f32>,
    /// Per caption, its doc.
    doc_of_row: Vec<u32>,
    /// CSR: the captions of doc d, `rows[rows_start[d]..rows_start[d+1]]`, ascending.
    rows_start: Vec<usize>,
    rows: Vec<u32>,
    /// CSR postings over docs: for term t, `post_docs[post_start[t]..post_start[t+1]]`.
    post_start: Vec<usize>,
    post_docs: Vec<u32>,
    post_weights: Vec<f32>,
    /// Per term, its largest weight in any doc (the pruning bound).
    max_weight: Vec<f32>,
}

const MAGIC: &[u8; 8] = b"CMCLTFID";
pub const VERSION: u32 = 1;

impl TfidfIndex {
    pub fn build<S: AsRef<str> + Sync>(texts: &[S], config: &TfidfConfig) -> TfidfIndex {
        let tokenizer = Tokenizer::new(config);
        let tokenized: Vec<Vec<String>> = texts
            .par_iter()
            .map(|t| tokenizer.tokens(t.as_ref()).collect())
            .collect();

        // Term ids in order of first occurrence: deterministic, independent of threads.
        // Doc ids likewise, by first caption.
        let mut vocab: HashMap<&str, u32> = HashMap::new();
        let mut df: Vec<u32> = Vec::new();
        let mut doc_ids: HashMap<Vec<(u32, u32)>, u32> = HashMap::new();
        let mut counted: Vec<Vec<(u32, u32)>> = Vec::new();
        let mut doc_of_row: Vec<u32> = Vec::with_capacity(texts.len());
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
            let next = counted.len() as u32;
            let doc = *doc_ids.entry(counts).or_insert_with_key(|counts| {
                counted.push(counts.clone());
                next
            });
            doc_of_row.push(doc);
        }
        drop(doc_ids);

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

        let mut doc_start = Vec::with_capacity(docs.len() + 1);
        doc_start.push(0);
        for doc in &docs {
            doc_start.push(doc_start[doc_start.len() - 1] + doc.len());
        }
        let mut rows_start = vec![0usize; docs.len() + 1];
        for &d in &doc_of_row {
            rows_start[d as usize + 1] += 1;
        }
        for d in 0..docs.len() {
            rows_start[d + 1] += rows_start[d];
        }
        let mut fill = rows_start.clone();
        let mut rows = vec![0u32; doc_of_row.len()];
        for (row, &d) in doc_of_row.iter().enumerate() {
            rows[fill[d as usize]] = row as u32;
            fill[d as usize] += 1;
        }

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
            doc_start,
            doc_terms: docs.iter().flatten().map(|&(t, _)| t).collect(),
            doc_weights: docs.iter().flatten().map(|&(_, w)| w).collect(),
            doc_of_row,
            rows_start,
            rows,
            post_start,
            post_docs,
            post_weights,
            max_weight,
        }
    }

    /// The run's TF-IDF index of the corpus's captions: `OUT/index/tfidf.bin`, built
    /// when missing or made from other captions or settings (unless `policy` forbids).
    pub fn build_or_open(
        config: &TfidfConfig,
        corpus: &Corpus,
        index_dir: &std::path::Path,
        policy: IndexPolicy,
    ) -> Result<TfidfIndex> {
        let captions: Vec<&str> = corpus.pairs.iter().map(|p| p.caption.as_str()).collect();
        // Only the settings that shape the table; k and the ceiling apply at query time.
        let shaping = TfidfConfig {
            k: 1,
            max_similarity: 1.0,
            ..config.clone()
        };
        let inputs = inputs_sha256(&format!("{shaping:?}"), captions.iter().copied());
        let opened = Artifact {
            name: "tfidf",
            file: "tfidf.bin",
            format_version: VERSION,
            build: &|path| {
                let index = TfidfIndex::build(&captions, config);
                index.save(path)?;
                let details = Details::from([
                    ("captions".to_string(), index.len().into()),
                    ("distinct".to_string(), index.distinct().into()),
                ]);
                Ok(Built {
                    value: index,
                    details,
                })
            },
            load: &TfidfIndex::load,
        }
        .build_or_open(index_dir, &inputs, policy)?;
        Ok(opened.value)
    }

    /// Captions indexed.
    pub fn len(&self) -> usize {
        self.doc_of_row.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc_of_row.is_empty()
    }

    /// Distinct docs (captions with distinct term counts).
    pub fn distinct(&self) -> usize {
        self.doc_start.len() - 1
    }

    fn doc(&self, d: usize) -> impl Iterator<Item = (u32, f32)> + '_ {
        let range = self.doc_start[d]..self.doc_start[d + 1];
        self.doc_terms[range.clone()]
            .iter()
            .copied()
            .zip(self.doc_weights[range].iter().copied())
    }

    fn rows_of(&self, d: usize) -> &[u32] {
        &self.rows[self.rows_start[d]..self.rows_start[d + 1]]
    }

    /// Writes the index atomically to `path`: the run's TF-IDF artifact.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let mut w = crate::core::binfile::Writer::new(MAGIC, VERSION, 0);
        for (sizes, words) in [
            (&self.doc_start, &self.doc_terms),
            (&self.rows_start, &self.rows),
            (&self.post_start, &self.post_docs),
        ] {
            w.u64(sizes.len() as u64);
            w.u64(words.len() as u64);
            w.usizes(sizes);
            w.u32s(words);
        }
        w.f32s(&self.doc_weights);
        w.f32s(&self.post_weights);
        w.u64(self.doc_of_row.len() as u64);
        w.u32s(&self.doc_of_row);
        w.u64(self.max_weight.len() as u64);
        w.f32s(&self.max_weight);
        let bytes = w.finish();
        crate::core::fs::write_bytes_atomic(path, &bytes)
    }

    /// Reads an index written by [`Self::save`], checking its checksum and structure.
    pub fn load(path: &std::path::Path) -> Result<TfidfIndex> {
        let bytes = std::fs::read(path).map_err(|e| crate::core::error::Error::io(path, e))?;
        let corrupt = |what: &str| crate::core::error::Error::Input {
            path: path.to_path_buf(),
            line: 0,
            message: format!("not a usable cmcl TF-IDF index: {what}"),
        };
        let mut r =
            crate::core::binfile::Reader::open(&bytes, MAGIC, VERSION).map_err(|e| corrupt(&e))?;
        let mut csr = || -> Option<(Vec<usize>, Vec<u32>)> {
            let (sizes, words) = (r.u64()? as usize, r.u64()? as usize);
            Some((r.usizes(sizes)?, r.u32s(words)?))
        };
        let truncated = || corrupt("truncated");
        let (doc_start, doc_terms) = csr().ok_or_else(truncated)?;
        let (rows_start, rows) = csr().ok_or_else(truncated)?;
        let (post_start, post_docs) = csr().ok_or_else(truncated)?;
        let doc_weights = r.f32s(doc_terms.len()).ok_or_else(truncated)?;
        let post_weights = r.f32s(post_docs.len()).ok_or_else(truncated)?;
        let n = r.u64().ok_or_else(truncated)? as usize;
        let doc_of_row = r.u32s(n).ok_or_else(truncated)?;
        let n = r.u64().ok_or_else(truncated)? as usize;
        let max_weight = r.f32s(n).ok_or_else(truncated)?;
        if !r.at_end() {
            return Err(corrupt("trailing bytes"));
        }
        let index = TfidfIndex {
            doc_start,
            doc_terms,
            doc_weights,
            doc_of_row,
            rows_start,
            rows,
            post_start,
            post_docs,
            post_weights,
            max_weight,
        };
        index.check().map_err(|what| corrupt(&what))?;
        Ok(index)
    }

    /// Structural checks after loading, so a search can never index out of bounds.
    fn check(&self) -> std::result::Result<(), String> {
        let docs = self
            .doc_start
            .len()
            .checked_sub(1)
            .ok_or("no doc offsets")?;
        let terms = self.max_weight.len();
        let offsets_ok = |start: &[usize], len: usize| {
            start.first() == Some(&0)
                && start.last() == Some(&len)
                && start.windows(2).all(|w| w[0] <= w[1])
        };
        let ok = offsets_ok(&self.doc_start, self.doc_terms.len())
            && offsets_ok(&self.rows_start, self.rows.len())
            && offsets_ok(&self.post_start, self.post_docs.len())
            && self.rows_start.len() == docs + 1
            && self.post_start.len() == terms + 1
            && self.rows.len() == self.doc_of_row.len()
            && self.doc_terms.iter().all(|&t| (t as usize) < terms)
            && self.post_docs.iter().all(|&d| (d as usize) < docs)
            && self.doc_of_row.iter().all(|&d| (d as usize) < docs)
            && self
                .rows
                .iter()
                .all(|&r| (r as usize) < self.doc_of_row.len());
        ok.then_some(())
            .ok_or_else(|| "inconsistent offsets or ids".into())
    }

    fn postings(&self, term: u32) -> (&[u32], &[f32]) {
        let range = self.post_start[term as usize]..self.post_start[term as usize + 1];
        (&self.post_docs[range.clone()], &self.post_weights[range])
    }

    fn df(&self, term: u32) -> usize {
        self.post_start[term as usize + 1] - self.post_start[term as usize]
    }

    /// Cosine of the query (its weights spread densely over the vocabulary in
    /// `query_weights`) and `doc`, summed in the doc's term order: the one score every
    /// path through [`Self::top_k`] reports, so results never depend on pruning.
    fn score(&self, query_weights: &[f32], doc: usize) -> f32 {
        self.doc(doc)
            .fold(0f32, |sum, (t, w)| sum + query_weights[t as usize] * w)
    }

    /// Top `k` captions for caption `query`, skipping those whose `groups` entry equals
    /// the query's (its own image) and scores outside (0, max_similarity]. Also returns how
    /// many candidates the ceiling removed.
    ///
    /// Exact, with MaxScore-style pruning. Query terms are walked rarest first, adding
    /// each term's contributions to a partial score per doc. Once the unwalked terms
    /// could add little, after each term the docs not yet scored are scored exactly, unless their partial plus the
    /// most the unwalked terms could add (`rest`) is already below the k-th score; such
    /// a doc can never catch up, since walking a term adds at most what `rest` loses.
    /// The walk stops once the k-th score beats `rest`: no unreached doc can enter. The
    /// common terms, with the longest postings and lowest weights, are mostly skipped.
    pub fn top_k(
        &self,
        query: usize,
        groups: &[u32],
        k: usize,
        max_similarity: f32,
        scratch: &mut Scratch,
    ) -> (Vec<Hit>, u64) {
        let mut terms: Vec<(u32, f32)> = self.doc(self.doc_of_row[query] as usize).collect();
        for &(t, wq) in &terms {
            scratch.query_weights[t as usize] = wq;
        }
        terms.sort_by_key(|&(t, _)| (self.df(t), t));
        // bound_from[i]: the most that terms[i..] can add to any doc's score.
        let mut bound_from = vec![0f32; terms.len() + 1];
        for i in (0..terms.len()).rev() {
            let (t, wq) = terms[i];
            bound_from[i] = bound_from[i + 1] + wq * self.max_weight[t as usize];
        }
        let mut top = TopK::new(k, groups[query], max_similarity);
        // Docs reached before this index are scored when `rest` first drops to
        // `SCORE_FROM_BOUND`: scoring while `rest` is large would prune nothing.
        let mut unscored_from = 0;
        for (i, &(t, wq)) in terms.iter().enumerate() {
            let (docs, weights) = self.postings(t);
            for (&d, &wd) in docs.iter().zip(weights) {
                let slot = &mut scratch.acc[d as usize];
                if *slot == 0.0 {
                    scratch.touched.push(d);
                }
                *slot += wq * wd;
            }
            // The margin covers rounding between partial sums, bounds and exact dots.
            if bound_from[i + 1] > SCORE_FROM_BOUND {
                continue;
            }
            let rest = bound_from[i + 1] * (1.0 + 1e-5) + 1e-6;
            let unscored = unscored_from..scratch.touched.len();
            unscored_from = scratch.touched.len();
            for &d in &scratch.touched[unscored] {
                if top.is_full() && scratch.acc[d as usize] + rest < top.kth() {
                    continue;
                }
                let score = self.score(&scratch.query_weights, d as usize);
                // A doc's captions share its score: none enters below the k-th.
                if top.is_full() && score < top.kth() {
                    continue;
                }
                for &row in self.rows_of(d as usize) {
                    top.offer(row, score, groups);
                }
            }
            if top.is_full() && top.kth() > rest {
                break;
            }
        }
        for &d in &scratch.touched {
            scratch.acc[d as usize] = 0.0;
        }
        scratch.touched.clear();
        for &(t, _) in &terms {
            scratch.query_weights[t as usize] = 0.0;
        }
        (top.best, top.above_ceiling)
    }

    /// Scratch space for [`Self::top_k`], one per thread.
    pub fn scratch(&self) -> Scratch {
        Scratch {
            acc: vec![0.0; self.distinct()],
            touched: Vec::new(),
            query_weights: vec![0.0; self.max_weight.len()],
        }
    }
}

/// When the unwalked query terms could add at most this much cosine, candidates start
/// being scored. Speed only: results are exact for any value (measured best on COCO +
/// Flickr8k captions; see `make bench`).
const SCORE_FROM_BOUND: f32 = 0.2;

/// Per-thread buffers of corpus length; left cleared after every query.
pub struct Scratch {
    acc: Vec<f32>,
    touched: Vec<u32>,
    /// The current query's weights by term id; zero elsewhere.
    query_weights: Vec<f32>,
}

/// The running top k under the documented order: score descending, then doc ascending.
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

    fn is_full(&self) -> bool {
        self.best.len() == self.k
    }

    fn kth(&self) -> f32 {
        self.best.last().map_or(0.0, |h| h.score)
    }

    fn offer(&mut self, doc: u32, score: f32, groups: &[u32]) {
        if score <= 0.0 || groups[doc as usize] == self.own_group {
            return;
        }
        if score > self.ceiling {
            self.above_ceiling += 1;
            return;
        }
        let before = |h: &Hit| h.score > score || h.score == score && h.doc < doc;
        if self.is_full() && self.best.last().is_some_and(before) {
            return;
        }
        let at = self.best.partition_point(before);
        self.best.insert(at, Hit { doc, score });
        self.best.truncate(self.k);
    }
}

/// The `tfidf` stage: attaches the top-k neighbours from other images as negatives, of
/// kind `tfidf` (exact cosine) or `bm25` (BM25 relative to the caption's own score).
pub struct TfidfStage {
    config: TfidfConfig,
    miner: Miner,
    /// Per pair, a dense id of its image (dataset + image id).
    groups: Vec<u32>,
    guard: Option<Guard>,
    /// With the balance on, each pair caption's mean log-probability under the half of
    /// the caption language model that never saw its image: scored once here, as a
    /// caption is the neighbour of many.
    lm_scores: Option<Vec<f64>>,
    seed: u64,
}

/// The false-negative guard: every pair caption's graph and what each image states.
struct Guard {
    parser: Parser,
    graphs: Vec<SceneGraph>,
    graph_of_pair: Vec<u32>,
    facts: ImageFacts,
    categories: Categories,
}

/// Neighbours fetched per kept one while the guard or the balance is on, so that dropped
/// ones are replaced by the next best.
const OVERFETCH: usize = 12;

impl Guard {
    fn graph(&self, row: usize) -> &SceneGraph {
        &self.graphs[self.graph_of_pair[row] as usize]
    }
}

enum Miner {
    Exact(TfidfIndex),
    Bm25(bm25::Bm25Index),
}

impl TfidfStage {
    pub fn build(
        config: TfidfConfig,
        corpus: &Corpus,
        context: &BuildContext,
    ) -> Result<TfidfStage> {
        let index_dir = index_dir(context.out_dir);
        let miner = match config.method {
            Method::Exact => Miner::Exact(TfidfIndex::build_or_open(
                &config,
                corpus,
                &index_dir,
                context.indexes,
            )?),
            Method::Bm25 => {
                let opened = bm25::Bm25Index::build_or_open(
                    &index_dir,
                    corpus,
                    context.progress,
                    context.indexes,
                )?;
                Miner::Bm25(opened.value)
            }
        };
        let guard = if config.false_negative_guard {
            let parser = Parser::load(&config.wordnet_dir)?;
            let (distinct, text_ids) = corpus.distinct_texts();
            let graph_of_pair = text_ids[..corpus.pairs.len()].to_vec();
            let graphs: Vec<SceneGraph> = distinct[..]
                .par_iter()
                .map(|t| parser.parse(t))
                .collect();
            let facts = ImageFacts::build(&parser, corpus, &graph_of_pair, &graphs);
            let categories = categories(parser.lexicon(), &graphs);
            Some(Guard {
                parser,
                graphs,
                graph_of_pair,
                facts,
                categories,
            })
        } else {
            None
        };
        let lm_scores = match config.lm_balance {
            true => {
                let lm = CaptionLm::build_or_open(&config.language_model, corpus, &index_dir, context.indexes)?;
                let pairs = &corpus.pairs;
                Some(
                    (0..pairs.len())
                        .into_par_iter()
                        .map(|row| lm.held_out(row).mean_log_prob(&pairs[row].caption))
                        .collect(),
                )
            }
            false => None,
        };
        Ok(TfidfStage {
            config,
            miner,
            guard,
            lm_scores,
            seed: context.seed,
            groups: corpus.image_groups(),
        })
    }
}

impl TfidfStage {
    /// Up to `wanted` of `hits` (best first), as (index, language-model delta of the
    /// neighbour against the caption), alternating the side of the delta from a seeded
    /// coin per caption; see [`TfidfConfig::lm_balance`].
    fn balance(
        &self,
        scores: &[f64],
        row: usize,
        uid: &[u8; 16],
        hits: &[Hit],
        wanted: usize,
    ) -> Vec<(usize, f64)> {
        let deltas: Vec<f64> = hits.iter().map(|h| scores[h.doc as usize] - scores[row]).collect();
        let coin = fnv1a64_parts(&[&self.seed.to_le_bytes(), uid, b"lm-balance"]) & 1 == 1;
        let mut taken = vec![false; hits.len()];
        let mut picked = Vec::new();
        for slot in 0..wanted {
            let want_above = coin ^ (slot % 2 == 1);
            let on_side = |i: usize| {
                !taken[i] && (deltas[i] >= 0.0) == want_above && deltas[i].abs() <= self.config.max_lm_gap
            };
            let near = |i: usize| !taken[i] && deltas[i].abs() <= self.config.balance_tolerance;
            let Some(i) = (0..hits.len()).find(|&i| on_side(i)).or_else(|| (0..hits.len()).find(|&i| near(i)))
            else {
                break;
            };
            taken[i] = true;
            picked.push((i, deltas[i]));
        }
        // Best ranked first, as without the balance.
        picked.sort_by_key(|&(i, _)| i);
        picked
    }
}

impl Stage for TfidfStage {
    fn name(&self) -> &str {
        "tfidf"
    }

    fn augment(&self, batch: Batch) -> Result<()> {
        let (corpus, rows, out, stats) = (batch.corpus, batch.rows, batch.out, batch.stats);
        let (k, ceiling) = (self.config.k, self.config.max_similarity);
        let wanted = k;
        let k = match self.guard.is_some() || self.lm_scores.is_some() {
            true => k * OVERFETCH,
            false => k,
        };
        let (found, kind): (Vec<(Vec<Hit>, u64)>, &str) = match &self.miner {
            Miner::Exact(index) => (
                rows.clone().into_par_iter()
                    .map_init(
                        || index.scratch(),
                        |scratch, q| index.top_k(q, &self.groups, k, ceiling, scratch),
                    )
                    .collect(),
                "tfidf",
            ),
            Miner::Bm25(index) => {
                let searcher = index.searcher();
                let found = rows
                    .clone()
                    .into_par_iter()
                    .map(|row| {
                        let caption = &corpus.pairs[row].caption;
                        index.negatives(&searcher, caption, row, &self.groups, k, ceiling)
                    })
                    .collect::<Result<_>>()?;
                (found, "bm25")
            }
        };
        let stats = stats.entry(self.name().to_string()).or_default();
        for (((mut hits, above_ceiling), aug), row) in found.into_iter().zip(out.iter_mut()).zip(rows) {
            stats.reject("near_duplicate", above_ceiling);
            if let Some(guard) = &self.guard {
                let image = guard.facts.image_of(row);
                let anchor = guard.graph(row);
                let before = hits.len();
                hits.retain(|hit| {
                    let neighbour = guard.graph(hit.doc as usize);
                    guard.facts.contradicts(image, anchor, neighbour, guard.parser.lexicon(), &guard.categories)
                });
                stats.reject("not_contradicted", (before - hits.len()) as u64);
                // Another image's caption is a human's, typos and all: a blind audit read
                // "in a open field" and "An tusked elephant" as ungrammatical negatives.
                let before = hits.len();
                hits.retain(|hit| articles_agree(&corpus.pairs[hit.doc as usize].caption));
                stats.reject("article_mismatch", (before - hits.len()) as u64);
            }
            let deltas = match &self.lm_scores {
                Some(scores) => {
                    let picked = self.balance(scores, row, &corpus.pairs[row].uid, &hits, wanted);
                    let chosen = picked.iter().map(|&(i, _)| hits[i]).collect();
                    let deltas = picked.into_iter().map(|(_, d)| Some(d)).collect();
                    hits = chosen;
                    deltas
                }
                None => {
                    hits.truncate(wanted);
                    vec![None; hits.len()]
                }
            };
            if hits.len() < wanted {
                stats.reject("fewer_than_k_candidates", (wanted - hits.len()) as u64);
            }
            stats.produced += hits.len() as u64;
            for (rank, (hit, lm_delta)) in hits.into_iter().zip(deltas).enumerate() {
                let other = &corpus.pairs[hit.doc as usize];
                if lm_delta.is_some_and(|d| d < 0.0) {
                    stats.count("lm_prefers_original", 1);
                }
                let mut params = serde_json::json!({ "rank": rank + 1, "image_id": other.image_id });
                if let Some(delta) = lm_delta {
                    params["lm_delta"] = delta.into();
                }
                aug.negatives.push(Item {
                    text: Some(other.caption.clone()),
                    ref_id: Some(other.uid_hex()),
                    kind: kind.into(),
                    generator: "tfidf".into(),
                    params: params.to_string(),
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

    /// Brute force: dense vectors, every pair, full sort by the documented rule. Returns
    /// every eligible doc ranked, and the scores of all other-image docs (for the
    /// ceiling count).
    fn brute_force(
        texts: &[String],
        groups: &[u32],
        cfg: &TfidfConfig,
        q: usize,
    ) -> (Vec<(u32, f64)>, Vec<f64>) {
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
            .collect();
        let all_scores = scored.iter().map(|x| x.1).collect();
        scored.retain(|&(_, s)| s > 1e-9 && s <= cfg.max_similarity as f64 + 1e-6);
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        (scored, all_scores)
    }

    #[test]
    fn weights_follow_scikit_learn_formulas() {
        // Hand-computed: idf(a) = idf(cat) = ln(4/3) + 1, idf(dog) = idf(the) = idf(sat) = ln(4/2) + 1.
        let texts = ["a cat", "a dog", "the cat sat"];
        let index = TfidfIndex::build(&texts, &config());
        let mut query_weights = vec![0.0; index.max_weight.len()];
        for (t, w) in index.doc(0) {
            query_weights[t as usize] = w;
        }
        assert!((index.score(&query_weights, 1) - 0.428_046).abs() < 1e-5);
        assert!((index.score(&query_weights, 2) - 0.334_907).abs() < 1e-5);
    }

    #[test]
    fn saved_index_loads_equal_and_damage_is_refused() {
        let texts = ["a red circle", "a blue square", "a red circle", "two dogs"];
        let index = TfidfIndex::build(&texts, &config());
        assert_eq!((index.len(), index.distinct()), (4, 3));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tfidf.bin");
        index.save(&path).unwrap();
        assert_eq!(TfidfIndex::load(&path).unwrap(), index);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = TfidfIndex::load(&path).err().unwrap().to_string();
        assert!(
            err.contains("tfidf.bin") && err.contains("checksum"),
            "{err}"
        );
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
        assert!(scratch.touched.is_empty(), "scratch must be left cleared");
    }

    /// "two stars and a circle" from another image names only what the anchor's image
    /// has: dropped and counted, and so is "two red stars and a circle" (the anchor's
    /// captions never say the stars' colour). A neighbour with another object, or with an
    /// attribute that contradicts the anchor's ("big" against "tiny"), stays.
    /// The stage over `captions` (the first two of one image) for the first caption, with
    /// its stats.
    fn first_negatives(captions: &[&str], config: TfidfConfig) -> (Vec<Item>, crate::core::sample::Stats) {
        let mut corpus = crate::core::record::test_corpus(captions.iter().copied());
        corpus.pairs[1].image_id = corpus.pairs[0].image_id.clone();
        let out_dir = tempfile::tempdir().unwrap();
        let context = BuildContext {
            cache_dir: out_dir.path(),
            seed: 1,
            out_dir: out_dir.path(),
            progress: false,
            indexes: IndexPolicy::Build,
        };
        let stage = TfidfStage::build(config, &corpus, &context)
            .unwrap_or_else(|e| panic!("{e} (WordNet comes from `make apt-deps`)"));
        let mut out = vec![crate::core::sample::Augmented::default(); 1];
        let mut stats = crate::core::sample::Stats::new();
        stage
            .augment(Batch {
                corpus: &corpus,
                rows: 0..1,
                out: &mut out,
                stats: &mut stats,
            })
            .unwrap();
        (out.remove(0).negatives, stats)
    }

    #[test]
    fn the_guard_keeps_only_neighbours_that_contradict_the_image() {
        let config = TfidfConfig {
            lm_balance: false,
            ..config()
        };
        let (negatives, stats) = first_negatives(
            &[
                "there is a little circle and two tiny stars",
                "a circle above a star",
                "two stars and a circle",
                "two red stars and a circle",
                "two big stars and a circle",
                "two stars and a square",
                "a square next to two stars",
            ],
            config,
        );
        let texts: Vec<&str> = negatives.iter().filter_map(|n| n.text.as_deref()).collect();
        // Another main subject of the same kind is false of the image; more stars, a
        // colour or size the captions leave unsaid, a square beside the stars may be true.
        assert_eq!(texts, ["a square next to two stars"]);
        assert_eq!(stats["tfidf"].rejected["not_contradicted"], 4);
    }

    #[test]
    fn the_balance_takes_neighbours_near_the_caption_on_both_sides() {
        let captions = [
            "a dog on a red sofa",
            "a puppy on a sofa",
            "a cat on a red sofa",
            "a cat sleeping on a red sofa in the sun",
            "a cat on a sofa",
            "the cat on a red sofa",
            "a cat lying on the red sofa",
            "a cat on a red sofa at night",
        ];
        let config = TfidfConfig {
            false_negative_guard: false,
            k: 4,
            max_lm_gap: 1.0,
            ..config()
        };
        let (negatives, stats) = first_negatives(&captions, config.clone());
        let deltas: Vec<f64> = negatives
            .iter()
            .map(|n| {
                let params: serde_json::Value = serde_json::from_str(&n.params).unwrap();
                params["lm_delta"].as_f64().unwrap()
            })
            .collect();
        assert!(!deltas.is_empty());
        assert!(deltas.iter().all(|d| d.abs() <= config.max_lm_gap), "{deltas:?}");
        let below = deltas.iter().filter(|d| **d < 0.0).count() as u64;
        assert_eq!(stats["tfidf"].counters.get("lm_prefers_original").copied().unwrap_or(0), below);
        // Alternating sides: never more than one more on one side than the other.
        assert!(below.abs_diff(deltas.len() as u64 - below) <= 1, "{deltas:?}");
    }

    proptest! {
        #[test]
        fn top_k_agrees_with_brute_force(
            docs in prop::collection::vec(prop::collection::vec(0usize..12, 0..8), 1..40),
            group_size in 1usize..4,
            k in 1usize..6,
            sublinear in any::<bool>(),
            min_df in 1usize..3,
            copies in 1usize..4,
        ) {
            let words = ["red", "blue", "cat", "dog", "on", "a", "the", "mat", "big", "sits", "by", "tree"];
            // Repeated captions share a doc in the index; results stay per caption.
            let texts: Vec<String> = (0..copies)
                .flat_map(|_| docs.iter())
                .map(|d| d.iter().map(|&w| words[w]).collect::<Vec<_>>().join(" "))
                .collect();
            let groups: Vec<u32> = (0..texts.len()).map(|i| (i / group_size) as u32).collect();
            let cfg = TfidfConfig { k, sublinear_tf: sublinear, min_df, max_similarity: 0.95, ..config() };
            let index = TfidfIndex::build(&texts, &cfg);
            let mut scratch = index.scratch();
            for q in 0..texts.len() {
                let (hits, above) = index.top_k(q, &groups, k, cfg.max_similarity, &mut scratch);
                let (ranked, all_scores) = brute_force(&texts, &groups, &cfg, q);
                let expected = &ranked[..k.min(ranked.len())];
                let ceiling = cfg.max_similarity as f64;
                let expected_above = all_scores.iter().filter(|&&s| s > ceiling + 1e-6).count() as u64;
                let borderline = all_scores.iter().filter(|&&s| (s - ceiling).abs() <= 1e-6).count() as u64;
                prop_assert!(above >= expected_above && above <= expected_above + borderline, "query {}: {} above the ceiling, expected {}", q, above, expected_above);
                prop_assert_eq!(hits.len(), expected.len(), "query {}", q);
                for (h, (d, s)) in hits.iter().zip(expected) {
                    prop_assert!((h.score as f64 - s).abs() < 1e-5, "query {} score {} vs {}", q, h.score, s);
                    // Doc ids must agree unless the scores tie within float noise.
                    if h.doc != *d {
                        let other = ranked.iter().find(|(e, _)| *e == h.doc).map(|x| x.1);
                        prop_assert!(other.is_some_and(|o| (o - s).abs() < 1e-5), "query {}: {:?} vs {:?}", q, hits, expected);
                    }
                }
            }
        }
    }
}
