//! Image embeddings behind one interface ([`ImageEmbedder`]): a training-free pixel
//! descriptor (the default, no model needed), CLIP's image tower ([`super::clip`]), or
//! precomputed vectors (the records' `image_vector` column, or an `.npy` folder in
//! clip-retrieval's layout).
//!
//! # The descriptor
//!
//! The image is decoded (PNG or JPEG), box-averaged to `size` x `size` RGB, and
//! described by
//! - a global colour histogram, 4 x 4 x 4 RGB bins;
//! - per cell of a `grid` x `grid` layout, a 2 x 2 x 2 colour histogram and an 8-bin
//!   histogram of gradient orientations (unsigned, weighted by magnitude, as in HOG),
//!   which together say what colours and edges sit where.
//!
//! Histograms are square-rooted (their dot product is then the Bhattacharyya
//! coefficient), each block is L2-normalised and weighted so that the global colour and
//! the layout count equally, and the whole vector is L2-normalised.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where image vectors come from (`image_embeddings = { source = ... }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageEmbeddingConfig {
    /// The training-free pixel descriptor.
    Descriptor {
        /// Cells per side of the spatial grid.
        #[serde(default = "default_grid")]
        grid: usize,
        /// Side of the square the image is averaged down to first.
        #[serde(default = "default_size")]
        size: usize,
        /// Also colour-by-edge-orientation histograms, over the whole image and per
        /// cell: which colour each kind of edge has, so shape and colour stay bound
        /// together ("a red star", not "something red and some star").
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        bind: bool,
        /// Also colour regions: per colour of a 15-colour palette (12 hues, black, grey,
        /// white), how much of the image it covers, where (centroid and spread) and
        /// which edge orientations border it. Objects of one colour read as one region:
        /// which colour is star-shaped, large, on the left, where the grid only says it
        /// cell by cell.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        regions: bool,
    },
    /// CLIP's image tower from a Hugging Face model folder (`config.json`,
    /// `model.safetensors`).
    Clip { model: PathBuf },
    /// Vectors computed elsewhere: each record's `image_vector`, or with `path`, an
    /// `.npy` folder in clip-retrieval's layout (`img_emb/img_emb_N.npy` beside
    /// `metadata/metadata_N.parquet` with an `image_path` column), matched to records by
    /// image path (or, when unique, file name).
    Precomputed {
        #[serde(default)]
        path: Option<PathBuf>,
    },
}

fn default_grid() -> usize {
    4
}

fn default_size() -> usize {
    64
}

impl Default for ImageEmbeddingConfig {
    fn default() -> Self {
        ImageEmbeddingConfig::Descriptor {
            grid: default_grid(),
            size: default_size(),
            bind: false,
            regions: false,
        }
    }
}

/// An image as the records give it.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    pub image_id: &'a str,
    pub image_path: Option<&'a str>,
    pub image_vector: Option<&'a [f32]>,
}

/// Turns an image into a vector. Implementations are shared across worker threads.
pub trait ImageEmbedder: Sync {
    /// Names the method and its settings; part of the index's input checksum.
    fn id(&self) -> String;

    /// The vector of `image`; any length (the index normalises), the same for all.
    fn embed(&self, image: &ImageRef) -> Result<Vec<f32>>;
}

impl ImageEmbeddingConfig {
    pub fn build(&self) -> Result<Box<dyn ImageEmbedder>> {
        match self {
            ImageEmbeddingConfig::Descriptor {
                grid,
                size,
                bind,
                regions,
            } => {
                if *grid == 0 || *size < 2 * grid {
                    return Err(Error::Stage {
                        stage: "retrieval".into(),
                        message: format!(
                            "descriptor needs grid >= 1 and size >= 2 * grid, not {grid} and {size}"
                        ),
                    });
                }
                Ok(Box::new(Descriptor {
                    grid: *grid,
                    size: *size,
                    bind: *bind,
                    regions: *regions,
                }))
            }
            ImageEmbeddingConfig::Clip { model } => Ok(Box::new(super::clip::Clip::load(model)?)),
            ImageEmbeddingConfig::Precomputed { path } => Ok(Box::new(Precomputed {
                folder: match path {
                    Some(dir) => Some(NpyFolder::open(dir)?),
                    None => None,
                },
            })),
        }
    }

