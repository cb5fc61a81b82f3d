//! A BM25 index of every text of a run (the captions, then the text corpus) on tantivy,
//! under `<out>/index/bm25/`. It serves two things: sentence-level hard negatives for
//! corpora too large for the exact in-memory TF-IDF miner (`method = "bm25"` in the
//! `tfidf` stage), and `cmcl search` to explore a corpus from the shell.
//!
//! Ranking rule, as in [`crate::stages::tfidf`]: higher score first, equal scores to the lower
//! row. Tantivy breaks ties by segment and doc id instead, which depend on how the
//! indexer split its work, so hits are over-fetched until the cut is past every tie,
//! and rescored with one fixed summation order so that equal scores are equal.
//!
//! A negative's `score` is its BM25 score divided by the query caption's score against
//! itself, so `max_similarity` means the same kind of thing as in exact TF-IDF
//! (near-duplicates score close to 1).

use std::path::{Path, PathBuf};

use serde::Serialize;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, Scorer, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Schema, Value, FAST, STORED, STRING, TEXT};
use tantivy::DocSet;
use tantivy::{DocAddress, Index, IndexReader, Searcher, TantivyDocument, Term};

use crate::core::error::{Error, Result};
use crate::core::fs::temp_path;
use crate::core::record::Corpus;
use crate::stages::tfidf::Hit;
use crate::store::layout::index_dir;
use crate::store::artifact::{inputs_sha256, Artifact, Built, Details, IndexPolicy, Opened};

/// The folder, under a run's index folder.
pub const DIR: &str = "bm25";
/// The layout of the folder: tantivy's, with these fields.
const VERSION: u32 = 1;
/// Writer memory; tantivy flushes a segment whenever it is used up.
const WRITER_BYTES: usize = 64 << 20;
/// Hits fetched per query at first, beyond the ones asked for.
const OVERFETCH: usize = 16;
/// How far tantivy's own sum of a document's term scores may lie from the exact one
/// (relative): summing a caption's few terms in another order moves it by ulps.
const SUM_SLACK: f32 = 1e-4;

/// A query with the weight of each of its terms.
struct Prepared {
    query: BooleanQuery,
    terms: Vec<Box<dyn tantivy::query::Weight>>,
}

struct Fields {
    text: Field,
    id: Field,
    source: Field,
    row: Field,
}

impl Fields {
    fn schema() -> (Schema, Fields) {
        let mut builder = Schema::builder();
        let fields = Fields {
            text: builder.add_text_field("text", TEXT | STORED),
            id: builder.add_text_field("id", STRING | STORED),
            source: builder.add_text_field("source", STRING | STORED),
            row: builder.add_u64_field("row", FAST | STORED),
        };
        (builder.build(), fields)
    }

    fn of(schema: &Schema, dir: &Path) -> Result<Fields> {
        let field = |name: &str| {
            schema
                .get_field(name)
                .map_err(|_| search_error(dir, format!("no field {name:?}: not a cmcl text index")))
        };
        Ok(Fields {
            text: field("text")?,
            id: field("id")?,
            source: field("source")?,
            row: field("row")?,
        })
    }
}

/// A hit with its stored fields, for showing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShownHit {
    pub rank: usize,
    pub score: f32,
    /// `caption` (then `id` is the pair uid) or `text` (then the text id).
    pub source: String,
    pub id: String,
    pub text: String,
}

pub struct Bm25Index {
    dir: PathBuf,
    index: Index,
    reader: IndexReader,
    fields: Fields,
    /// Where each row's document is, for scoring a caption against itself.
    addresses: Vec<DocAddress>,
    /// The inverse: per segment, each document's row (read once, not per hit).
    rows: Vec<Vec<u32>>,
}

impl Bm25Index {
    /// Opens the index of this run when it was built from these texts, else builds it
    /// (in a temporary folder renamed into place, so a killed build leaves nothing).
    pub fn build_or_open(
        index_dir: &Path,
        corpus: &Corpus,
        progress: bool,
        policy: IndexPolicy,
    ) -> Result<Opened<Bm25Index>> {
        let inputs = inputs_sha256("", texts(corpus).map(|(_, _, text)| text));
        Artifact {
            name: "bm25",
            file: DIR,
            format_version: VERSION,
            build: &|dir| {
                let staging = temp_path(dir);
                let _ = std::fs::remove_dir_all(&staging);
                std::fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
                write(&staging, corpus, progress)?;
                let _ = std::fs::remove_dir_all(dir);
                std::fs::rename(&staging, dir).map_err(|e| Error::io(dir, e))?;
                let index = Bm25Index::open(dir)?;
                let details = Details::from([
                    ("texts".to_string(), index.len().into()),
                    ("captions".to_string(), corpus.pairs.len().into()),
                ]);
                Ok(Built {
                    value: index,
                    details,
                })
            },
            load: &Bm25Index::open,
        }
        .build_or_open(index_dir, &inputs, policy)
    }

