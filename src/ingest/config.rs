//! What to read: the input sources of a pipeline and how to read each.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Image-caption pairs: one or more sources, concatenated in order.
    pub pairs: Vec<Source>,
    /// Images without captions, for image retrieval.
    #[serde(default)]
    pub image_corpus: Vec<Source>,
    /// Texts without images, for text retrieval.
    #[serde(default)]
    pub text_corpus: Vec<Source>,
}

/// One input file and how to read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub format: Format,
    /// Relative paths are resolved against the pipeline file's folder; `${VAR}` and
    /// `${VAR:-default}` are expanded from the environment.
    pub path: PathBuf,
    /// Dataset name, part of every pair's uid. Defaults to the file stem.
    #[serde(default)]
    pub dataset: Option<String>,
    /// Folder that relative image paths (and COCO `file_name`s) are resolved against.
    #[serde(default)]
    pub images_dir: Option<PathBuf>,
    /// COCO instances JSON whose category names become each image's object labels.
    #[serde(default)]
    pub instances: Option<PathBuf>,
    /// Column names for the generic formats (jsonl, csv, parquet); for webdataset, the
    /// `.json` fields (or parquet columns) `objects` and `image_vector` are read from.
    #[serde(default)]
    pub columns: Columns,
    /// How to read webdataset tars (only with `format = "webdataset"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webdataset: Option<WebdatasetOptions>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// COCO captions JSON (`images`, `annotations`).
    Coco,
    /// Flickr8k `Flickr8k.token.txt`: `IMAGE.jpg#N<TAB>caption`.
    Flickr8k,
    Jsonl,
    Csv,
    Parquet,
    /// Webdataset tar shards as img2dataset writes them: `KEY.jpg`, `KEY.txt` and
    /// `KEY.json` per sample. `path` may hold brace patterns: `shards/{00000..00099}.tar`
    /// (a numeric range, zero-padded like its first bound) or `{a,b}` (a list).
    Webdataset,
}

/// Reading webdataset tars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebdatasetOptions {
    /// The `.json` field (or parquet column) that holds the caption; unset: the `.txt`
    /// member.
    pub caption_field: Option<String>,
    /// Read captions from the parquet img2dataset writes beside each tar
    /// (`00000.parquet`, successful downloads only) when there is one, instead of from
    /// the tar's text members.
    pub use_parquet: bool,
}

impl Default for WebdatasetOptions {
    fn default() -> Self {
        WebdatasetOptions {
            caption_field: None,
            use_parquet: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Columns {
    pub image_id: String,
    /// The caption for pairs, the text for a text corpus.
    pub caption: String,
    /// Optional record id; duplicates are rejected. Without it the uid is the key.
    pub id: Option<String>,
    pub image_path: Option<String>,
    /// Precomputed image vector: a list of numbers (JSON array in CSV cells).
    pub image_vector: Option<String>,
    /// Object labels: a list of strings (`|`-separated in CSV cells).
    pub objects: Option<String>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            image_id: "image_id".into(),
            caption: "caption".into(),
            id: None,
            image_path: Some("image_path".into()),
            image_vector: None,
            objects: Some("objects".into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Captions longer than this (in characters) are rejected.
    pub max_caption_chars: usize,
    /// The run fails when more than this share (0..=1) of records is rejected.
    pub max_reject_share: f64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_caption_chars: 1000,
            max_reject_share: 0.01,
        }
    }
}