    pub(crate) fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            ImageEmbeddingConfig::Precomputed { path: Some(p) } => vec![p],
            ImageEmbeddingConfig::Clip { model } => vec![model],
            _ => Vec::new(),
        }
    }
}

/// The pixel descriptor (see the module docs).
pub struct Descriptor {
    grid: usize,
    size: usize,
    bind: bool,
    regions: bool,
}

impl ImageEmbedder for Descriptor {
    fn id(&self) -> String {
        let bind = if self.bind { "/bind" } else { "" };
        let regions = if self.regions { "/regions" } else { "" };
        format!(
            "descriptor-v1/grid{}/size{}{bind}{regions}",
            self.grid, self.size
        )
    }

    fn embed(&self, image: &ImageRef) -> Result<Vec<f32>> {
        let path = image.image_path.ok_or_else(|| Error::Stage {
            stage: "retrieval".into(),
            message: format!(
                "image {} has no image_path; the descriptor needs pixels",
                image.image_id
            ),
        })?;
        let pixels = decode_rgb(Path::new(path))?;
        Ok(self.describe(&pixels))
    }
}

/// A decoded RGB image.
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Decodes a PNG or JPEG file (format from its content) to RGB.
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let decoded = reader
        .decode()
        .map_err(|e| Error::input(path, 0, format!("unreadable image: {e}")))?
        .to_rgb8();
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(Error::input(path, 0, "unreadable image: no pixels"));
    }
    Ok(decoded)
}

/// [`decode`] into a plain pixel buffer.
pub fn decode_rgb(path: &Path) -> Result<Rgb> {
    let decoded = decode(path)?;
    Ok(Rgb {
        width: decoded.width() as usize,
        height: decoded.height() as usize,
        data: decoded.into_raw(),
    })
}