    /// What `cmcl index` says of it.
    pub fn describe(opened: &Opened<Bm25Index>) -> String {
        format!(
            "bm25 index: {} texts, {}",
            opened.value.len(),
            opened.status()
        )
    }

    /// Opens an index folder: the BM25 folder itself, a run's index folder, or a run's
    /// output folder.
    pub fn open(path: &Path) -> Result<Bm25Index> {
        let dir = [
            path.to_path_buf(),
            path.join(DIR),
            index_dir(path).join(DIR),
        ]
        .into_iter()
        .find(|d| d.join("meta.json").is_file())
        .ok_or_else(|| search_error(path, "no BM25 index here (run `cmcl index` first)".into()))?;
        let fail = |e: tantivy::TantivyError| search_error(&dir, e.to_string());
        let index = Index::open_in_dir(&dir).map_err(fail)?;
        let fields = Fields::of(&index.schema(), &dir)?;
        let reader = index.reader().map_err(fail)?;
        let searcher = reader.searcher();
        let mut addresses = vec![DocAddress::new(u32::MAX, 0); searcher.num_docs() as usize];
        let mut rows = Vec::new();
        for (ordinal, segment) in searcher.segment_readers().iter().enumerate() {
            let column = segment.fast_fields().u64("row").map_err(fail)?;
            let mut of_segment = Vec::with_capacity(segment.max_doc() as usize);
            for doc in 0..segment.max_doc() {
                let row = column.first(doc).unwrap_or(u64::MAX) as usize;
                let slot = addresses.get_mut(row).ok_or_else(|| {
                    search_error(&dir, format!("row {row} out of range: index damaged"))
                })?;
                *slot = DocAddress::new(ordinal as u32, doc);
                of_segment.push(row as u32);
            }
            rows.push(of_segment);
        }
        if let Some(row) = addresses.iter().position(|a| a.segment_ord == u32::MAX) {
            return Err(search_error(
                &dir,
                format!("row {row} missing: index damaged"),
            ));
        }
        Ok(Bm25Index {
            dir,
            index,
            reader,
            fields,
            addresses,
            rows,
        })
    }

    fn row_of(&self, addr: DocAddress) -> u32 {
        self.rows[addr.segment_ord as usize][addr.doc_id as usize]
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// The query for `text`: one optional clause per distinct token, tokenised as the
    /// index's text field is, with each clause's own weight for exact rescoring.
    fn query(&self, searcher: &Searcher, text: &str) -> Result<Prepared> {
        let mut analyzer = self
            .index
            .tokenizer_for_field(self.fields.text)
            .map_err(|e| search_error(&self.dir, e.to_string()))?;
        let mut stream = analyzer.token_stream(text);
        let mut terms: Vec<String> = Vec::new();
        while stream.advance() {
            terms.push(stream.token().text.clone());
        }
        terms.sort();
        terms.dedup();
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|t| {
                let term = Term::from_field_text(self.fields.text, &t);
                let query: Box<dyn Query> =
                    Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
                (Occur::Should, query)
            })
            .collect();
        let scoring = EnableScoring::enabled_from_searcher(searcher);
        let terms = clauses
            .iter()
            .map(|(_, clause)| clause.weight(scoring))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(|e| search_error(&self.dir, e.to_string()))?;
        Ok(Prepared {
            query: BooleanQuery::new(clauses),
            terms,
        })
    }

