//! Back-translation positives: each caption goes English -> pivot -> English through
//! one or more translation backends, and the round trips that keep the meaning while
//! changing the words become positives of kind `backtranslation`.

pub mod apertium;
pub mod marian;

use crate::core::error::Result;

/// Translates batches of text in one direction. One instance per worker thread; it may
/// hold a subprocess or a loaded model.
pub trait Translator: Send {
    /// Names backend, model and direction, e.g. `apertium/eng-spa`; part of cache keys,
    /// so it must change whenever the outputs could.
    fn id(&self) -> &str;

    /// Exactly one output per input, in input order. Blank inputs give blank outputs.
    fn translate(&mut self, texts: &[&str]) -> Result<Vec<String>>;
}

pub mod cache;
pub mod filter;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use self::apertium::{Apertium, ApertiumOptions};
use self::cache::TranslationCache;
use self::filter::{lexical_check, FilterConfig};
use self::marian::{Marian, MarianOptions};
use crate::core::error::Error;
use crate::core::record::Corpus;
use crate::core::sample::{Item, StageStats};
use crate::embed::text::{cosine, TextEncoder};
use crate::stages::{boxed, Batch, BuildContext, Stage, StageSpec};
use crate::text::parse::lexicon::DEFAULT_WORDNET_DIR;
use crate::text::parse::Parser;
use crate::text::words::normalize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Marian when models are configured for every pivot, else Apertium when installed.
    Auto,
    Apertium,
    Marian,
}

/// The two Marian models of one pivot language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarianPair {
    pub to_pivot: PathBuf,
    pub from_pivot: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarianSettings {
    /// Pivot language -> its model folders.
    pub models: BTreeMap<String, MarianPair>,
    #[serde(flatten)]
    pub options: MarianOptions,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktranslateConfig {
    #[serde(default = "default_backend")]
    pub backend: Backend,
    /// Pivot languages, as Apertium codes (`spa`, `cat`) or keys of `marian.models`.
    pub pivots: Vec<String>,
    /// Most positives kept per caption (in pivot order).
    #[serde(default = "default_max_positives")]
    pub max_positives: usize,
    /// The sentence encoder folder (all-MiniLM-L6-v2 layout) for the similarity check.
    pub encoder: PathBuf,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub apertium: ApertiumOptions,
    #[serde(default)]
    pub marian: Option<MarianSettings>,
}

fn default_backend() -> Backend {
    Backend::Auto
}

fn default_max_positives() -> usize {
    2
}

impl StageSpec for BacktranslateConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.pivots.is_empty() {
            return Err("pivots needs at least one language".into());
        }
        if self.max_positives == 0 {
            return Err("max_positives must be at least 1".into());
        }
        if self.backend == Backend::Marian {
            let models = self.marian.as_ref().map(|m| &m.models);
            if let Some(p) = self
                .pivots
                .iter()
                .find(|p| !models.is_some_and(|m| m.contains_key(*p)))
            {
                return Err(format!("backend marian needs marian.models.{p}"));
            }
        }
        self.filter.validate()
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        let mut paths = vec![&mut self.encoder];
        if let Some(dir) = &mut self.filter.wordnet_dir {
            paths.push(dir);
        }
        if let Some(marian) = &mut self.marian {
            for pair in marian.models.values_mut() {
                paths.push(&mut pair.to_pivot);
                paths.push(&mut pair.from_pivot);
            }
        }
        paths
    }

    fn build(&self, corpus: &Corpus, context: &BuildContext) -> Result<Box<dyn Stage>> {
        BacktranslateStage::build(self.clone(), corpus, context.cache_dir).map(boxed)
    }
}

type Factory = Box<dyn Fn() -> Result<Box<dyn Translator>> + Send + Sync>;

/// Translators of one direction, started on demand (one per concurrent worker) and
/// reused for the whole run.
struct Pool {
    id: String,
    factory: Factory,
    idle: Mutex<Vec<Box<dyn Translator>>>,
    starts: AtomicU64,
}

