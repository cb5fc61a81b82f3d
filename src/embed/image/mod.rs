//! Image embeddings behind one interface ([`ImageEmbedder`]): a training-free pixel
//! descriptor (the default, no model needed), CLIP's image tower ([`clip`]), or
//! precomputed vectors (the records' `image_vector` column, or an `.npy` folder in
//! clip-retrieval's layout).

pub mod clip;
pub mod descriptor;
pub mod precomputed;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::descriptor::Descriptor;
use self::precomputed::Precomputed;
use crate::core::error::{Error, Result};

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

/// What an image embedding reads of each image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageNeed {
    /// The image file (`image_path`).
    Pixels,
    /// A vector in the record (`image_vector`).
    Vectors,
}

impl ImageNeed {
    pub fn describe(self) -> &'static str {
        match self {
            ImageNeed::Pixels => "pixels (an image_path per record)",
            ImageNeed::Vectors => "precomputed vectors (an image_vector per record)",
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
            ImageEmbeddingConfig::Clip { model } => Ok(Box::new(clip::Clip::load(model)?)),
            ImageEmbeddingConfig::Precomputed { path } => {
                Ok(Box::new(Precomputed::open(path.as_deref())?))
            }
        }
    }

    pub fn need(&self) -> ImageNeed {
        match self {
            ImageEmbeddingConfig::Precomputed { path: None } => ImageNeed::Vectors,
            // A vector folder is matched to records by their image paths.
            _ => ImageNeed::Pixels,
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

/// A decoded RGB image.
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

/// Decodes a PNG or JPEG file (format from its content) to RGB. The file may be a tar
/// archive's member (see [`crate::core::tar`]).
pub fn decode(path: &Path) -> Result<image::RgbImage> {
    let bytes = crate::core::tar::read_path(path)?;
    let decoded = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(|e| Error::input(path, 0, format!("unreadable image: {e}")))?
        .to_rgb8();
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(Error::input(path, 0, "unreadable image: no pixels"));
    }
    Ok(decoded)
}

/// The width and height in an image's header, without decoding its pixels; `bytes` may
/// be just the file's beginning. Why not, when the header is unreadable.
pub fn probe_dimensions(bytes: &[u8]) -> std::result::Result<(u32, u32), String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a PNG or JPEG image".into());
    }
    match reader.into_dimensions().map_err(|e| e.to_string())? {
        (0, _) | (_, 0) => Err("no pixels".into()),
        dimensions => Ok(dimensions),
    }
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