    /// Exact scores of `addresses`: each document's term scores summed in clause order.
    /// Tantivy's top-k search (block-WAND) sums them in an order that depends on the
    /// search, so one document can score an ulp apart in two searches, and ties could
    /// not be broken by row. Final scores therefore come from here.
    fn rescore(
        &self,
        searcher: &Searcher,
        query: &Prepared,
        addresses: &[DocAddress],
    ) -> Result<Vec<f32>> {
        let mut order: Vec<usize> = (0..addresses.len()).collect();
        order.sort_by_key(|&i| (addresses[i].segment_ord, addresses[i].doc_id));
        let mut scores = vec![0.0f32; addresses.len()];
        for term in &query.terms {
            let mut current: Option<(u32, Box<dyn Scorer>)> = None;
            for &i in &order {
                let DocAddress {
                    segment_ord,
                    doc_id,
                } = addresses[i];
                if current
                    .as_ref()
                    .is_none_or(|(segment, _)| *segment != segment_ord)
                {
                    let reader = searcher.segment_reader(segment_ord);
                    let scorer = term
                        .scorer(reader, 1.0)
                        .map_err(|e| search_error(&self.dir, e.to_string()))?;
                    current = Some((segment_ord, scorer));
                }
                let Some((_, scorer)) = current.as_mut() else {
                    continue;
                };
                // Scorers only seek forward; documents come in ascending order.
                if scorer.doc() < doc_id {
                    scorer.seek(doc_id);
                }
                if scorer.doc() == doc_id {
                    scores[i] += scorer.score();
                }
            }
        }
        Ok(scores)
    }

    /// The hits for `query` that `keep` accepts, best first, ties to the lower row: the
    /// first `k`, plus every further hit tied with the last of them. Also the score of
    /// row `watch` when the search met it, kept or not.
    fn ranked(
        &self,
        searcher: &Searcher,
        query: &Prepared,
        k: usize,
        keep: &dyn Fn(u32) -> bool,
        watch: u32,
    ) -> Result<(Vec<Hit>, Option<f32>)> {
        let mut limit = k + OVERFETCH;
        loop {
            let found = searcher
                .search(&query.query, &TopDocs::with_limit(limit).order_by_score())
                .map_err(|e| search_error(&self.dir, e.to_string()))?;
            let exhausted = found.len() < limit;
            // Anything tantivy cut scored at most `floor` by its own sums, so at most
            // `ceiling` exactly.
            let ceiling = found
                .last()
                .map_or(0.0, |(score, _)| score * (1.0 + SUM_SLACK));
            let addresses: Vec<DocAddress> = found.iter().map(|(_, addr)| *addr).collect();
            let scores = self.rescore(searcher, query, &addresses)?;
            let mut hits = Vec::new();
            let mut watched = None;
            for (addr, score) in addresses.into_iter().zip(scores) {
                let doc = self.row_of(addr);
                if doc == watch {
                    watched = Some(score);
                }
                if score > 0.0 && keep(doc) {
                    hits.push(Hit { doc, score });
                }
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
            let settled = hits.len() >= k && hits[k - 1].score > ceiling;
            if exhausted || settled {
                if let Some(last) = hits.get(k.saturating_sub(1)).map(|h| h.score) {
                    let tied_end = hits.partition_point(|h| h.score >= last);
                    hits.truncate(tied_end.max(k));
                }
                return Ok((hits, watched));
            }
            limit *= 4;
        }
    }

    /// The top `k` hits of a free-text query, with their stored fields.
    pub fn search(&self, text: &str, k: usize) -> Result<Vec<ShownHit>> {
        let searcher = self.reader.searcher();
        let query = self.query(&searcher, text)?;
        let (hits, _) = self.ranked(&searcher, &query, k.max(1), &|_| true, u32::MAX)?;
        hits.into_iter()
            .take(k)
            .enumerate()
            .map(|(i, hit)| {
                let doc: TantivyDocument = searcher
                    .doc(self.addresses[hit.doc as usize])
                    .map_err(|e| search_error(&self.dir, e.to_string()))?;
                let text_of = |field: Field| {
                    doc.get_first(field)
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_string()
                };
                Ok(ShownHit {
                    rank: i + 1,
                    score: hit.score,
                    source: text_of(self.fields.source),
                    id: text_of(self.fields.id),
                    text: text_of(self.fields.text),
                })
            })
            .collect()
    }

    /// Sentence-level negatives for caption `row`: the `k` best captions of other
    /// images (`groups[row]` is a caption's image), scored relative to the caption's
    /// own score, skipping those above `ceiling`. Also returns how many were skipped.
    pub fn negatives(
        &self,
        searcher: &Searcher,
        text: &str,
        row: usize,
        groups: &[u32],
        k: usize,
        ceiling: f32,
    ) -> Result<(Vec<Hit>, u64)> {
        let query = self.query(searcher, text)?;
        let group = groups[row];
        // Text-corpus rows lie past the captions: they have no group and are no negatives.
        let keep = |doc: u32| groups.get(doc as usize).is_some_and(|&g| g != group);
        // Near-duplicates are dropped after ranking, so fetch enough to replace them.
        let mut want = k;
        loop {
            let (hits, own) = self.ranked(searcher, &query, want, &keep, row as u32)?;
            // The caption's own score as the same search computed it (so an identical
            // caption scores exactly 1); scored alone only when the search did not reach it.
            let own = match own {
                Some(score) => score,
                None => self.score_of(searcher, &query, row)?,
            };
            if own <= 0.0 {
                return Ok((Vec::new(), 0));
            }
            let mut kept = Vec::with_capacity(k);
            let mut skipped = 0u64;
            for hit in &hits {
                let relative = hit.score / own;
                if relative > ceiling {
                    skipped += 1;
                } else if kept.len() < k {
                    kept.push(Hit {
                        doc: hit.doc,
                        score: relative,
                    });
                }
            }
            if kept.len() >= k || hits.len() < want {
                return Ok((kept, skipped));
            }
            want += skipped as usize + k;
        }
    }

    /// The exact score of row `row` for `query` (0 when it does not match).
    fn score_of(&self, searcher: &Searcher, query: &Prepared, row: usize) -> Result<f32> {
        Ok(self.rescore(searcher, query, &[self.addresses[row]])?[0])
    }

    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }
}

