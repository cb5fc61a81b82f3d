//! Deterministic synthetic dataset: rendered scenes of coloured shapes, each with several
//! captions whose scene graphs are known exactly (the project's embedded default data).
//!
//! Every caption is built from the scene it describes, so its gold scene graph states
//! precisely what the caption says and every spatial relation in it is true of the pixels.
//! Colours, sizes, kinds and positions are sampled independently, so swapping an attribute
//! or a relation in a caption yields a different but equally plausible scene: exactly the
//! hard negatives cross-modal contrastive learning needs.
//!
//! Layout under the output directory:
//! - `images/img-NNNNN.png` and `pairs.jsonl`: captioned images, one record per caption
//!   (`image_id`, `caption_id`, `caption`, `image_path`, `objects`, `scene_graph`);
//! - `corpus_images/cimg-NNNNN.png` and `image_corpus.jsonl`: images without captions;
//! - `scenes.jsonl`: each captioned image's shapes (kind, colour, size, box), the gold
//!   scene that [`truth::truth`] judges any caption against;
//! - `text_corpus.jsonl`: captions of further scenes that have no image;
//! - `synth.json`: the config and summary of the run.
//!
//! Scenes never repeat across the three parts. Files from an earlier run with larger
//! counts are not removed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Result};
use crate::core::fs::{write_atomic, write_bytes_atomic, write_json_atomic};

pub mod truth;

/// Settings of the generator. Missing fields take their defaults, so a config file may
/// name only what it changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SynthConfig {
    pub seed: u64,
    /// Captioned images (the image-text pairs).
    pub images: usize,
    /// Images without captions (image-only corpus).
    pub corpus_images: usize,
    /// Captions without images (text-only corpus).
    pub corpus_texts: usize,
    /// Distinct captions per captioned image; at least 3.
    pub captions_per_image: usize,
    /// Width and height of every image in pixels, 64..=128.
    pub image_size: u32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 7,
            images: 600,
            corpus_images: 400,
            corpus_texts: 1200,
            captions_per_image: 4,
            image_size: 96,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SynthSummary {
    pub pairs: usize,
    pub images: usize,
    pub corpus_images: usize,
    pub corpus_texts: usize,
}

/// Bounds on the settings. Ids are zero-padded to five digits, so larger counts would
/// break the lexical order of file names.
const MAX_ITEMS: usize = 100_000;
const MIN_CAPTIONS: usize = 3;
/// Small scenes only have so many distinct true captions; past this the generator would
/// have to pad with near-duplicates.
const MAX_CAPTIONS: usize = 10;
const MIN_IMAGE_SIZE: u32 = 64;
const MAX_IMAGE_SIZE: u32 = 128;

/// Light grey-beige: every shape colour, yellow included, stands out against it.
const BACKGROUND: [u8; 3] = [236, 234, 226];
/// Empty pixels kept between the bounding boxes of two shapes, plus one.
const SHAPE_GAP: i32 = 4;
/// Share of captions using a kind's rarer noun ("disc"), so the canonical noun dominates.
const SYNONYM_RATE: f64 = 0.15;
/// Empty pixels kept between a shape and the image border.
const BORDER: i32 = 2;

/// Independent RNG streams, so the parts of the dataset never share random numbers.
const STREAM_PAIRS: u64 = 1;
const STREAM_IMAGE_CORPUS: u64 = 2;
const STREAM_TEXT_CORPUS: u64 = 3;

/// Writes the dataset under `out` (see the module docs for the layout) and returns its
/// counts. The same config always produces byte-identical files.
pub fn generate(cfg: &SynthConfig, out: &Path) -> Result<SynthSummary> {
    validate(cfg)?;
    let data = build_dataset(cfg)?;
    let size = cfg.image_size;

    data.pairs
        .par_iter()
        .enumerate()
        .try_for_each(|(i, (scene, _))| write_png(&out.join(pair_image_path(i)), scene, size))?;
    data.corpus
        .par_iter()
        .enumerate()
        .try_for_each(|(i, scene)| write_png(&out.join(corpus_image_path(i)), scene, size))?;

    let mut pair_records = Vec::new();
    for (i, (scene, captions)) in data.pairs.iter().enumerate() {
        let image_id = pair_image_id(i);
        for (c, caption) in captions.iter().enumerate() {
            pair_records.push(PairRecord {
                image_id: image_id.clone(),
                caption_id: format!("{image_id}#{c}"),
                caption: caption.text.clone(),
                image_path: pair_image_path(i),
                objects: object_labels(scene),
                scene_graph: caption.graph.clone(),
            });
        }
    }
    write_jsonl(&out.join("pairs.jsonl"), &pair_records)?;
    let scenes: Vec<truth::GoldScene> = data
        .pairs
        .iter()
        .enumerate()
        .map(|(i, (scene, _))| truth::GoldScene::of(pair_image_id(i), size, scene))
        .collect();
    write_jsonl(&out.join("scenes.jsonl"), &scenes)?;

    let corpus_records: Vec<ImageRecord> = data
        .corpus
        .iter()
        .enumerate()
        .map(|(i, scene)| ImageRecord {
            image_id: corpus_image_id(i),
            image_path: corpus_image_path(i),
            objects: object_labels(scene),
        })
        .collect();
    write_jsonl(&out.join("image_corpus.jsonl"), &corpus_records)?;

    let text_records: Vec<TextRecord> = data
        .texts
        .iter()
        .enumerate()
        .map(|(i, text)| TextRecord {
            text_id: format!("txt-{i:05}"),
            text: text.clone(),
        })
        .collect();
    write_jsonl(&out.join("text_corpus.jsonl"), &text_records)?;

    let summary = SynthSummary {
        pairs: pair_records.len(),
        images: data.pairs.len(),
        corpus_images: data.corpus.len(),
        corpus_texts: data.texts.len(),
    };
    let manifest_path = out.join("synth.json");
    let manifest = Manifest {
        config: cfg,
        summary: &summary,
    };
    write_json_atomic(&manifest_path, &manifest)?;
    Ok(summary)
}