impl Pool {
    fn new(id: String, factory: Factory) -> Pool {
        Pool {
            id,
            factory,
            idle: Mutex::new(Vec::new()),
            starts: AtomicU64::new(0),
        }
    }

    /// A translator of this pool for one worker's exclusive use, started only when
    /// first asked to translate (a fully cached run starts none).
    fn checkout(&self) -> Checkout<'_> {
        Checkout {
            pool: self,
            translator: None,
        }
    }
}

/// A pool's translator on loan; goes back to the pool when dropped.
struct Checkout<'a> {
    pool: &'a Pool,
    translator: Option<Box<dyn Translator>>,
}

impl Translator for Checkout<'_> {
    fn id(&self) -> &str {
        &self.pool.id
    }

    fn translate(&mut self, texts: &[&str]) -> Result<Vec<String>> {
        let translator = match &mut self.translator {
            Some(translator) => translator,
            slot => {
                let idle = self.pool.idle.lock().ok().and_then(|mut idle| idle.pop());
                let translator = match idle {
                    Some(t) => t,
                    None => {
                        self.pool.starts.fetch_add(1, Ordering::Relaxed);
                        (self.pool.factory)()?
                    }
                };
                slot.insert(translator)
            }
        };
        let out = translator.translate(texts)?;
        if out.len() != texts.len() {
            return Err(Error::translate(
                &self.pool.id,
                format!("{} outputs for {} inputs", out.len(), texts.len()),
            ));
        }
        Ok(out)
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let (Some(translator), Ok(mut idle)) = (self.translator.take(), self.pool.idle.lock()) {
            idle.push(translator);
        }
    }
}

/// A translator behind the translation cache: only texts it never saw reach it, each
/// once per call.
struct Cached<'a, T> {
    inner: T,
    cache: &'a TranslationCache,
    hits: u64,
    translated: u64,
}

impl<'a, T: Translator> Cached<'a, T> {
    fn new(inner: T, cache: &'a TranslationCache) -> Self {
        Cached {
            inner,
            cache,
            hits: 0,
            translated: 0,
        }
    }
}