/// Every text in row order: source, id, text.
fn texts(corpus: &Corpus) -> impl Iterator<Item = (&'static str, String, &str)> {
    let captions = corpus
        .pairs
        .iter()
        .map(|p| ("caption", p.uid_hex(), p.caption.as_str()));
    let others = corpus
        .texts
        .iter()
        .map(|t| ("text", t.text_id.clone(), t.text.as_str()));
    captions.chain(others)
}

fn write(dir: &Path, corpus: &Corpus, progress: bool) -> Result<()> {
    let fail = |e: tantivy::TantivyError| search_error(dir, e.to_string());
    let (schema, fields) = Fields::schema();
    let index = Index::create_in_dir(dir, schema).map_err(fail)?;
    let mut writer = index
        .writer_with_num_threads::<TantivyDocument>(1, WRITER_BYTES)
        .map_err(fail)?;
    let total = corpus.pairs.len() + corpus.texts.len();
    let bar = crate::core::progress::progress_bar(progress, total as u64, "texts indexed (BM25)");
    for (row, (source, id, text)) in texts(corpus).enumerate() {
        let mut doc = TantivyDocument::default();
        doc.add_text(fields.text, text);
        doc.add_text(fields.id, &id);
        doc.add_text(fields.source, source);
        doc.add_u64(fields.row, row as u64);
        writer.add_document(doc).map_err(fail)?;
        bar.inc(1);
    }
    writer.commit().map_err(fail)?;
    writer.wait_merging_threads().map_err(fail)?;
    bar.finish_and_clear();
    Ok(())
}