fn validate(cfg: &SynthConfig) -> Result<()> {
    // There is no config file of its own; errors name the settings section instead.
    let at = Path::new("synth");
    if cfg.captions_per_image < MIN_CAPTIONS || cfg.captions_per_image > MAX_CAPTIONS {
        return Err(Error::config(
            at,
            format!(
                "captions_per_image = {}, must be in {MIN_CAPTIONS}..={MAX_CAPTIONS}",
                cfg.captions_per_image
            ),
        ));
    }
    if !(MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&cfg.image_size) {
        return Err(Error::config(
            at,
            format!(
                "image_size = {}, must be in {MIN_IMAGE_SIZE}..={MAX_IMAGE_SIZE}",
                cfg.image_size
            ),
        ));
    }
    for (name, value) in [
        ("images", cfg.images),
        ("corpus_images", cfg.corpus_images),
        ("corpus_texts", cfg.corpus_texts),
    ] {
        if value > MAX_ITEMS {
            return Err(Error::config(
                at,
                format!("{name} = {value}, must be at most {MAX_ITEMS}"),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Output records. Field order here is the key order in the files.

#[derive(Serialize)]
struct PairRecord {
    image_id: String,
    caption_id: String,
    caption: String,
    image_path: String,
    objects: Vec<String>,
    scene_graph: SceneGraph,
}

#[derive(Serialize)]
struct ImageRecord {
    image_id: String,
    image_path: String,
    objects: Vec<String>,
}

#[derive(Serialize)]
struct TextRecord {
    text_id: String,
    text: String,
}

#[derive(Serialize)]
struct Manifest<'a> {
    config: &'a SynthConfig,
    summary: &'a SynthSummary,
}

/// Exactly what one caption states.
#[derive(Debug, Clone, Default, Serialize)]
struct SceneGraph {
    objects: Vec<SgObject>,
    relations: Vec<SgRelation>,
}

#[derive(Debug, Clone, Serialize)]
struct SgObject {
    /// Lemma of the noun the caption uses.
    name: String,
    /// Adjectives the caption uses, colour before size.
    attributes: Vec<String>,
    /// The number word used; 1 for a singular noun.
    count: usize,
}

#[derive(Debug, Clone, Serialize)]
struct SgRelation {
    subject: usize,
    predicate: String,
    object: usize,
}

fn pair_image_id(i: usize) -> String {
    format!("img-{i:05}")
}

fn pair_image_path(i: usize) -> String {
    format!("images/img-{i:05}.png")
}

fn corpus_image_id(i: usize) -> String {
    format!("cimg-{i:05}")
}

fn corpus_image_path(i: usize) -> String {
    format!("corpus_images/cimg-{i:05}.png")
}

fn object_labels(scene: &[Shape]) -> Vec<String> {
    scene.iter().map(|s| s.kind.label().to_string()).collect()
}

fn write_jsonl<T: Serialize>(path: &Path, records: &[T]) -> Result<()> {
    write_atomic(path, |w| {
        for record in records {
            serde_json::to_writer(&mut *w, record).map_err(|e| Error::io(path, e.into()))?;
            w.write_all(b"\n").map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Scene vocabulary.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Circle,
    Square,
    Triangle,
    Diamond,
    Star,
}

const KINDS: [Kind; 5] = [
    Kind::Circle,
    Kind::Square,
    Kind::Triangle,
    Kind::Diamond,
    Kind::Star,
];

impl Kind {
    fn label(self) -> &'static str {
        self.nouns()[0].0
    }

    /// (singular, plural) nouns; the first is the canonical label.
    fn nouns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Circle => &[("circle", "circles"), ("disc", "discs")],
            Kind::Square => &[("square", "squares")],
            Kind::Triangle => &[("triangle", "triangles")],
            Kind::Diamond => &[("diamond", "diamonds")],
            Kind::Star => &[("star", "stars")],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Colour {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
    Black,
}

const COLOURS: [Colour; 7] = [
    Colour::Red,
    Colour::Green,
    Colour::Blue,
    Colour::Yellow,
    Colour::Purple,
    Colour::Orange,
    Colour::Black,
];

impl Colour {
    fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
            Colour::Black => "black",
        }
    }

    fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [214, 39, 40],
            Colour::Green => [34, 160, 60],
            Colour::Blue => [31, 80, 210],
            Colour::Yellow => [232, 196, 0],
            Colour::Purple => [128, 52, 168],
            Colour::Orange => [255, 127, 14],
            Colour::Black => [20, 20, 20],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Size {
    Small,
    Large,
}

impl Size {
    /// Adjectives for this size; all are used, so the gold attribute is the word used.
    fn words(self) -> &'static [&'static str] {
        match self {
            Size::Small => &["small", "little", "tiny"],
            Size::Large => &["large", "big"],
        }
    }

    /// Half the side of the shape's bounding box; large is twice small, so the sizes are
    /// told apart at a glance.
    fn half_extent(self, image_size: u32) -> i32 {
        let s = image_size as i32;
        match self {
            Size::Small => (s * 17 + 100) / 200,
            Size::Large => (s * 17 + 50) / 100,
        }
    }
}

/// One filled shape; its bounding box is `cx ± half`, `cy ± half` (pixel indices).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Shape {
    kind: Kind,
    colour: Colour,
    size: Size,
    cx: i32,
    cy: i32,
    half: i32,
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// 2–4 shapes, non-overlapping, with kind, colour, size and position drawn independently.
/// Some shapes copy an earlier one's kind and colour, so plurals ("two red circles") occur.
fn sample_scene(rng: &mut ChaCha8Rng, image_size: u32) -> Vec<Shape> {
    loop {
        let wanted = rng.random_range(2..=4usize);
        let mut shapes: Vec<Shape> = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            let (kind, colour) = if !shapes.is_empty() && rng.random_bool(0.3) {
                let model = shapes[rng.random_range(0..shapes.len())];
                (model.kind, model.colour)
            } else {
                (pick(rng, &KINDS), pick(rng, &COLOURS))
            };
            let size = if rng.random_bool(0.5) {
                Size::Large
            } else {
                Size::Small
            };
            let half = size.half_extent(image_size);
            let lo = half + BORDER;
            let hi = image_size as i32 - 1 - half - BORDER;
            // A shape that finds no free spot is dropped; the scene keeps the others.
            for _ in 0..100 {
                let shape = Shape {
                    kind,
                    colour,
                    size,
                    cx: rng.random_range(lo..=hi),
                    cy: rng.random_range(lo..=hi),
                    half,
                };
                if shapes.iter().all(|other| apart(&shape, other)) {
                    shapes.push(shape);
                    break;
                }
            }
        }
        if shapes.len() >= 2 {
            return shapes;
        }
    }
}

/// Bounding boxes separated by at least `SHAPE_GAP - 1` empty pixels on one axis.
fn apart(a: &Shape, b: &Shape) -> bool {
    let need = a.half + b.half + SHAPE_GAP;
    (a.cx - b.cx).abs() >= need || (a.cy - b.cy).abs() >= need
}

/// A scene never seen before in this dataset, so pairs and corpora never share a scene.
fn fresh_scene(
    rng: &mut ChaCha8Rng,
    image_size: u32,
    seen: &mut BTreeSet<Vec<Shape>>,
) -> Vec<Shape> {
    loop {
        let scene = sample_scene(rng, image_size);
        if seen.insert(scene.clone()) {
            return scene;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Spatial relations.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Predicate {
    LeftOf,
    RightOf,
    Above,
    Below,
    NextTo,
}

impl Predicate {
    fn lemma(self) -> &'static str {
        match self {
            Predicate::LeftOf => "left of",
            Predicate::RightOf => "right of",
            Predicate::Above => "above",
            Predicate::Below => "below",
            Predicate::NextTo => "next to",
        }
    }

    /// Ways to say "subject <phrase> object".
    fn phrases(self) -> &'static [&'static str] {
        match self {
            Predicate::LeftOf => &["to the left of", "left of", "on the left of"],
            Predicate::RightOf => &["to the right of", "right of", "on the right of"],
            Predicate::Above => &["above", "over"],
            Predicate::Below => &["below", "beneath", "under"],
            Predicate::NextTo => &["next to", "beside"],
        }
    }

    /// Ways to say "object with subject <phrase>", the object being "it".
    fn pronoun_phrases(self) -> &'static [&'static str] {
        match self {
            Predicate::LeftOf => &["to its left", "on its left"],
            Predicate::RightOf => &["to its right", "on its right"],
            Predicate::Above => &["above it"],
            Predicate::Below => &["below it", "under it"],
            Predicate::NextTo => &["next to it", "beside it"],
        }
    }
}

/// Every predicate that holds for "a <predicate> b". A directional relation is stated only
/// when the centres are more than a quarter of the image apart along the dominant axis and
/// that axis clearly dominates (1.5x), so no reader would dispute it. "next to" needs the
/// bounding boxes within an eighth of the image of each other.
fn predicates(a: &Shape, b: &Shape, image_size: u32) -> Vec<Predicate> {
    let mut out = Vec::new();
    let dx = b.cx - a.cx;
    let dy = b.cy - a.cy;
    let min_sep = image_size as i32 / 4;
    if dx.abs() > min_sep && 2 * dx.abs() >= 3 * dy.abs() {
        out.push(if dx > 0 {
            Predicate::LeftOf
        } else {
            Predicate::RightOf
        });
    } else if dy.abs() > min_sep && 2 * dy.abs() >= 3 * dx.abs() {
        // Image rows grow downwards.
        out.push(if dy > 0 {
            Predicate::Above
        } else {
            Predicate::Below
        });
    }
    let gap = dx.abs().max(dy.abs()) - a.half - b.half;
    if gap <= image_size as i32 / 8 {
        out.push(Predicate::NextTo);
    }
    out
}

/// All (subject, object, predicate) triples true in the scene, in a fixed order.
fn true_relations(scene: &[Shape], image_size: u32) -> Vec<(usize, usize, Predicate)> {
    let mut out = Vec::new();
    for (a, sa) in scene.iter().enumerate() {
        for (b, sb) in scene.iter().enumerate() {
            if a != b {
                for p in predicates(sa, sb, image_size) {
                    out.push((a, b, p));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Captions.

/// What a noun phrase says about a shape: its kind plus optionally colour and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Desc {
    kind: Kind,
    colour: Option<Colour>,
    size: Option<Size>,
}

impl Desc {
    fn matches(&self, s: &Shape) -> bool {
        s.kind == self.kind
            && self.colour.is_none_or(|c| c == s.colour)
            && self.size.is_none_or(|z| z == s.size)
    }

    fn is_unique_in(&self, scene: &[Shape]) -> bool {
        scene.iter().filter(|s| self.matches(s)).count() == 1
    }
}

/// A realised noun phrase, without its determiner.
struct Mention {
    /// e.g. "big red circle" or "little blue squares".
    words: String,
    object: SgObject,
    referents: Vec<usize>,
}

/// `synonym` picks the rarer noun where the kind has one; callers decide once per caption
/// so one caption never says "disc" and "circle" for the same kind.
fn realise(rng: &mut ChaCha8Rng, desc: Desc, referents: Vec<usize>, synonym: bool) -> Mention {
    let count = referents.len();
    let mut words = Vec::new();
    let mut attributes = Vec::new();
    if let Some(colour) = desc.colour {
        attributes.push(colour.name().to_string());
    }
    if let Some(size) = desc.size {
        let word = pick(rng, size.words());
        words.push(word);
        attributes.push(word.to_string());
    }
    if let Some(colour) = desc.colour {
        words.push(colour.name());
    }
    let nouns = desc.kind.nouns();
    let (singular, plural) = if synonym && nouns.len() > 1 {
        nouns[rng.random_range(1..nouns.len())]
    } else {
        nouns[0]
    };
    words.push(if count == 1 { singular } else { plural });
    Mention {
        words: words.join(" "),
        object: SgObject {
            name: singular.to_string(),
            attributes,
            count,
        },
        referents,
    }
}

impl Mention {
    fn indefinite(&self) -> String {
        match self.object.count {
            1 => format!("{} {}", article(&self.words), self.words),
            n => format!("{} {}", number_word(n), self.words),
        }
    }

    fn definite(&self) -> String {
        match self.object.count {
            1 => format!("the {}", self.words),
            n => format!("the {} {}", number_word(n), self.words),
        }
    }

    /// "the …" when the description picks out one shape, else "a …".
    fn determined(&self, unique: bool) -> String {
        if unique {
            self.definite()
        } else {
            self.indefinite()
        }
    }
}

fn article(next: &str) -> &'static str {
    // No word in the vocabulary starts with a silent consonant or a "you" sound.
    match next.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

fn number_word(n: usize) -> String {
    match n {
        1 => "one".into(),
        2 => "two".into(),
        3 => "three".into(),
        4 => "four".into(),
        _ => n.to_string(),
    }
}

/// "x", "x and y", "x, y and z".
fn join_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A caption, its gold scene graph, and (for checking) the shapes each object refers to.
#[derive(Debug, Clone)]
struct Caption {
    text: String,
    graph: SceneGraph,
    referents: Vec<Vec<usize>>,
}

#[derive(Default)]
struct CaptionBuilder {
    graph: SceneGraph,
    referents: Vec<Vec<usize>>,
}

impl CaptionBuilder {
    /// Adds a mentioned object; call in the order the objects appear in the caption.
    fn add(&mut self, m: &Mention) -> usize {
        self.graph.objects.push(m.object.clone());
        self.referents.push(m.referents.clone());
        self.graph.objects.len() - 1
    }

    fn relate(&mut self, subject: usize, p: Predicate, object: usize) {
        self.graph.relations.push(SgRelation {
            subject,
            predicate: p.lemma().to_string(),
            object,
        });
    }

    fn finish(self, text: String) -> Caption {
        Caption {
            text,
            graph: self.graph,
            referents: self.referents,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum CaptionKind {
    /// Every shape, grouped into counted noun phrases.
    ListAll,
    /// Some of the shapes.
    ListSome,
    /// One spatial relation between two shapes.
    Relation,
    /// One subject related to two other shapes.
    DoubleRelation,
}

fn random_kind(rng: &mut ChaCha8Rng) -> CaptionKind {
    // Relations carry the most structure, so they get the largest share.
    match rng.random_range(0..20) {
        0..4 => CaptionKind::ListAll,
        4..8 => CaptionKind::ListSome,
        8..16 => CaptionKind::Relation,
        _ => CaptionKind::DoubleRelation,
    }
}

/// None when the scene has no relation of the kind asked for.
fn make_caption(
    rng: &mut ChaCha8Rng,
    kind: CaptionKind,
    scene: &[Shape],
    image_size: u32,
) -> Option<Caption> {
    match kind {
        CaptionKind::ListAll => Some(listing_caption(rng, scene, true)),
        CaptionKind::ListSome => Some(listing_caption(rng, scene, false)),
        CaptionKind::Relation => relation_caption(rng, scene, image_size),
        CaptionKind::DoubleRelation => double_relation_caption(rng, scene, image_size),
    }
}

/// Lists groups of shapes with exact counts: each phrase's count equals the number of
/// shapes in the scene matching its noun and adjectives, so "two red circles" never
/// hides a third.
fn listing_caption(rng: &mut ChaCha8Rng, scene: &[Shape], all: bool) -> Caption {
    let use_size = rng.random_bool(0.5);
    // A bare "a star" fits nearly every scene; partial listings name at least a colour.
    let use_colour = rng.random_bool(0.75) || (!all && !use_size);
    let synonym = rng.random_bool(SYNONYM_RATE);
    let mut groups: Vec<(Desc, Vec<usize>)> = Vec::new();
    for (i, s) in scene.iter().enumerate() {
        let desc = Desc {
            kind: s.kind,
            colour: use_colour.then_some(s.colour),
            size: use_size.then_some(s.size),
        };
        match groups.iter_mut().find(|(d, _)| *d == desc) {
            Some((_, members)) => members.push(i),
            None => groups.push((desc, vec![i])),
        }
    }
    groups.shuffle(rng);
    if !all && groups.len() > 1 {
        let keep = rng.random_range(1..groups.len());
        groups.truncate(keep);
    }
    let mut builder = CaptionBuilder::default();
    let mut phrases = Vec::new();
    let mut first_plural = false;
    for (n, (desc, members)) in groups.into_iter().enumerate() {
        let m = realise(rng, desc, members, synonym);
        if n == 0 {
            first_plural = m.object.count > 1;
        }
        phrases.push(m.indefinite());
        builder.add(&m);
    }
    let list = join_list(&phrases);
    let text = match rng.random_range(0..5) {
        0 | 1 => list,
        2 => format!("there {} {list}", if first_plural { "are" } else { "is" }),
        3 => format!("we can see {list}"),
        _ => format!("you can see {list}"),
    };
    builder.finish(text)
}

/// Descriptions for the given shapes: random adjectives, then more where a phrase would
/// also fit another shape of the same caption, so "a purple star right of a star" (both
/// purple) becomes "a small purple star right of a large purple star". Half the time a
/// description is also made to single out its shape in the scene. None when two of the
/// shapes cannot be told apart at all.
fn distinct_descs(rng: &mut ChaCha8Rng, scene: &[Shape], shapes: &[usize]) -> Option<Vec<Desc>> {
    let mut descs = Vec::with_capacity(shapes.len());
    for &i in shapes {
        let s = scene[i];
        let mut d = Desc {
            kind: s.kind,
            colour: rng.random_bool(0.8).then_some(s.colour),
            size: rng.random_bool(0.5).then_some(s.size),
        };
        if rng.random_bool(0.5) {
            if !d.is_unique_in(scene) {
                d.colour = Some(s.colour);
            }
            if !d.is_unique_in(scene) {
                d.size = Some(s.size);
            }
        }
        descs.push(d);
    }
    // Each pass adds an adjective or stops, so this ends within two passes per shape.
    let mut changed = true;
    while changed {
        changed = false;
        for (a, &own) in shapes.iter().enumerate() {
            let own = scene[own];
            for &other in shapes {
                if other == shapes[a] || !descs[a].matches(&scene[other]) {
                    continue;
                }
                let d = &mut descs[a];
                match (d.colour, d.size) {
                    (None, None) if rng.random_bool(0.5) => d.size = Some(own.size),
                    (None, _) => d.colour = Some(own.colour),
                    (_, None) => d.size = Some(own.size),
                    (Some(_), Some(_)) => return None,
                }
                changed = true;
            }
        }
    }
    Some(descs)
}

fn relation_caption(rng: &mut ChaCha8Rng, scene: &[Shape], image_size: u32) -> Option<Caption> {
    let rels = true_relations(scene, image_size);
    if rels.is_empty() {
        return None;
    }
    let (a, b, p) = rels[rng.random_range(0..rels.len())];
    let descs = distinct_descs(rng, scene, &[a, b])?;
    let (sd, od) = (descs[0], descs[1]);
    let synonym = rng.random_bool(SYNONYM_RATE);
    let s = realise(rng, sd, vec![a], synonym);
    let o = realise(rng, od, vec![b], synonym);
    let phrase = pick(rng, p.phrases());
    let mut builder = CaptionBuilder::default();
    let text = match rng.random_range(0..6) {
        // a red circle to the left of a blue square
        0 => {
            let (i, j) = (builder.add(&s), builder.add(&o));
            builder.relate(i, p, j);
            format!("{} {phrase} {}", s.indefinite(), o.indefinite())
        }
        // there is a small green triangle above a large yellow square
        1 => {
            let (i, j) = (builder.add(&s), builder.add(&o));
            builder.relate(i, p, j);
            format!("there is {} {phrase} {}", s.indefinite(), o.indefinite())
        }
        // the blue square is to the right of the red circle
        2 | 3 => {
            let (i, j) = (builder.add(&s), builder.add(&o));
            builder.relate(i, p, j);
            format!(
                "{} is {phrase} {}",
                s.determined(sd.is_unique_in(scene)),
                o.determined(od.is_unique_in(scene))
            )
        }
        // a blue square with a red circle to its left
        4 => {
            let (j, i) = (builder.add(&o), builder.add(&s));
            builder.relate(i, p, j);
            let pronoun = pick(rng, p.pronoun_phrases());
            format!("{} with {} {pronoun}", o.indefinite(), s.indefinite())
        }
        // to the left of the blue square there is a red circle
        _ => {
            let (j, i) = (builder.add(&o), builder.add(&s));
            builder.relate(i, p, j);
            format!(
                "{phrase} {} there is {}",
                o.determined(od.is_unique_in(scene)),
                s.indefinite()
            )
        }
    };
    Some(builder.finish(text))
}

/// "a red circle to the left of a blue square and above a green star".
fn double_relation_caption(
    rng: &mut ChaCha8Rng,
    scene: &[Shape],
    image_size: u32,
) -> Option<Caption> {
    let rels = true_relations(scene, image_size);
    let mut options = Vec::new();
    for &(a, b, p) in &rels {
        for &(a2, c, q) in &rels {
            if a2 == a && c != b {
                options.push((a, b, p, c, q));
            }
        }
    }
    if options.is_empty() {
        return None;
    }
    let (a, b, p, c, q) = options[rng.random_range(0..options.len())];
    let descs = distinct_descs(rng, scene, &[a, b, c])?;
    let synonym = rng.random_bool(SYNONYM_RATE);
    let s = realise(rng, descs[0], vec![a], synonym);
    let o1 = realise(rng, descs[1], vec![b], synonym);
    let o2 = realise(rng, descs[2], vec![c], synonym);
    let mut builder = CaptionBuilder::default();
    let (i, j, k) = (builder.add(&s), builder.add(&o1), builder.add(&o2));
    builder.relate(i, p, j);
    builder.relate(i, q, k);
    let (pp, qp) = (pick(rng, p.phrases()), pick(rng, q.phrases()));
    let lead = match rng.random_range(0..3) {
        0 => s.indefinite(),
        1 => format!("there is {}", s.indefinite()),
        _ => format!("{} is", s.determined(descs[0].is_unique_in(scene))),
    };
    let text = format!(
        "{lead} {pp} {} and {qp} {}",
        o1.indefinite(),
        o2.indefinite()
    );
    Some(builder.finish(text))
}

/// `n` distinct captions of the scene, or None if it is too plain to yield that many
/// (the caller then draws another scene).
fn scene_captions(
    rng: &mut ChaCha8Rng,
    scene: &[Shape],
    image_size: u32,
    n: usize,
) -> Option<Vec<Caption>> {
    let mut out: Vec<Caption> = Vec::with_capacity(n);
    let mut seen = BTreeSet::new();
    for attempt in 0..n * 50 {
        // Lead with a full listing and a relation, so every image gets both kinds.
        let kind = match out.len() {
            0 => CaptionKind::ListAll,
            1 if attempt < 8 => CaptionKind::Relation,
            _ => random_kind(rng),
        };
        if let Some(caption) = make_caption(rng, kind, scene, image_size) {
            debug_assert!(caption_is_true(scene, image_size, &caption), "{caption:?}");
            if seen.insert(caption.text.clone()) {
                out.push(caption);
                if out.len() == n {
                    return Some(out);
                }
            }
        }
    }
    None
}

/// Whether every object of the caption matches the shapes it refers to and every stated
/// relation holds between them.
fn caption_is_true(scene: &[Shape], image_size: u32, caption: &Caption) -> bool {
    let objects = &caption.graph.objects;
    objects.len() == caption.referents.len()
        && objects.iter().zip(&caption.referents).all(|(o, refs)| {
            o.count == refs.len()
                && refs.iter().all(|&i| {
                    scene.get(i).is_some_and(|s| {
                        s.kind.nouns().iter().any(|(noun, _)| *noun == o.name)
                            && o.attributes.iter().all(|a| {
                                a == s.colour.name() || s.size.words().contains(&a.as_str())
                            })
                    })
                })
        })
        && caption.graph.relations.iter().all(|r| {
            match (
                caption.referents.get(r.subject).map(Vec::as_slice),
                caption.referents.get(r.object).map(Vec::as_slice),
            ) {
                (Some(&[s]), Some(&[o])) => predicates(&scene[s], &scene[o], image_size)
                    .iter()
                    .any(|p| p.lemma() == r.predicate),
                _ => false,
            }
        })
}

// ---------------------------------------------------------------------------------------
// Dataset assembly.

struct Dataset {
    pairs: Vec<(Vec<Shape>, Vec<Caption>)>,
    corpus: Vec<Vec<Shape>>,
    texts: Vec<String>,
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn build_dataset(cfg: &SynthConfig) -> Result<Dataset> {
    let size = cfg.image_size;
    let mut seen_scenes = BTreeSet::new();

    let mut rng = stream(cfg.seed, STREAM_PAIRS);
    let mut pairs = Vec::with_capacity(cfg.images);
    while pairs.len() < cfg.images {
        let scene = fresh_scene(&mut rng, size, &mut seen_scenes);
        if let Some(captions) = scene_captions(&mut rng, &scene, size, cfg.captions_per_image) {
            pairs.push((scene, captions));
        }
    }

    let mut rng = stream(cfg.seed, STREAM_IMAGE_CORPUS);
    let corpus = (0..cfg.corpus_images)
        .map(|_| fresh_scene(&mut rng, size, &mut seen_scenes))
        .collect();

    // Text-only captions are kept distinct from each other and from the pair captions,
    // so the text corpus adds sentences rather than repeating them.
    let mut seen_texts: BTreeSet<String> = pairs
        .iter()
        .flat_map(|(_, caps)| caps.iter().map(|c| c.text.clone()))
        .collect();
    let mut rng = stream(cfg.seed, STREAM_TEXT_CORPUS);
    let mut texts = Vec::with_capacity(cfg.corpus_texts);
    let mut tries = 0usize;
    while texts.len() < cfg.corpus_texts {
        tries += 1;
        if tries > 100 * (cfg.corpus_texts + 10) {
            return Err(Error::config(
                Path::new("synth"),
                format!(
                    "corpus_texts = {}: could not find that many distinct captions",
                    cfg.corpus_texts
                ),
            ));
        }
        let scene = fresh_scene(&mut rng, size, &mut seen_scenes);
        let kind = random_kind(&mut rng);
        let caption = make_caption(&mut rng, kind, &scene, size)
            .unwrap_or_else(|| listing_caption(&mut rng, &scene, false));
        if seen_texts.insert(caption.text.clone()) {
            texts.push(caption.text);
        }
    }

    Ok(Dataset {
        pairs,
        corpus,
        texts,
    })
}

// ---------------------------------------------------------------------------------------
// Rendering.

/// Unit 5-point star, outer radius 1, inner radius 0.5, pointing up (y grows downwards).
/// Constants rather than sin/cos keep the pixels identical on every platform.
const STAR: [(f64, f64); 10] = [
    (0.0, -1.0),
    (0.293_892_626, -0.404_508_497),
    (0.951_056_516, -0.309_016_994),
    (0.475_528_258, 0.154_508_497),
    (0.587_785_252, 0.809_016_994),
    (0.0, 0.5),
    (-0.587_785_252, 0.809_016_994),
    (-0.475_528_258, 0.154_508_497),
    (-0.951_056_516, -0.309_016_994),
    (-0.293_892_626, -0.404_508_497),
];

/// Whether the pixel at offset (dx, dy) from the shape's centre pixel is inside it.
fn covers(kind: Kind, half: i32, dx: i32, dy: i32) -> bool {
    let h = f64::from(half);
    let (x, y) = (f64::from(dx), f64::from(dy));
    match kind {
        // h(h+1) rounds the outline so the disc has no one-pixel nubs at its poles.
        Kind::Circle => x * x + y * y <= h * (h + 1.0),
        // Slightly inset so a square's area is close to a circle's of the same size.
        Kind::Square => x.abs() <= 0.9 * h && y.abs() <= 0.9 * h,
        // Apex at the top centre, base along the bottom of the box.
        Kind::Triangle => y.abs() <= h && 2.0 * x.abs() <= y + h,
        Kind::Diamond => x.abs() + y.abs() <= h,
        Kind::Star => inside_polygon(&STAR, x / h, y / h),
    }
}

/// Even-odd rule.
fn inside_polygon(poly: &[(f64, f64)], x: f64, y: f64) -> bool {
    let mut inside = false;
    let mut prev = poly[poly.len() - 1];
    for &(xi, yi) in poly {
        let (xj, yj) = prev;
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        prev = (xi, yi);
    }
    inside
}

/// RGB8 pixels, row-major.
fn render(scene: &[Shape], image_size: u32) -> Vec<u8> {
    let n = image_size as usize;
    let mut pixels = BACKGROUND.repeat(n * n);
    for s in scene {
        for dy in -s.half..=s.half {
            for dx in -s.half..=s.half {
                let (x, y) = (s.cx + dx, s.cy + dy);
                if x < 0 || y < 0 || x >= n as i32 || y >= n as i32 {
                    continue;
                }
                if covers(s.kind, s.half, dx, dy) {
                    let at = (y as usize * n + x as usize) * 3;
                    pixels[at..at + 3].copy_from_slice(&s.colour.rgb());
                }
            }
        }
    }
    pixels
}

fn encode_png(pixels: &[u8], image_size: u32, path: &Path) -> Result<Vec<u8>> {
    let png_err = |e: png::EncodingError| Error::io(path, e.into());
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, image_size, image_size);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(pixels).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(bytes)
}

fn write_png(path: &Path, scene: &[Shape], image_size: u32) -> Result<()> {
    let bytes = encode_png(&render(scene, image_size), image_size, path)?;
    write_bytes_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::PathBuf;

    fn small_config() -> SynthConfig {
        SynthConfig {
            seed: 11,
            images: 20,
            corpus_images: 5,
            corpus_texts: 30,
            captions_per_image: 4,
            image_size: 96,
        }
    }

    fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Every file under `dir`, relative path -> bytes, in sorted order.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(dir).unwrap().to_path_buf();
                    out.insert(rel, fs::read(&path).unwrap());
                }
            }
        }
        out
    }

    fn decode(path: &Path) -> (png::OutputInfo, Vec<u8>) {
        let file = std::io::BufReader::new(fs::File::open(path).unwrap());
        let mut reader = png::Decoder::new(file).read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn same_config_gives_identical_bytes() {
        let cfg = small_config();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(&cfg, a.path()).unwrap();
        generate(&cfg, b.path()).unwrap();
        let (sa, sb) = (snapshot(a.path()), snapshot(b.path()));
        assert_eq!(sa.len(), 20 + 5 + 5);
        assert_eq!(sa, sb);

        // A different seed must change the data, or the seed is not wired through.
        let c = tempfile::tempdir().unwrap();
        generate(&SynthConfig { seed: 12, ..cfg }, c.path()).unwrap();
        assert_ne!(
            sa[Path::new("pairs.jsonl")],
            snapshot(c.path())[Path::new("pairs.jsonl")]
        );
    }

    #[test]
    fn outputs_have_the_promised_shape() {
        let cfg = small_config();
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(&cfg, dir.path()).unwrap();
        assert_eq!(summary.images, 20);
        assert_eq!(summary.pairs, 80);
        assert_eq!(summary.corpus_images, 5);
        assert_eq!(summary.corpus_texts, 30);

        let pairs = read_jsonl(&dir.path().join("pairs.jsonl"));
        assert_eq!(pairs.len(), 80);
        let mut by_image: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for p in &pairs {
            let image_id = p["image_id"].as_str().unwrap();
            let caption = p["caption"].as_str().unwrap();
            assert!(p["caption_id"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{image_id}#")));
            assert_eq!(p["image_path"], format!("images/{image_id}.png"));
            by_image
                .entry(image_id.to_string())
                .or_default()
                .insert(caption.to_string());

            // a/an agreement.
            let words: Vec<&str> = caption.split(' ').collect();
            for w in words.windows(2) {
                let vowel = w[1].starts_with(['a', 'e', 'i', 'o', 'u']);
                match w[0] {
                    "a" => assert!(!vowel, "{caption}"),
                    "an" => assert!(vowel, "{caption}"),
                    _ => {}
                }
            }
            // Every gold object is named in the caption with its adjectives.
            let labels: Vec<&str> = p["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            for o in p["scene_graph"]["objects"].as_array().unwrap() {
                let name = o["name"].as_str().unwrap();
                assert!(caption.contains(name), "{caption} lacks {name}");
                let canonical = if name == "disc" { "circle" } else { name };
                assert!(labels.contains(&canonical), "{caption}: {labels:?}");
                for a in o["attributes"].as_array().unwrap() {
                    assert!(words.contains(&a.as_str().unwrap()), "{caption}");
                }
                let count = o["count"].as_u64().unwrap();
                assert!(count >= 1 && count as usize <= labels.len());
                if count > 1 {
                    assert!(words.contains(&number_word(count as usize).as_str()));
                }
            }
        }
        assert_eq!(by_image.len(), 20);
        for (image, captions) in &by_image {
            assert!(captions.len() >= 4, "{image} has {captions:?}");
        }

        let corpus = read_jsonl(&dir.path().join("image_corpus.jsonl"));
        assert_eq!(corpus.len(), 5);
        assert_eq!(corpus[0]["image_id"], "cimg-00000");
        assert!(dir.path().join("corpus_images/cimg-00004.png").is_file());
        let texts = read_jsonl(&dir.path().join("text_corpus.jsonl"));
        assert_eq!(texts.len(), 30);
        assert_eq!(texts[29]["text_id"], "txt-00029");

        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.path().join("synth.json")).unwrap()).unwrap();
        assert_eq!(manifest["config"]["seed"], 11);
        assert_eq!(manifest["summary"]["pairs"], 80);
    }

    #[test]
    fn pngs_decode_to_the_configured_size() {
        for image_size in [64, 128] {
            let cfg = SynthConfig {
                images: 3,
                corpus_images: 2,
                corpus_texts: 2,
                image_size,
                ..small_config()
            };
            let dir = tempfile::tempdir().unwrap();
            generate(&cfg, dir.path()).unwrap();
            for rel in ["images/img-00002.png", "corpus_images/cimg-00001.png"] {
                let (info, pixels) = decode(&dir.path().join(rel));
                assert_eq!((info.width, info.height), (image_size, image_size));
                assert_eq!(info.color_type, png::ColorType::Rgb);
                assert_eq!(pixels.len(), (image_size * image_size * 3) as usize);
            }
        }
    }

    /// Checks a relation from first principles rather than through `predicates`.
    fn relation_holds(predicate: &str, a: &Shape, b: &Shape, size: i32) -> bool {
        let (dx, dy) = (b.cx - a.cx, b.cy - a.cy);
        let horizontal = dx.abs() > size / 4 && 2 * dx.abs() >= 3 * dy.abs();
        let vertical = dy.abs() > size / 4 && 2 * dy.abs() >= 3 * dx.abs();
        match predicate {
            "left of" => horizontal && a.cx < b.cx,
            "right of" => horizontal && a.cx > b.cx,
            "above" => vertical && a.cy < b.cy,
            "below" => vertical && a.cy > b.cy,
            "next to" => dx.abs().max(dy.abs()) - a.half - b.half <= size / 8,
            other => panic!("unknown predicate {other}"),
        }
    }

    fn fits(o: &SgObject, s: &Shape) -> bool {
        s.kind.nouns().iter().any(|(n, _)| *n == o.name)
            && o.attributes
                .iter()
                .all(|a| a == s.colour.name() || s.size.words().contains(&a.as_str()))
    }

    #[test]
    fn stated_relations_agree_with_geometry() {
        let cfg = small_config();
        let data = build_dataset(&cfg).unwrap();
        let mut relations = 0;
        let mut by_predicate = BTreeMap::new();
        for (scene, captions) in &data.pairs {
            for c in captions {
                assert!(caption_is_true(scene, cfg.image_size, c), "{c:?}");
                for r in &c.graph.relations {
                    let (s, o) = (&c.referents[r.subject], &c.referents[r.object]);
                    assert_eq!((s.len(), o.len()), (1, 1));
                    let (a, b) = (&scene[s[0]], &scene[o[0]]);
                    assert!(
                        relation_holds(&r.predicate, a, b, cfg.image_size as i32),
                        "{}: {a:?} {b:?}",
                        c.text
                    );
                    relations += 1;
                    *by_predicate.entry(r.predicate.clone()).or_insert(0) += 1;
                }
                if c.graph.relations.is_empty() {
                    // Listed groups carry exact counts.
                    for (o, refs) in c.graph.objects.iter().zip(&c.referents) {
                        let matching = scene.iter().filter(|s| fits(o, s)).count();
                        assert_eq!(matching, refs.len(), "{}", c.text);
                    }
                } else {
                    // No phrase of a relation caption also fits another phrase's shape.
                    for (i, o) in c.graph.objects.iter().enumerate() {
                        for (j, refs) in c.referents.iter().enumerate() {
                            assert!(i == j || !fits(o, &scene[refs[0]]), "{}", c.text);
                        }
                    }
                }
            }
        }
        assert!(relations >= 20, "only {relations} relations");
        assert!(by_predicate.len() >= 4, "{by_predicate:?}");
    }

    #[test]
    fn rendered_pixels_match_the_scene() {
        let cfg = small_config();
        let dir = tempfile::tempdir().unwrap();
        generate(&cfg, dir.path()).unwrap();
        let data = build_dataset(&cfg).unwrap();
        let n = cfg.image_size as usize;
        for (i, (scene, _)) in data.pairs.iter().enumerate() {
            let (_, pixels) = decode(&dir.path().join(pair_image_path(i)));
            let at = |x: i32, y: i32| {
                let k = (y as usize * n + x as usize) * 3;
                [pixels[k], pixels[k + 1], pixels[k + 2]]
            };
            for s in scene {
                // The centre shows the shape's colour, and the box edge a little beyond
                // the shape is background: shapes neither vanish nor overlap.
                assert_eq!(at(s.cx, s.cy), s.colour.rgb(), "{s:?}");
                assert_eq!(at(s.cx + s.half + 1, s.cy), BACKGROUND, "{s:?}");
                assert_eq!(at(s.cx, s.cy - s.half - 1), BACKGROUND, "{s:?}");
            }
            for (a, sa) in scene.iter().enumerate() {
                for sb in &scene[a + 1..] {
                    assert!(apart(sa, sb));
                }
            }
        }
        // Small and large shapes differ clearly in pixels.
        assert!(Size::Large.half_extent(96) >= 2 * Size::Small.half_extent(96));
    }

    #[test]
    fn captions_vary_in_form() {
        let data = build_dataset(&small_config()).unwrap();
        let all: Vec<&str> = data
            .pairs
            .iter()
            .flat_map(|(_, caps)| caps.iter().map(|c| c.text.as_str()))
            .chain(data.texts.iter().map(String::as_str))
            .collect();
        for needle in ["there is ", " is ", " with ", " and ", "the "] {
            assert!(
                all.iter().any(|c| c.contains(needle)),
                "no caption has {needle:?}"
            );
        }
        assert!(all
            .iter()
            .any(|c| c.starts_with("two ") || c.contains(" two ")));
    }

    #[test]
    fn invalid_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for cfg in [
            SynthConfig {
                captions_per_image: 2,
                ..small_config()
            },
            SynthConfig {
                image_size: 63,
                ..small_config()
            },
            SynthConfig {
                image_size: 129,
                ..small_config()
            },
        ] {
            let err = generate(&cfg, dir.path()).unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{err}");
        }
        // Nothing is written for a rejected config.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn config_fields_default_when_missing() {
        let cfg: SynthConfig = serde_json::from_str(r#"{"seed": 3}"#).unwrap();
        assert_eq!(cfg.seed, 3);
        assert_eq!(cfg.images, 600);
        assert_eq!(cfg.captions_per_image, 4);
        assert_eq!(cfg.image_size, 96);
    }
}
