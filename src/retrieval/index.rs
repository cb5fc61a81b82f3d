//! The retrieval indexes of a run, under `<out>/index/`: `text.hnsw` (MiniLM vectors of
//! every caption, then every text of the text corpus), `image.hnsw` (one vector per
//! distinct pair image, then every image of the image corpus) and `manifest.json`
//! (embedding ids, dimensions, counts, input checksums, build parameters, file
//! checksums). Node `i` of an index is entry `i` of [`Entries`], which is derived from the
//! corpus in a fixed order, so nothing else needs storing.
//!
//! An index whose input checksum and file checksum match the manifest is loaded, not
//! rebuilt; anything else rebuilds it.

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::image::{ImageEmbedder, ImageRef};
use super::RetrievalConfig;
use crate::error::{Error, Result};
use crate::hnsw::{Hnsw, HnswParams};
use crate::record::Corpus;
use crate::stage::IndexPolicy;
use crate::text_encoder::TextEncoder;

pub const MANIFEST: &str = "manifest.json";
const TEXT_FILE: &str = "text.hnsw";
const IMAGE_FILE: &str = "image.hnsw";
/// Texts per encoder call (and progress step).
const ENCODE_CHUNK: usize = 512;

/// What the nodes of both indexes stand for.
#[derive(Debug, Default)]
pub struct Entries {
    /// Per text node: its first occurrence, a pair row's caption or a text-corpus text.
    /// Texts equal after normalising (case, punctuation) share one node, so repeated
    /// captions are embedded once and never crowd each other out of the graph.
    pub texts: Vec<TextEntry>,
    /// Text node of each pair row's caption.
    pub text_of_pair: Vec<u32>,
    /// Per image node: the first pair row showing it, or the image-corpus index.
    pub images: Vec<ImageEntry>,
    /// Image node of each pair row.
    pub image_of_pair: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TextEntry {
    Caption(usize),
    Corpus(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageEntry {
    Pair(usize),
    Corpus(usize),
}

impl Entries {
    pub fn of(corpus: &Corpus) -> Entries {
        let image_of_pair = corpus.image_groups();
        // A group's first pair stands for its image: groups are numbered as they appear.
        let mut images = Vec::new();
        for (row, &group) in image_of_pair.iter().enumerate() {
            if group as usize == images.len() {
                images.push(ImageEntry::Pair(row));
            }
        }
        images.extend((0..corpus.images.len()).map(ImageEntry::Corpus));
        let all = (0..corpus.pairs.len())
            .map(TextEntry::Caption)
            .chain((0..corpus.texts.len()).map(TextEntry::Corpus));
        let keys: Vec<String> = all
            .clone()
            .collect::<Vec<_>>()
            .par_iter()
            .map(|&entry| crate::backtranslate::filter::normalize(text_of(corpus, entry)))
            .collect();
        let node_of = crate::record::dense_ids(keys.iter());
        let mut texts = Vec::new();
        for (entry, &node) in all.zip(&node_of) {
            if node as usize == texts.len() {
                texts.push(entry);
            }
        }
        Entries {
            texts,
            text_of_pair: node_of[..corpus.pairs.len()].to_vec(),
            images,
            image_of_pair,
        }
    }

    pub fn text<'a>(&self, corpus: &'a Corpus, node: u32) -> &'a str {
        text_of(corpus, self.texts[node as usize])
    }

    pub fn image<'a>(&self, corpus: &'a Corpus, node: u32) -> ImageRef<'a> {
        match self.images[node as usize] {
            ImageEntry::Pair(row) => {
                let p = &corpus.pairs[row];
                ImageRef {
                    image_id: &p.image_id,
                    image_path: p.image_path.as_deref(),
                    image_vector: p.image_vector.as_deref(),
                }
            }
            ImageEntry::Corpus(i) => {
                let c = &corpus.images[i];
                ImageRef {
                    image_id: &c.image_id,
                    image_path: c.image_path.as_deref(),
                    image_vector: c.image_vector.as_deref(),
                }
            }
        }
    }

    pub fn objects<'a>(&self, corpus: &'a Corpus, node: u32) -> Option<&'a [String]> {
        match self.images[node as usize] {
            ImageEntry::Pair(row) => corpus.pairs[row].objects.as_deref(),
            ImageEntry::Corpus(i) => corpus.images[i].objects.as_deref(),
        }
    }
}

fn text_of(corpus: &Corpus, entry: TextEntry) -> &str {
    match entry {
        TextEntry::Caption(row) => &corpus.pairs[row].caption,
        TextEntry::Corpus(i) => &corpus.texts[i].text,
    }
}

