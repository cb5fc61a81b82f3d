//! Precomputed image vectors: the records' `image_vector` column, or an `.npy` folder in
//! clip-retrieval's layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ImageEmbedder, ImageRef};
use crate::core::error::{Error, Result};

/// Precomputed vectors: the record's own, else the `.npy` folder's.
pub struct Precomputed {
    folder: Option<NpyFolder>,
}

impl Precomputed {
    /// Vectors from the records, or from the `.npy` folder `dir`.
    pub fn open(dir: Option<&Path>) -> Result<Precomputed> {
        let folder = dir.map(NpyFolder::open).transpose()?;
        Ok(Precomputed { folder })
    }
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
            let matrix = crate::embed::npy::read(npy)?;
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
            fingerprint: crate::core::fs::hex(&sha2::Digest::finalize(fingerprint)[..8]),
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