impl<T: Translator> Translator for Cached<'_, T> {
    fn id(&self) -> &str {
        self.inner.id()
    }

    fn translate(&mut self, texts: &[&str]) -> Result<Vec<String>> {
        let id = self.inner.id().to_string();
        let mut out: Vec<Option<String>> = texts
            .iter()
            .map(|t| match t.trim().is_empty() {
                true => Some(String::new()),
                false => self.cache.get(&id, t),
            })
            .collect();
        self.hits += out.iter().filter(|o| o.is_some()).count() as u64;
        let mut seen = std::collections::HashSet::new();
        let missing: Vec<&str> = texts
            .iter()
            .zip(&out)
            .filter(|(text, got)| got.is_none() && seen.insert(**text))
            .map(|(text, _)| *text)
            .collect();
        if missing.is_empty() {
            return Ok(out.into_iter().map(Option::unwrap_or_default).collect());
        }
        self.translated += missing.len() as u64;
        let translated = self.inner.translate(&missing)?;
        let pairs: Vec<(&str, &str)> = missing
            .iter()
            .copied()
            .zip(translated.iter().map(String::as_str))
            .collect();
        self.cache.insert_all(&id, &pairs)?;
        let fresh: HashMap<&str, &str> = pairs.into_iter().collect();
        for (text, slot) in texts.iter().zip(&mut out) {
            if slot.is_none() {
                *slot = fresh.get(text).map(|s| s.to_string());
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }
}

/// Texts a round trip hands from one direction to the other at a time: the unit of
/// overlap between the directions and of cache writes.
pub const ROUND_TRIP_CHUNK: usize = 128;

/// English -> pivot -> English for `texts`, the two directions overlapping as in a shell
/// pipe: the backward translator works on one chunk while the forward one works on the
/// next. Returns the pivot texts and the round trips, one of each per input.
pub fn round_trip(
    forward: &mut dyn Translator,
    backward: &mut dyn Translator,
    texts: &[&str],
    chunk: usize,
) -> Result<(Vec<String>, Vec<String>)> {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<String>>(1);
    std::thread::scope(|scope| {
        let back = scope.spawn(move || -> Result<(Vec<String>, Vec<String>)> {
            let (mut via, mut out) = (Vec::new(), Vec::new());
            for pivot_texts in receiver {
                let refs: Vec<&str> = pivot_texts.iter().map(String::as_str).collect();
                out.extend(backward.translate(&refs)?);
                via.extend(pivot_texts);
            }
            Ok((via, out))
        });
        let mut sent = Ok(());
        for part in texts.chunks(chunk.max(1)) {
            let via = match forward.translate(part) {
                Ok(via) => via,
                Err(e) => {
                    sent = Err(e);
                    break;
                }
            };
            // A closed channel means the backward direction failed; its error wins.
            if sender.send(via).is_err() {
                break;
            }
        }
        drop(sender);
        let received = back
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        sent.and(received)
    })
}

struct Pivot {
    name: String,
    forward: Pool,
    backward: Pool,
}

/// The `backtranslate` stage.
pub struct BacktranslateStage {
    config: BacktranslateConfig,
    pivots: Vec<Pivot>,
    encoder: TextEncoder,
    /// For the synonym-aware dropped-word check, when configured and no parser carries
    /// one already.
    wordnet: Option<crate::text::wordnet::WordNet>,
    /// For the same-graph check (`filter.same_graph`).
    parser: Option<Parser>,
    /// The run's word pairs, for the well-formedness check (`filter.well_formed`).
    bigrams: Option<filter::Bigrams>,
    cache: TranslationCache,
}

const INSTALL_HINT: &str =
    "install Apertium (`make apt-deps`, or `apt-get install apertium-eng-spa apertium-eng-cat apertium-eo-en`) \
or configure Marian models (marian.models.PIVOT = { to_pivot = DIR, from_pivot = DIR })";

impl BacktranslateStage {
    pub fn build(
        config: BacktranslateConfig,
        corpus: &Corpus,
        cache_dir: &std::path::Path,
    ) -> Result<BacktranslateStage> {
        let stage_error = |message: String| Error::Stage {
            stage: "backtranslate".into(),
            message,
        };
        let has_marian = |p: &String| {
            config
                .marian
                .as_ref()
                .is_some_and(|m| m.models.contains_key(p))
        };
        let command = config.apertium.command.clone();
        let has_apertium = |p: &String| apertium::modes(&command, p).is_some();
        let backend = match config.backend {
            Backend::Auto if config.pivots.iter().all(has_marian) => Backend::Marian,
            Backend::Auto if config.pivots.iter().all(has_apertium) => Backend::Apertium,
            Backend::Auto => {
                return Err(stage_error(format!(
                    "no translation backend for pivots {:?}: {INSTALL_HINT}",
                    config.pivots
                )))
            }
            Backend::Apertium => match config.pivots.iter().find(|p| !has_apertium(p)) {
                Some(p) => {
                    return Err(stage_error(format!(
                        "Apertium cannot translate eng<->{p}: {INSTALL_HINT}"
                    )))
                }
                None => Backend::Apertium,
            },
            Backend::Marian => Backend::Marian,
        };
        let mut pivots = Vec::new();
        for name in &config.pivots {
            let (forward, backward) = match backend {
                Backend::Marian => {
                    let settings = config.marian.as_ref().ok_or_else(|| {
                        stage_error("backend marian needs a [marian] table".into())
                    })?;
                    let pair = settings
                        .models
                        .get(name)
                        .ok_or_else(|| stage_error(format!("no marian.models.{name}")))?;
                    (
                        marian_pool(&pair.to_pivot, &settings.options)?,
                        marian_pool(&pair.from_pivot, &settings.options)?,
                    )
                }
                _ => {
                    let (to_pivot, from_pivot) = apertium::modes(&command, name)
                        .ok_or_else(|| stage_error(format!("Apertium lost eng<->{name}")))?;
                    (
                        apertium_pool(&to_pivot, &config.apertium),
                        apertium_pool(&from_pivot, &config.apertium),
                    )
                }
            };
            pivots.push(Pivot {
                name: name.clone(),
                forward,
                backward,
            });
        }
        let parser = if config.filter.same_graph {
            let dir = config
                .filter
                .wordnet_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_WORDNET_DIR));
            Some(Parser::load(&dir)?)
        } else {
            None
        };
        // The parser's WordNet serves the synonym check too when it is the same folder.
        let wordnet = match (&config.filter.wordnet_dir, &parser) {
            (Some(_), Some(_)) | (None, _) => None,
            (Some(dir), None) => Some(crate::text::wordnet::WordNet::load(dir).map_err(|e| {
                Error::model(dir, format!("{e} (install wordnet-base: `make apt-deps`)"))
            })?),
        };
        let bigrams = config
            .filter
            .well_formed
            .then(|| filter::Bigrams::of(corpus.distinct_texts().0));
        Ok(BacktranslateStage {
            wordnet,
            parser,
            bigrams,
            encoder: TextEncoder::load(&config.encoder)?,
            cache: TranslationCache::open(cache_dir)?,
            config,
            pivots,
        })
    }

    /// Translators started so far (subprocesses spawned or models loaded on demand).
    fn starts(&self) -> u64 {
        let pools = self.pivots.iter().flat_map(|p| [&p.forward, &p.backward]);
        pools.map(|pool| pool.starts.load(Ordering::Relaxed)).sum()
    }

    /// One pivot's round trip of `captions` through the cache, split among the workers,
    /// each with its own pair of translators.
    fn round_trip_cached(
        &self,
        pivot: &Pivot,
        captions: &[String],
        stats: &mut StageStats,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
        let part = refs.len().div_ceil(rayon::current_num_threads()).max(1);
        let parts = refs
            .par_chunks(part)
            .map(|part| {
                let mut forward = Cached::new(pivot.forward.checkout(), &self.cache);
                let mut backward = Cached::new(pivot.backward.checkout(), &self.cache);
                let trip = round_trip(&mut forward, &mut backward, part, ROUND_TRIP_CHUNK)?;
                let hits = forward.hits + backward.hits;
                Ok((trip, hits, forward.translated + backward.translated))
            })
            .collect::<Result<Vec<_>>>()?;
        let (mut via, mut back) = (Vec::new(), Vec::new());
        for ((part_via, part_back), hits, translated) in parts {
            via.extend(part_via);
            back.extend(part_back);
            stats.count("cache_hits", hits);
            stats.count("translated", translated);
        }
        Ok((via, back))
    }
}