/// One index's line in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexRecord {
    pub file: String,
    /// The embedding method (model id or descriptor settings).
    pub embedding: String,
    pub dim: usize,
    pub count: usize,
    /// SHA-256 over the embedding id, the build settings and every input it embeds.
    pub inputs_sha256: String,
    pub hnsw: HnswParams,
    pub reproducible: bool,
    pub file_sha256: String,
    pub build_seconds: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexManifest {
    pub text: Option<IndexRecord>,
    pub image: Option<IndexRecord>,
    /// The tantivy BM25 index of every text ([`crate::bm25`]).
    #[serde(default)]
    pub bm25: Option<crate::bm25::Bm25Record>,
    /// The `tfidf` stage's index ([`crate::tfidf::TfidfIndex`]).
    #[serde(default)]
    pub tfidf: Option<crate::artifact::ArtifactRecord>,
    /// The `scene_graph` stage's caption language model ([`crate::ngram::NgramModel`]).
    #[serde(default)]
    pub ngram: Option<crate::artifact::ArtifactRecord>,
}

impl IndexManifest {
    /// The manifest in `dir`; empty when missing or unreadable, so every index rebuilds.
    pub fn load(dir: &Path) -> IndexManifest {
        std::fs::read(dir.join(MANIFEST))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::io(&path, e.into()))?;
        crate::fsutil::write_bytes_atomic(&path, &json)
    }
}

/// Both indexes, loaded.
pub struct Indexes {
    pub entries: Entries,
    pub text: Hnsw,
    pub image: Hnsw,
    pub manifest: IndexManifest,
    /// Indexes built (rather than loaded) by this call.
    pub built: Vec<&'static str>,
}