fn search_error(path: &Path, message: String) -> Error {
    Error::TextIndex {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{test_corpus, CorpusText};
    use crate::store::artifact::IndexPolicy;
    use proptest::prelude::*;

    /// Every matching document with its exact score, from an exhaustive search, fully
    /// sorted by the documented rule: the reference for the over-fetching ranker.
    fn brute_force(index: &Bm25Index, text: &str) -> Vec<Hit> {
        let searcher = index.searcher();
        let query = index.query(&searcher, text).unwrap();
        let everything = TopDocs::with_limit(index.len()).order_by_score();
        let addresses: Vec<DocAddress> = searcher
            .search(&query.query, &everything)
            .unwrap()
            .into_iter()
            .map(|(_, addr)| addr)
            .collect();
        let scores = index.rescore(&searcher, &query, &addresses).unwrap();
        let mut all: Vec<Hit> = addresses
            .iter()
            .zip(scores)
            .map(|(&addr, score)| Hit {
                doc: index.row_of(addr),
                score,
            })
            .filter(|h| h.score > 0.0)
            .collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.doc.cmp(&b.doc)));
        all
    }

    fn corpus(captions: &[String], images: &[u32], texts: &[String]) -> Corpus {
        let mut corpus = test_corpus(captions.iter().map(String::as_str));
        for (pair, image) in corpus.pairs.iter_mut().zip(images) {
            pair.image_id = image.to_string();
        }
        corpus.texts = texts
            .iter()
            .enumerate()
            .map(|(i, t)| CorpusText {
                text_id: format!("t{i}"),
                text: t.clone(),
            })
            .collect();
        corpus
    }

    /// Short texts from a small vocabulary: many equal scores, so ties get exercised.
    fn texts(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<String>> {
        let word = prop::sample::select(vec!["dog", "red", "ball", "on", "grass", "cat", "a"]);
        prop::collection::vec(prop::collection::vec(word, 1..5), n)
            .prop_map(|docs| docs.into_iter().map(|d| d.join(" ")).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn ranking_and_negatives_match_brute_force(
            captions in texts(1..40),
            others in texts(0..10),
            k in 1usize..6,
            ceiling in prop::sample::select(vec![0.5f32, 0.9, 1.0]),
            seed in 0u32..5,
        ) {
            let images: Vec<u32> = (0..captions.len() as u32).map(|i| (i * 7 + seed) % 5).collect();
            let corpus = corpus(&captions, &images, &others);
            let dir = tempfile::tempdir().unwrap();
            let opened = Bm25Index::build_or_open(dir.path(), &corpus, false, IndexPolicy::Build).unwrap();
            prop_assert!(opened.built);
            let index = opened.value;
            prop_assert_eq!(index.len(), captions.len() + others.len());
            let groups = corpus.image_groups();
            let searcher = index.searcher();
            for (row, caption) in captions.iter().enumerate() {
                let all = brute_force(&index, caption);
                let shown = index.search(caption, k).unwrap();
                prop_assert_eq!(shown.len(), all.len().min(k));
                for (hit, want) in shown.iter().zip(&all) {
                    let row = want.doc as usize;
                    let text = captions.get(row).unwrap_or_else(|| &others[row - captions.len()]);
                    prop_assert_eq!((&hit.text, hit.score), (text, want.score));
                }

                let own = all.iter().find(|h| h.doc as usize == row).map_or(0.0, |h| h.score);
                let (negatives, skipped) =
                    index.negatives(&searcher, caption, row, &groups, k, ceiling).unwrap();
                let eligible: Vec<Hit> = all
                    .iter()
                    .filter(|h| (h.doc as usize) < captions.len() && groups[h.doc as usize] != groups[row])
                    .map(|h| Hit { doc: h.doc, score: h.score / own })
                    .collect();
                let expected: Vec<Hit> = eligible.iter().filter(|h| h.score <= ceiling).take(k).copied().collect();
                prop_assert_eq!(&negatives, &expected);
                let above: Vec<usize> = (0..eligible.len()).filter(|&i| eligible[i].score > ceiling).collect();
                if expected.len() < k {
                    prop_assert_eq!(skipped as usize, above.len());
                } else {
                    let last = eligible.iter().position(|h| h.doc == expected[k - 1].doc).unwrap();
                    prop_assert!(skipped as usize >= above.iter().filter(|&&i| i < last).count());
                }
            }
        }
    }

    #[test]
    fn unchanged_texts_reuse_the_index_and_changed_ones_rebuild_it() {
        let dir = tempfile::tempdir().unwrap();
        let captions = ["a dog on grass".to_string(), "a red ball".to_string()];
        let first = corpus(&captions, &[0, 1], &[]);
        let open = |corpus: &Corpus, policy| {
            Bm25Index::build_or_open(dir.path(), corpus, false, policy).unwrap()
        };
        assert!(open(&first, IndexPolicy::Build).built);
        // Reopened by a worker: opening it left it unchanged.
        assert!(!open(&first, IndexPolicy::ReuseOnly).built);
        let changed = corpus(&captions, &[0, 1], &["a cat".to_string()]);
        let opened = open(&changed, IndexPolicy::Build);
        assert!(opened.built);
        assert_eq!(opened.record.details["texts"], 3);
        let hit = &opened.value.search("cat", 1).unwrap()[0];
        assert_eq!((hit.source.as_str(), hit.id.as_str()), ("text", "t0"));
        let manifest = crate::store::artifact::IndexManifest::load(dir.path());
        assert_eq!(
            manifest.get("bm25").map(|r| r.details["texts"].clone()),
            Some(3.into())
        );
    }

    #[test]
    fn a_folder_without_an_index_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let message = Bm25Index::open(dir.path()).err().unwrap().to_string();
        assert!(
            message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("cmcl index"), "{message}");
    }
}