fn apertium_pool(mode: &str, options: &ApertiumOptions) -> Pool {
    let (mode, options) = (mode.to_string(), options.clone());
    Pool::new(
        format!("apertium/{mode}"),
        Box::new(move || Ok(Box::new(Apertium::spawn(&mode, &options)?) as Box<dyn Translator>)),
    )
}

fn marian_pool(dir: &std::path::Path, options: &MarianOptions) -> Result<Pool> {
    // Loaded once up front for its id (cheap next to translating); workers load their own.
    let first = Marian::load(dir, options)?;
    let id = first.id().to_string();
    let (dir, options) = (dir.to_path_buf(), options.clone());
    let pool = Pool::new(
        id,
        Box::new(move || Ok(Box::new(Marian::load(&dir, &options)?) as Box<dyn Translator>)),
    );
    if let Ok(mut idle) = pool.idle.lock() {
        idle.push(Box::new(first));
    }
    Ok(pool)
}

/// A round trip that passed the lexical checks, waiting for the similarity check.
struct Candidate {
    row: usize,
    pivot: usize,
    text: String,
    via: String,
    lexical: filter::Lexical,
}

impl Stage for BacktranslateStage {
    fn name(&self) -> &str {
        "backtranslate"
    }

    fn augment(&self, batch: Batch) -> Result<()> {
        let (corpus, rows, out, stats) = (batch.corpus, batch.rows, batch.out, batch.stats);
        let stats = stats.entry(self.name().to_string()).or_default();
        let starts_before = self.starts();
        let captions: Vec<String> = corpus.pairs[rows]
            .iter()
            .map(|p| p.caption.clone())
            .collect();
        let mut candidates = Vec::new();
        let mut seen: Vec<Vec<String>> = vec![Vec::new(); captions.len()];
        let vocabulary: &(dyn filter::Vocabulary + Sync) = match (&self.wordnet, &self.parser) {
            (Some(wordnet), _) => wordnet,
            (None, Some(parser)) if self.config.filter.wordnet_dir.is_some() => {
                parser.lexicon().wordnet()
            }
            _ => &filter::NoVocabulary,
        };
        // Cheapest first: the token and well-formedness checks, WordNet, and only then a
        // parse of the survivor and its caption, which most round trips never reach.
        let check = |row: usize, text: &str| -> std::result::Result<filter::Lexical, &'static str> {
            let lexical = lexical_check(
                &self.config.filter,
                &captions[row],
                text,
                vocabulary,
                self.bigrams.as_ref(),
            )?;
            if let Some(parser) = &self.parser {
                let wordnet = parser.lexicon().wordnet();
                if !filter::graph_kept(wordnet, &parser.parse(&captions[row]), &parser.parse(text)) {
                    return Err("graph_changed");
                }
            }
            Ok(lexical)
        };
        for (p, pivot) in self.pivots.iter().enumerate() {
            let (via, back) = self.round_trip_cached(pivot, &captions, stats)?;
            let mut pending = Vec::new();
            for (row, (text, via)) in back.into_iter().zip(via).enumerate() {
                let normalized = normalize(&text);
                if seen[row].contains(&normalized) {
                    stats.reject("duplicate", 1);
                    continue;
                }
                seen[row].push(normalized);
                pending.push((row, text, via));
            }
            let verdicts: Vec<_> = pending.par_iter().map(|(row, text, _)| check(*row, text)).collect();
            for ((row, text, via), verdict) in pending.into_iter().zip(verdicts) {
                match verdict {
                    Ok(lexical) => candidates.push(Candidate {
                        row,
                        pivot: p,
                        text,
                        via,
                        lexical,
                    }),
                    Err(reason) => stats.reject(reason, 1),
                }
            }
        }
        // One encoder pass over the surviving candidates and their originals only: the
        // cheap checks reject most round trips, and encoding every caption would cost
        // more than translating it.
        let mut rows: Vec<usize> = candidates.iter().map(|c| c.row).collect();
        rows.sort_unstable();
        rows.dedup();
        let texts: Vec<&str> = rows
            .iter()
            .map(|&r| captions[r].as_str())
            .chain(candidates.iter().map(|c| c.text.as_str()))
            .collect();
        let vectors = self.encoder.encode(&texts)?;
        let (originals, paraphrases) = vectors.split_at(rows.len());
        for (candidate, vector) in candidates.into_iter().zip(paraphrases) {
            let original = rows.binary_search(&candidate.row).map_err(|_| Error::Stage {
                stage: "backtranslate".into(),
                message: format!("row {} lost its original's vector", candidate.row),
            })?;
            let similarity = cosine(&originals[original], vector);
            if similarity < self.config.filter.min_similarity {
                stats.reject("low_similarity", 1);
                continue;
            }
            let positives = &mut out[candidate.row].positives;
            if positives
                .iter()
                .filter(|i| i.kind == "backtranslation")
                .count()
                >= self.config.max_positives
            {
                stats.reject("over_max_positives", 1);
                continue;
            }
            let pivot = &self.pivots[candidate.pivot];
            stats.produced += 1;
            positives.push(Item {
                text: Some(candidate.text),
                ref_id: None,
                kind: "backtranslation".into(),
                generator: "backtranslate".into(),
                params: serde_json::json!({
                    "pivot": pivot.name,
                    "backend": format!("{}+{}", pivot.forward.id, pivot.backward.id),
                    "via": candidate.via,
                    "similarity": similarity,
                    "edit_ratio": candidate.lexical.edit_ratio,
                    "dropped_content_words": candidate.lexical.dropped_content_words,
                    "length_ratio": candidate.lexical.length_ratio,
                })
                .to_string(),
                score: similarity,
            });
        }
        let with_positive = out
            .iter()
            .filter(|a| a.positives.iter().any(|i| i.kind == "backtranslation"))
            .count();
        stats.count("pairs_with_positive", with_positive as u64);
        stats.count("translator_starts", self.starts() - starts_before);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::{Augmented, Stats};