impl Descriptor {
    pub fn describe(&self, image: &Rgb) -> Vec<f32> {
        let (s, g) = (self.size, self.grid);
        let small = box_resize(image, s);
        let pixel = |x: usize, y: usize| &small[(y * s + x) * 3..(y * s + x) * 3 + 3];
        let luma = |x: usize, y: usize| {
            let p = pixel(x, y);
            0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
        };
        let mut global = vec![0f32; 64];
        let mut colour = vec![0f32; g * g * 8];
        let mut edges = vec![0f32; g * g * 8];
        // Colour (8 bins) by orientation (8 bins), whole image and per cell.
        let mut bound = vec![0f32; (1 + g * g) * 64];
        let colour_bin = |p: &[f32]| {
            let bin = |v: f32| usize::from(v >= 128.0);
            bin(p[0]) * 4 + bin(p[1]) * 2 + bin(p[2])
        };
        let mut regions = Regions::new(self.regions);
        for y in 0..s {
            for x in 0..s {
                let p = pixel(x, y);
                regions.add_pixel(p, x, y);
                let bin = |v: f32, n: usize| ((v / 256.0 * n as f32) as usize).min(n - 1);
                global[bin(p[0], 4) * 16 + bin(p[1], 4) * 4 + bin(p[2], 4)] += 1.0;
                let cell = (y * g / s) * g + x * g / s;
                colour[cell * 8 + bin(p[0], 2) * 4 + bin(p[1], 2) * 2 + bin(p[2], 2)] += 1.0;
                if x > 0 && y > 0 && x + 1 < s && y + 1 < s {
                    let dx = luma(x + 1, y) - luma(x - 1, y);
                    let dy = luma(x, y + 1) - luma(x, y - 1);
                    let magnitude = (dx * dx + dy * dy).sqrt();
                    // Unsigned orientation in [0, pi): an edge is the same edge both ways.
                    let angle = dy.atan2(dx).rem_euclid(std::f32::consts::PI);
                    let bin = ((angle / std::f32::consts::PI * 8.0) as usize).min(7);
                    edges[cell * 8 + bin] += magnitude;
                    if (self.bind || self.regions) && magnitude > 0.0 {
                        // Both sides of the edge, one pixel along the gradient: the
                        // shape's colour and whatever it stands on.
                        let (ux, uy) = (dx / magnitude, dy / magnitude);
                        for side in [-1.0f32, 1.0] {
                            let nx = (x as f32 + side * ux).round() as usize;
                            let ny = (y as f32 + side * uy).round() as usize;
                            let beside = pixel(nx, ny);
                            regions.add_edge(beside, bin, magnitude);
                            if self.bind {
                                let slot = colour_bin(beside) * 8 + bin;
                                bound[slot] += magnitude;
                                bound[(1 + cell) * 64 + slot] += magnitude;
                            }
                        }
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(64 + 16 * g * g);
        // Global colour counts as much as the whole layout (which is g*g cells of two blocks).
        out.extend(unit_block(&global, 1.0));
        let cell_weight = 1.0 / (2.0 * (g * g) as f32).sqrt();
        for cell in 0..g * g {
            out.extend(unit_block(&colour[cell * 8..cell * 8 + 8], cell_weight));
            out.extend(unit_block(&edges[cell * 8..cell * 8 + 8], cell_weight));
        }
        if self.bind {
            out.extend(unit_block(&bound[..64], 1.0));
            let cell_weight = 1.0 / (g as f32);
            for cell in 1..=g * g {
                out.extend(unit_block(&bound[cell * 64..cell * 64 + 64], cell_weight));
            }
        }
        regions.finish(s, &mut out);
        crate::hnsw::normalized(&out)
    }
}

/// Hue bins of the region palette; then black, grey and white.
const HUES: usize = 12;
const PALETTE: usize = HUES + 3;

/// The palette colour of an RGB pixel: unsaturated pixels by lightness, the rest by hue
/// in 30-degree bins centred on red, orange, yellow, ...
fn palette_bin(p: &[f32]) -> usize {
    let (max, min) = (p[0].max(p[1]).max(p[2]), p[0].min(p[1]).min(p[2]));
    let chroma = max - min;
    if chroma < 48.0 {
        return HUES + usize::from(max >= 85.0) + usize::from(max >= 170.0);
    }
    let hue = if max == p[0] {
        ((p[1] - p[2]) / chroma).rem_euclid(6.0)
    } else if max == p[1] {
        (p[2] - p[0]) / chroma + 2.0
    } else {
        (p[0] - p[1]) / chroma + 4.0
    } * 60.0;
    (((hue + 15.0) / 30.0) as usize) % HUES
}

/// Running sums of the colour-region block (see `ImageEmbeddingConfig::Descriptor`).
struct Regions {
    on: bool,
    /// Per palette colour: pixels, sum of x, of y, of x², of y².
    moments: [[f32; 5]; PALETTE],
    /// Per palette colour, edge magnitude by orientation bin.
    edges: [[f32; 8]; PALETTE],
}

impl Regions {
    fn new(on: bool) -> Regions {
        Regions {
            on,
            moments: [[0.0; 5]; PALETTE],
            edges: [[0.0; 8]; PALETTE],
        }
    }

    fn add_pixel(&mut self, p: &[f32], x: usize, y: usize) {
        if self.on {
            let (x, y) = (x as f32, y as f32);
            let m = &mut self.moments[palette_bin(p)];
            for (slot, v) in m.iter_mut().zip([1.0, x, y, x * x, y * y]) {
                *slot += v;
            }
        }
    }

    fn add_edge(&mut self, p: &[f32], orientation: usize, magnitude: f32) {
        if self.on {
            self.edges[palette_bin(p)][orientation] += magnitude;
        }
    }

    /// Appends per colour: the square root of its share of the image, its centroid and
    /// spread (in image widths, centred on 0), and its edge orientations as a unit block
    /// scaled like the share. A colour of fewer than `MIN_PIXELS` pixels (anti-aliasing
    /// fringes) counts as absent.
    fn finish(&self, side: usize, out: &mut Vec<f32>) {
        const MIN_PIXELS: f32 = 4.0;
        if !self.on {
            return;
        }
        let (side, total) = (side as f32, (side * side) as f32);
        for (m, edges) in self.moments.iter().zip(&self.edges) {
            let n = m[0];
            if n < MIN_PIXELS {
                out.extend([0.0; 13]);
                continue;
            }
            let share = (n / total).sqrt();
            let (cx, cy) = (m[1] / n, m[2] / n);
            let spread = |sq: f32, c: f32| (sq / n - c * c).max(0.0).sqrt() / side;
            out.extend([
                share,
                (cx + 0.5) / side - 0.5,
                (cy + 0.5) / side - 0.5,
                spread(m[3], cx),
                spread(m[4], cy),
            ]);
            out.extend(unit_block(edges, share));
        }
    }
}

/// `block` square-rooted, L2-normalised and scaled by `weight`.
fn unit_block(block: &[f32], weight: f32) -> Vec<f32> {
    let rooted: Vec<f32> = block.iter().map(|&v| v.max(0.0).sqrt()).collect();
    crate::hnsw::normalized(&rooted)
        .into_iter()
        .map(|v| v * weight)
        .collect()
}

/// Area-averages `image` to `size` x `size` RGB floats (each output pixel is the mean of
/// the source pixels whose centres fall in it; at least the nearest one).
fn box_resize(image: &Rgb, size: usize) -> Vec<f32> {
    let mut sums = vec![0f32; size * size * 3];
    let mut counts = vec![0u32; size * size];
    for y in 0..image.height {
        let ty = y * size / image.height;
        for x in 0..image.width {
            let tx = x * size / image.width;
            let t = ty * size + tx;
            counts[t] += 1;
            let p = &image.data[(y * image.width + x) * 3..(y * image.width + x) * 3 + 3];
            for c in 0..3 {
                sums[t * 3 + c] += f32::from(p[c]);
            }
        }
    }
    for ty in 0..size {
        for tx in 0..size {
            let t = ty * size + tx;
            if counts[t] > 0 {
                for c in 0..3 {
                    sums[t * 3 + c] /= counts[t] as f32;
                }
            } else {
                // Upscaling: take the source pixel under this one's centre.
                let sx = ((tx * 2 + 1) * image.width / (2 * size)).min(image.width - 1);
                let sy = ((ty * 2 + 1) * image.height / (2 * size)).min(image.height - 1);
                let p = &image.data[(sy * image.width + sx) * 3..(sy * image.width + sx) * 3 + 3];
                for c in 0..3 {
                    sums[t * 3 + c] = f32::from(p[c]);
                }
            }
        }
    }
    sums
}

/// Precomputed vectors: the record's own, else the `.npy` folder's.
pub struct Precomputed {
    folder: Option<NpyFolder>,
}

impl ImageEmbedder for Precomputed {
    fn id(&self) -> String {
        match &self.folder {
            Some(folder) => format!("precomputed/{}", folder.fingerprint),
            None => "precomputed/records".into(),
        }
    }

    fn embed(&self, image: &ImageRef) -> Result<Vec<f32>> {
        if let Some(vector) = image.image_vector {
            return Ok(vector.to_vec());
        }
        let found = self
            .folder
            .as_ref()
            .and_then(|f| f.lookup(image.image_path?));
        found.map(<[f32]>::to_vec).ok_or_else(|| Error::Stage {
            stage: "retrieval".into(),
            message: format!(
                "image {} ({}) has no precomputed vector: no image_vector in its record{}",
                image.image_id,
                image.image_path.unwrap_or("no image_path"),
                match &self.folder {
                    Some(f) => format!(" and no row in {}", f.dir.display()),
                    None => String::new(),
                }
            ),
        })
    }
}

/// clip-retrieval's output: `img_emb/img_emb_N.npy` with `metadata/metadata_N.parquet`.
struct NpyFolder {
    dir: PathBuf,
    rows: Vec<f32>,
    dim: usize,
    by_path: HashMap<String, usize>,
    /// File name -> row, for names that occur once.
    by_name: HashMap<String, Option<usize>>,
    fingerprint: String,
}

impl NpyFolder {
    fn open(dir: &Path) -> Result<NpyFolder> {
        let emb_dir = dir.join("img_emb");
        let mut parts: Vec<(u64, PathBuf)> = std::fs::read_dir(&emb_dir)
            .map_err(|e| Error::io(&emb_dir, e))?
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let n = path
                    .file_name()?
                    .to_str()?
                    .strip_prefix("img_emb_")?
                    .strip_suffix(".npy")?
                    .parse()
                    .ok()?;
                Some((n, path))
            })
            .collect();
        parts.sort();
        if parts.is_empty() {
            return Err(Error::input(&emb_dir, 0, "no img_emb_N.npy files"));
        }
        let (mut rows, mut dim) = (Vec::new(), None);
        let (mut by_path, mut by_name) = (HashMap::new(), HashMap::new());
        let mut fingerprint = sha2::Sha256::default();
        for (n, npy) in &parts {
            let matrix = crate::npy::read(npy)?;
            match dim {
                None => dim = Some(matrix.cols),
                Some(d) if d != matrix.cols => {
                    return Err(Error::input(
                        npy,
                        0,
                        format!("{} dimensions, but earlier files have {d}", matrix.cols),
                    ))
                }
                Some(_) => {}
            }
            let meta = dir.join("metadata").join(format!("metadata_{n}.parquet"));
            let paths = read_image_paths(&meta)?;
            if paths.len() != matrix.rows {
                return Err(Error::input(
                    &meta,
                    0,
                    format!(
                        "{} rows, but {} has {}",
                        paths.len(),
                        npy.display(),
                        matrix.rows
                    ),
                ));
            }
            let first = rows.len() / matrix.cols.max(1);
            for (i, path) in paths.into_iter().enumerate() {
                sha2::Digest::update(&mut fingerprint, path.as_bytes());
                if let Some(name) = Path::new(&path).file_name().and_then(|n| n.to_str()) {
                    by_name
                        .entry(name.to_string())
                        .and_modify(|slot| *slot = None)
                        .or_insert(Some(first + i));
                }
                by_path.insert(path, first + i);
            }
            for x in &matrix.data {
                sha2::Digest::update(&mut fingerprint, x.to_le_bytes());
            }
            rows.extend(matrix.data);
        }
        Ok(NpyFolder {
            dir: dir.to_path_buf(),
            rows,
            dim: dim.unwrap_or(0),
            by_path,
            by_name,
            fingerprint: crate::fsutil::hex(&sha2::Digest::finalize(fingerprint)[..8]),
        })
    }

    fn lookup(&self, image_path: &str) -> Option<&[f32]> {
        let row = self.by_path.get(image_path).copied().or_else(|| {
            let name = Path::new(image_path).file_name()?.to_str()?;
            self.by_name.get(name).copied().flatten()
        })?;
        Some(&self.rows[row * self.dim..(row + 1) * self.dim])
    }
}

/// The `image_path` column of a clip-retrieval metadata file.
fn read_image_paths(path: &Path) -> Result<Vec<String>> {
    use arrow_array::{Array, LargeStringArray, StringArray};
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| Error::arrow(path, e))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| Error::arrow(path, e))?;
        let column = batch
            .column_by_name("image_path")
            .ok_or_else(|| Error::input(path, 0, "no image_path column"))?;
        let strings: Vec<Option<&str>> =
            if let Some(a) = column.as_any().downcast_ref::<StringArray>() {
                a.iter().collect()
            } else if let Some(a) = column.as_any().downcast_ref::<LargeStringArray>() {
                a.iter().collect()
            } else {
                return Err(Error::input(path, 0, "image_path is not a string column"));
            };
        let first = out.len();
        for (i, s) in strings.into_iter().enumerate() {
            out.push(
                s.map(str::to_string)
                    .ok_or_else(|| Error::input(path, (first + i + 1) as u64, "null image_path"))?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A white image with a filled `colour` square on the left and a filled `other`
    /// disc on the right.
    fn scene(colour: [u8; 3], other: [u8; 3]) -> Rgb {
        let side = 64;
        let mut data = vec![240u8; side * side * 3];
        let (square_x, disc_x) = (8, 44);
        for y in 0..side {
            for x in 0..side {
                let in_square = (square_x..square_x + 20).contains(&x) && (22..42).contains(&y);
                let (dx, dy) = (x as f32 - disc_x as f32, y as f32 - 32.0);
                let in_disc = dx * dx + dy * dy <= 100.0;
                let paint = match (in_square, in_disc) {
                    (true, _) => colour,
                    (_, true) => other,
                    _ => continue,
                };
                data[(y * side + x) * 3..(y * side + x) * 3 + 3].copy_from_slice(&paint);
            }
        }
        Rgb {
            width: side,
            height: side,
            data,
        }
    }

    const RED: [u8; 3] = [214, 39, 40];
    const BLUE: [u8; 3] = [31, 80, 210];

    #[test]
    fn palette_keeps_nearby_hues_apart() {
        let bin = |rgb: [u8; 3]| palette_bin(&rgb.map(f32::from));
        let named = [
            RED,
            [255, 127, 14],
            [232, 196, 0],
            [34, 160, 60],
            BLUE,
            [128, 52, 168],
            [20, 20, 20],
            [128, 128, 128],
            [236, 234, 226],
        ];
        let bins: std::collections::BTreeSet<usize> = named.iter().map(|&c| bin(c)).collect();
        assert_eq!(bins.len(), named.len(), "{:?}", named.map(bin));
    }

    #[test]
    fn regions_place_each_colour_and_tell_swapped_colours_apart() {
        let describe = |regions| Descriptor {
            grid: 4,
            size: 64,
            bind: false,
            regions,
        };
        let image = scene(RED, BLUE);
        let plain = describe(false).describe(&image);
        let with = describe(true).describe(&image);
        assert_eq!(with.len(), plain.len() + PALETTE * 13);

        // Before the final normalisation: the red square's region sits left of centre,
        // the blue disc's right of it, each with its own share of the pixels.
        let mut regions = Regions::new(true);
        let small = box_resize(&image, 64);
        for y in 0..64 {
            for x in 0..64 {
                regions.add_pixel(&small[(y * 64 + x) * 3..(y * 64 + x) * 3 + 3], x, y);
            }
        }
        let mut block = Vec::new();
        regions.finish(64, &mut block);
        let of = |rgb: [u8; 3]| &block[palette_bin(&rgb.map(f32::from)) * 13..][..13];
        let (red, blue) = (of(RED), of(BLUE));
        assert!(red[1] < -0.1 && blue[1] > 0.1, "red {red:?}, blue {blue:?}");
        assert!(
            red[0] > blue[0],
            "a 20x20 square covers more than a radius-10 disc"
        );

        // The same shapes with their colours swapped give another vector.
        let swapped = describe(true).describe(&scene(BLUE, RED));
        let distance = crate::hnsw::cosine_distance(&with, &swapped);
        assert!(distance > 0.01, "{distance}");
    }
}