/// Loads the indexes under `dir`, building whichever is missing or stale (an error
/// instead under [`IndexPolicy::ReuseOnly`]).
pub fn build_or_open(
    config: &RetrievalConfig,
    corpus: &Corpus,
    dir: &Path,
    progress: bool,
    policy: IndexPolicy,
) -> Result<Indexes> {
    if policy == IndexPolicy::Build {
        crate::fsutil::remove_temp_files(dir)?;
    }
    let entries = Entries::of(corpus);
    let mut manifest = IndexManifest::load(dir);
    let mut built = Vec::new();

    let encoder = TextEncoder::load(&config.text_encoder)?;
    let text_sum = inputs_sha256(encoder.id(), config, |h| {
        for node in 0..entries.texts.len() as u32 {
            let text = entries.text(corpus, node);
            h.update((text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
    });
    let text = match reuse(dir, manifest.text.as_ref(), &text_sum) {
        Some(index) => index,
        None if policy == IndexPolicy::ReuseOnly => return Err(not_prebuilt(dir, TEXT_FILE)),
        None => {
            let started = std::time::Instant::now();
            let texts: Vec<&str> = (0..entries.texts.len() as u32)
                .map(|n| entries.text(corpus, n))
                .collect();
            let bar = bar(progress, texts.len(), "texts embedded (MiniLM)");
            let mut vectors = Vec::with_capacity(texts.len() * encoder.dim());
            for chunk in texts.chunks(ENCODE_CHUNK) {
                vectors.extend(encoder.encode(chunk)?.into_iter().flatten());
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
            let index = build(config, &vectors, encoder.dim(), progress, "texts")?;
            manifest.text = Some(save(
                dir,
                TEXT_FILE,
                &index,
                encoder.id(),
                text_sum,
                config,
                started,
            )?);
            manifest.save(dir)?;
            built.push("text");
            index
        }
    };

    let embedder = config.image_embeddings.build()?;
    let image_sum = inputs_sha256(&embedder.id(), config, |h| {
        for node in 0..entries.images.len() as u32 {
            let image = entries.image(corpus, node);
            for part in [image.image_id, image.image_path.unwrap_or("")] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            for x in image.image_vector.unwrap_or(&[]) {
                h.update(x.to_le_bytes());
            }
        }
    });
    let image = match reuse(dir, manifest.image.as_ref(), &image_sum) {
        Some(index) => index,
        None if policy == IndexPolicy::ReuseOnly => return Err(not_prebuilt(dir, IMAGE_FILE)),
        None => {
            let started = std::time::Instant::now();
            let (vectors, dim) = embed_images(&entries, corpus, embedder.as_ref(), progress)?;
            let index = build(config, &vectors, dim, progress, "images")?;
            manifest.image = Some(save(
                dir,
                IMAGE_FILE,
                &index,
                &embedder.id(),
                image_sum,
                config,
                started,
            )?);
            manifest.save(dir)?;
            built.push("image");
            index
        }
    };
    Ok(Indexes {
        entries,
        text,
        image,
        manifest,
        built,
    })
}

fn bar(progress: bool, total: usize, what: &str) -> ProgressBar {
    crate::augment::progress_bar(progress, total as u64, what)
}

fn inputs_sha256(
    embedding: &str,
    config: &RetrievalConfig,
    feed: impl FnOnce(&mut Sha256),
) -> String {
    let mut h = Sha256::new();
    let settings = serde_json::json!({
        "embedding": embedding,
        "hnsw": config.hnsw,
        "reproducible": config.reproducible,
    });
    h.update(settings.to_string().as_bytes());
    feed(&mut h);
    crate::fsutil::hex(&h.finalize())
}

/// The index in `dir` when the manifest says it was built from these inputs and the
/// file is intact.
/// The error of a worker that finds an index missing or stale.
pub fn not_prebuilt(dir: &Path, file: &str) -> Error {
    Error::Index {
        message: format!(
            "{} is missing or was built from other inputs; a worker of a shard plan only \
             reuses indexes: run `cmcl plan` again",
            dir.join(file).display()
        ),
    }
}

fn reuse(dir: &Path, record: Option<&IndexRecord>, inputs: &str) -> Option<Hnsw> {
    let record = record.filter(|r| r.inputs_sha256 == inputs)?;
    let path = dir.join(&record.file);
    let sum = crate::fsutil::sha256_file(&path).ok()?;
    (sum == record.file_sha256).then(|| Hnsw::load(&path).ok())?
}

fn build(
    config: &RetrievalConfig,
    vectors: &[f32],
    dim: usize,
    progress: bool,
    what: &str,
) -> Result<Hnsw> {
    let n = vectors.len() / dim.max(1);
    let bar = bar(progress, n, &format!("{what} indexed (HNSW)"));
    let threads = config.reproducible.then_some(1);
    let index = Hnsw::build(vectors, dim.max(1), config.hnsw, threads, &|done| {
        bar.set_position(done)
    })?;
    bar.finish_and_clear();
    Ok(index)
}

fn save(
    dir: &Path,
    file: &str,
    index: &Hnsw,
    embedding: &str,
    inputs_sha256: String,
    config: &RetrievalConfig,
    started: std::time::Instant,
) -> Result<IndexRecord> {
    let path = dir.join(file);
    index.save(&path)?;
    Ok(IndexRecord {
        file: file.to_string(),
        embedding: embedding.to_string(),
        dim: index.dim(),
        count: index.len(),
        inputs_sha256,
        hnsw: config.hnsw,
        reproducible: config.reproducible,
        file_sha256: crate::fsutil::sha256_file(&path)?,
        build_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Every image's vector, in node order; all must have the same dimension.
fn embed_images(
    entries: &Entries,
    corpus: &Corpus,
    embedder: &dyn ImageEmbedder,
    progress: bool,
) -> Result<(Vec<f32>, usize)> {
    let bar = bar(progress, entries.images.len(), "images embedded");
    let vectors: Vec<Vec<f32>> = (0..entries.images.len() as u32)
        .into_par_iter()
        .map(|node| {
            let vector = embedder.embed(&entries.image(corpus, node));
            bar.inc(1);
            vector
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();
    let dim = vectors.first().map_or(1, Vec::len);
    for (node, v) in vectors.iter().enumerate() {
        if v.len() != dim || dim == 0 {
            let image = entries.image(corpus, node as u32);
            let first = entries.image(corpus, 0);
            return Err(Error::Stage {
                stage: "retrieval".into(),
                message: format!(
                    "image {} ({}) has a vector of {} dimensions, image {} one of {dim}",
                    image.image_id,
                    image.image_path.unwrap_or("no image_path"),
                    v.len(),
                    first.image_id
                ),
            });
        }
    }
    Ok((vectors.into_iter().flatten().collect(), dim))
}

/// Where a run's indexes live.
pub fn index_dir(out_dir: &Path) -> PathBuf {
    out_dir.join("index")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{test_corpus, CorpusText};

    #[test]
    fn equal_texts_share_one_node_named_by_their_first_occurrence() {
        let mut corpus = test_corpus(["A dog on a bed.", "a cat", "a dog on a bed", "a bird"]);
        // Pairs 0 and 2 show one image.
        corpus.pairs[2].image_id = "0".into();
        corpus.texts = ["A CAT!", "a fish"]
            .iter()
            .enumerate()
            .map(|(i, t)| CorpusText {
                text_id: format!("t{i}"),
                text: t.to_string(),
            })
            .collect();
        let entries = Entries::of(&corpus);
        assert_eq!(
            entries.texts,
            [
                TextEntry::Caption(0),
                TextEntry::Caption(1),
                TextEntry::Caption(3),
                TextEntry::Corpus(1)
            ]
        );
        assert_eq!(entries.text_of_pair, [0, 1, 0, 2]);
        assert_eq!(entries.text(&corpus, 3), "a fish");
        assert_eq!(entries.image_of_pair, [0, 1, 0, 2]);
    }
}