    /// A translator that answers from a table: scripted round trips for the filter.
    struct Scripted {
        id: String,
        table: HashMap<String, String>,
    }

    impl Translator for Scripted {
        fn id(&self) -> &str {
            &self.id
        }

        fn translate(&mut self, texts: &[&str]) -> Result<Vec<String>> {
            Ok(texts
                .iter()
                .map(|t| self.table.get(*t).cloned().unwrap_or_default())
                .collect())
        }
    }

    /// Appends `tag` to every text; fails on a batch holding `fail_on`.
    struct Tagging {
        tag: &'static str,
        fail_on: &'static str,
    }

    impl Translator for Tagging {
        fn id(&self) -> &str {
            self.tag
        }

        fn translate(&mut self, texts: &[&str]) -> Result<Vec<String>> {
            match texts.iter().find(|t| **t == self.fail_on) {
                Some(t) => Err(Error::translate(self.tag, format!("cannot do {t}"))),
                None => Ok(texts.iter().map(|t| format!("{t}{}", self.tag)).collect()),
            }
        }
    }

    #[test]
    fn round_trip_keeps_order_and_reports_either_direction_failing() {
        let texts: Vec<String> = (0..1000).map(|i| format!("t{i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tagging = |tag, fail_on| Tagging { tag, fail_on };
        for chunk in [1, 7, 512, 5000] {
            let (via, back) = round_trip(
                &mut tagging("/es", ""),
                &mut tagging("/en", ""),
                &refs,
                chunk,
            )
            .unwrap();
            assert_eq!(via.len(), 1000);
            for (i, (v, b)) in via.iter().zip(&back).enumerate() {
                assert_eq!(
                    (v.as_str(), b.as_str()),
                    (&*format!("t{i}/es"), &*format!("t{i}/es/en"))
                );
            }
        }
        let forward_fails = round_trip(
            &mut tagging("/es", "t900"),
            &mut tagging("/en", ""),
            &refs,
            10,
        );
        assert!(forward_fails
            .unwrap_err()
            .to_string()
            .contains("cannot do t900"));
        let backward_fails = round_trip(
            &mut tagging("/es", ""),
            &mut tagging("/en", "t3/es"),
            &refs,
            10,
        );
        assert!(backward_fails
            .unwrap_err()
            .to_string()
            .contains("cannot do t3/es"));
    }

    fn scripted_pool(id: &str, table: &[(&str, &str)]) -> Pool {
        let (id, table): (String, HashMap<String, String>) = (
            id.into(),
            table
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        );
        let pool_id = id.clone();
        Pool::new(
            pool_id,
            Box::new(move || {
                Ok(Box::new(Scripted {
                    id: id.clone(),
                    table: table.clone(),
                }) as Box<dyn Translator>)
            }),
        )
    }

    #[test]
    fn every_reject_reason_is_counted_and_positives_are_capped() {
        // Each caption's round trip through pivot "p" (and "q") is scripted.
        let cases = [
            (
                "a man riding a horse on the beach",
                "a person rides a horse along the beach",
            ), // kept
            ("a dog on a red sofa", "a dog on a red sofa"), // identical
            ("two cats sleeping on a bed", ""),             // empty
            ("a plate of food on a table", "food"),         // length_ratio
            (
                "a long red train is passing through the old station today",
                "a long red train is passing through the old station now",
            ), // too_few_changes
            (
                "a boy flying a red kite in a park",
                "a girl holding a blue balloon in a park",
            ), // dropped_content_words
            (
                "a bus parked near the corner",
                "a sandwich sits near the window",
            ), // low_similarity
        ];
        let forward: Vec<(&str, &str)> = cases.iter().map(|(c, _)| (*c, *c)).collect();
        let backward: Vec<(&str, &str)> = cases.iter().map(|(c, b)| (*c, *b)).collect();
        let dir = tempfile::tempdir().unwrap();
        let config = BacktranslateConfig {
            backend: Backend::Apertium,
            pivots: vec!["p".into(), "q".into()],
            max_positives: 1,
            encoder: PathBuf::new(),
            // The scripted round trips change graphs on purpose ("man" -> "person");
            // `filter::tests` covers the same-graph check.
            filter: FilterConfig {
                max_dropped_content_words: 3,
                same_graph: false,
                ..FilterConfig::default()
            },
            apertium: ApertiumOptions::default(),
            marian: None,
        };
        let mut third = backward.clone();
        third[0].1 = "a man rides a horse on the beach";
        let pivot = |name: &str, back: &[(&str, &str)]| Pivot {
            name: name.into(),
            forward: scripted_pool(&format!("fake/eng-{name}"), &forward),
            backward: scripted_pool(&format!("fake/{name}-eng"), back),
        };
        // Pivot "q" repeats every round trip of "p"; "r" differs only on the first
        // caption, with a second good paraphrase that the cap of one turns away.
        let stage = BacktranslateStage {
            wordnet: None,
            parser: None,
            bigrams: None,
            encoder: crate::embed::text::tests::minilm(),
            cache: TranslationCache::open(dir.path()).unwrap(),
            config,
            pivots: vec![
                pivot("p", &backward),
                pivot("q", &backward),
                pivot("r", &third),
            ],
        };
        let corpus = crate::core::record::test_corpus(cases.iter().map(|(c, _)| *c));
        let mut out = vec![Augmented::default(); cases.len()];
        let mut stats = Stats::new();
        let batch = Batch {
            corpus: &corpus,
            rows: 0..cases.len(),
            out: &mut out,
            stats: &mut stats,
        };
        stage.augment(batch).unwrap();
        let s = &stats["backtranslate"];
        let rejected = |r: &str| s.rejected.get(r).copied().unwrap_or(0);
        let kept: Vec<_> = out
            .iter()
            .flat_map(|a| a.positives.iter().map(|p| p.text.clone()))
            .collect();
        assert_eq!(s.produced, 1, "{s:?} {kept:?}");
        assert_eq!(out[0].positives.len(), 1);
        assert_eq!(
            out[0].positives[0].text.as_deref(),
            Some("a person rides a horse along the beach")
        );
        assert!(out[0].positives[0].params.contains("\"pivot\":\"p\""));
        assert_eq!(rejected("identical"), 1);
        assert_eq!(rejected("empty"), 1);
        assert_eq!(rejected("length_ratio"), 1);
        assert_eq!(rejected("too_few_changes"), 1);
        assert_eq!(rejected("dropped_content_words"), 1, "{s:?}");
        assert_eq!(rejected("low_similarity"), 1, "{s:?}");
        assert_eq!(rejected("duplicate"), 2 * cases.len() as u64 - 1, "{s:?}");
        assert_eq!(rejected("over_max_positives"), 1, "{s:?}");
        // At least one translator per pool; more when chunks ran concurrently.
        assert!(s.counters["translator_starts"] >= 6, "{s:?}");
        assert_eq!(s.counters["pairs_with_positive"], 1);
    }
}
