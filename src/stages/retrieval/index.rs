//! The retrieval stage's indexes, two artifacts under `<out>/index/` (see
//! [`crate::store::artifact`]): `text.hnsw` (MiniLM vectors of every distinct caption,
//! then of the text corpus) and `image.hnsw` (one vector per distinct pair image, then
//! every image of the image corpus). Node `i` of an index is entry `i` of [`Entries`],
//! which is derived from the corpus in a fixed order, so nothing else needs storing.

use std::path::Path;

use rayon::prelude::*;

use super::RetrievalConfig;
use crate::core::error::{Error, Result};
use crate::core::progress::progress_bar;
use crate::core::record::{dense_ids, Corpus};
use crate::embed::image::{ImageEmbedder, ImageRef};
use crate::embed::text::TextEncoder;
use crate::index::hnsw::{Hnsw, VERSION as HNSW_VERSION};
use crate::store::artifact::{Artifact, Built, Details, IndexPolicy, InputsHasher, Opened};
use crate::text::words::normalize;

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
            .map(|&entry| normalize(text_of(corpus, entry)))
            .collect();
        let node_of = dense_ids(keys.iter());
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

/// The indexes the stage asks for (none for a `k` of 0), loaded.
pub struct Indexes {
    pub entries: Entries,
    pub text: Option<Opened<Hnsw>>,
    /// Absent with `image_k = 0`: a caption-only run needs no pixels.
    pub image: Option<Opened<Hnsw>>,
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
    let entries = Entries::of(corpus);
    let place = Place {
        dir,
        progress,
        policy,
    };
    let text = (config.text_k > 0)
        .then(|| text_index(config, corpus, &entries, &place))
        .transpose()?;
    let image = (config.image_k > 0)
        .then(|| image_index(config, corpus, &entries, &place))
        .transpose()?;
    Ok(Indexes {
        entries,
        text,
        image,
    })
}

/// MiniLM vectors of every text node.
fn text_index(
    config: &RetrievalConfig,
    corpus: &Corpus,
    entries: &Entries,
    place: &Place,
) -> Result<Opened<Hnsw>> {
    let encoder = TextEncoder::load(&config.text_encoder)?;
    let mut inputs = InputsHasher::new(&settings(encoder.id(), config));
    for node in 0..entries.texts.len() as u32 {
        inputs.add(entries.text(corpus, node).as_bytes());
    }
    hnsw_index(config, "text", encoder.id(), inputs, place, &|| {
        let texts: Vec<&str> = (0..entries.texts.len() as u32)
            .map(|n| entries.text(corpus, n))
            .collect();
        let bar = progress_bar(
            place.progress,
            texts.len() as u64,
            "texts embedded (MiniLM)",
        );
        let mut vectors = Vec::with_capacity(texts.len() * encoder.dim());
        for chunk in texts.chunks(ENCODE_CHUNK) {
            vectors.extend(encoder.encode(chunk)?.into_iter().flatten());
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok((vectors, encoder.dim()))
    })
}

/// The image embedding of every image node.
fn image_index(
    config: &RetrievalConfig,
    corpus: &Corpus,
    entries: &Entries,
    place: &Place,
) -> Result<Opened<Hnsw>> {
    let embedder = config.image_embeddings.build()?;
    let embedding = embedder.id();
    let mut inputs = InputsHasher::new(&settings(&embedding, config));
    for node in 0..entries.images.len() as u32 {
        let image = entries.image(corpus, node);
        inputs.add(image.image_id.as_bytes());
        inputs.add(image.image_path.unwrap_or("").as_bytes());
        let vector: Vec<u8> = (image.image_vector.unwrap_or(&[]).iter())
            .flat_map(|x| x.to_le_bytes())
            .collect();
        inputs.add(&vector);
    }
    hnsw_index(config, "image", &embedding, inputs, place, &|| {
        embed_images(entries, corpus, embedder.as_ref(), place.progress)
    })
}

/// Where and how the indexes are built.
struct Place<'a> {
    dir: &'a Path,
    progress: bool,
    policy: IndexPolicy,
}

/// The settings every HNSW artifact's inputs checksum starts with.
fn settings(embedding: &str, config: &RetrievalConfig) -> String {
    serde_json::json!({
        "embedding": embedding,
        "hnsw": config.hnsw,
        "reproducible": config.reproducible,
    })
    .to_string()
}

/// The HNSW artifact `NAME.hnsw` over the vectors `embed` gives (`(vectors, dim)`,
/// row-major), loaded, or built when missing or stale.
fn hnsw_index(
    config: &RetrievalConfig,
    name: &str,
    embedding: &str,
    inputs: InputsHasher,
    place: &Place,
    embed: &dyn Fn() -> Result<(Vec<f32>, usize)>,
) -> Result<Opened<Hnsw>> {
    let build = |path: &Path| {
        let (vectors, dim) = embed()?;
        let n = vectors.len() / dim.max(1);
        let bar = progress_bar(place.progress, n as u64, &format!("{name}s indexed (HNSW)"));
        let threads = config.reproducible.then_some(1);
        let index = Hnsw::build(&vectors, dim.max(1), config.hnsw, threads, &|done| {
            bar.set_position(done)
        })?;
        bar.finish_and_clear();
        index.save(path)?;
        let details = Details::from([
            ("embedding".to_string(), embedding.into()),
            ("dim".to_string(), index.dim().into()),
            ("count".to_string(), index.len().into()),
            ("hnsw".to_string(), serde_json::json!(config.hnsw)),
            ("reproducible".to_string(), config.reproducible.into()),
        ]);
        Ok(Built {
            value: index,
            details,
        })
    };
    Artifact {
        name,
        file: &format!("{name}.hnsw"),
        format_version: HNSW_VERSION,
        build: &build,
        load: &Hnsw::load,
    }
    .build_or_open(place.dir, &inputs.finish(), place.policy)
}

/// Every image's vector, in node order; all must have the same dimension.
fn embed_images(
    entries: &Entries,
    corpus: &Corpus,
    embedder: &dyn ImageEmbedder,
    progress: bool,
) -> Result<(Vec<f32>, usize)> {
    let bar = progress_bar(progress, entries.images.len() as u64, "images embedded");
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{test_corpus, CorpusText};

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
