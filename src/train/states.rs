//! Token states of a frozen pretrained text encoder (all-MiniLM-L6-v2), computed once per
//! distinct text and kept on disk: the trainable part of a pretrained text tower starts
//! from them, so an epoch never runs the frozen layers again.
//!
//! A cache file holds the states after a given number of layers of one model, named by
//! the SHA-256 of the model's weights and that layer count; its entries are keyed by the
//! SHA-256 of the text. Another model, other weights or another layer is another file,
//! and another text another key, so nothing stale is ever read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};
use half::f16;
use sha2::{Digest, Sha256};

use crate::core::binfile::{Reader, Writer};
use crate::core::error::{Error, Result};
use crate::core::fs::{sha256_file, write_bytes_atomic};
use crate::core::progress::progress_bar;
use crate::embed::text::TextEncoder;

const MAGIC: &[u8; 8] = b"CMCLTOKS";
const VERSION: u32 = 1;
/// Texts encoded per step (and progress update).
const CHUNK: usize = 1024;

type Key = [u8; 16];

/// One text's states: `tokens` rows of `dim` values.
#[derive(Debug, Clone)]
pub struct States {
    pub tokens: usize,
    pub values: Arc<Vec<f32>>,
}

/// The cached states of one model after `layers` layers.
pub struct TokenStates {
    encoder: TextEncoder,
    layers: usize,
    dim: usize,
    file: PathBuf,
    known: Mutex<HashMap<Key, States>>,
}

fn key(text: &str) -> Key {
    let digest = Sha256::digest(text.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

impl TokenStates {
    /// The encoder in `model_dir`, with the states of its first `layers` layers cached
    /// under `cache_dir` (read now when the file exists).
    pub fn open(model_dir: &Path, layers: usize, cache_dir: &Path) -> Result<TokenStates> {
        let encoder = TextEncoder::load(model_dir)?;
        if layers > encoder.num_layers() {
            return Err(Error::model(
                model_dir,
                format!("has {} layers, not {layers}", encoder.num_layers()),
            ));
        }
        let weights = sha256_file(&model_dir.join("model.safetensors"))?;
        let file = cache_dir.join(format!("tokens-{}-l{layers}.bin", &weights[..16]));
        let dim = encoder.dim();
        let known = match std::fs::read(&file) {
            Ok(bytes) => read_cache(&bytes, dim).map_err(|m| Error::input(&file, 0, m))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(Error::io(&file, e)),
        };
        Ok(TokenStates {
            encoder,
            layers,
            dim,
            file,
            known: Mutex::new(known),
        })
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// How many texts have states.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, States>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Computes the states of the texts not cached yet and rewrites the cache file with
    /// them; says how many were computed.
    pub fn ensure(&self, texts: &[&str], progress: bool) -> Result<usize> {
        let mut missing = self.missing(texts);
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(0);
        }
        let bar = progress_bar(
            progress,
            missing.len() as u64,
            "texts encoded (MiniLM token states)",
        );
        for chunk in missing.chunks(CHUNK) {
            self.compute(chunk)?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        if let Some(dir) = self.file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        write_bytes_atomic(&self.file, &write_cache(&self.lock(), self.dim))?;
        Ok(missing.len())
    }

    /// The texts without states yet.
    fn missing<'a>(&self, texts: &[&'a str]) -> Vec<&'a str> {
        let known = self.lock();
        texts
            .iter()
            .copied()
            .filter(|t| !known.contains_key(&key(t)))
            .collect()
    }

    fn compute(&self, texts: &[&str]) -> Result<()> {
        let states = self.encoder.token_states(texts, self.layers)?;
        let mut known = self.lock();
        for (text, (tokens, values)) in texts.iter().zip(states) {
            // Stored as f16 on disk: keep exactly what a later run will read back.
            let values = values.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
            known.insert(
                key(text),
                States {
                    tokens,
                    values: Arc::new(values),
                },
            );
        }
        Ok(())
    }

    /// The states of `texts` (computed now for any not cached), cut to `max_len`
    /// tokens and padded to the longest: `[n, len, dim]`, and the mask `[n, len]` (1 at
    /// tokens).
    pub fn batch(
        &self,
        texts: &[&str],
        max_len: usize,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let absent = self.missing(texts);
        if !absent.is_empty() {
            self.compute(&absent)?;
        }
        let known = self.lock();
        let found: Vec<&States> = texts.iter().map(|t| &known[&key(t)]).collect();
        let len = found
            .iter()
            .map(|s| s.tokens.min(max_len))
            .max()
            .unwrap_or(1)
            .max(1);
        let dim = self.dim;
        let mut values = vec![0f32; texts.len() * len * dim];
        let mut mask = vec![0f32; texts.len() * len];
        for (row, states) in found.iter().enumerate() {
            let tokens = states.tokens.min(max_len);
            let at = row * len * dim;
            values[at..at + tokens * dim].copy_from_slice(&states.values[..tokens * dim]);
            mask[row * len..row * len + tokens].fill(1.0);
        }
        let err = |e| Error::model(&self.file, e);
        Ok((
            Tensor::from_vec(values, (texts.len(), len, dim), device).map_err(err)?,
            Tensor::from_vec(mask, (texts.len(), len), device).map_err(err)?,
        ))
    }
}

fn write_cache(known: &HashMap<Key, States>, dim: usize) -> Vec<u8> {
    let mut keys: Vec<&Key> = known.keys().collect();
    keys.sort_unstable();
    let size: usize = known.values().map(|s| 20 + s.values.len() * 2).sum();
    let mut out = Writer::new(MAGIC, VERSION, size + 16);
    out.u32(dim as u32);
    out.u64(keys.len() as u64);
    for key in keys {
        let states = &known[key];
        out.raw(key);
        out.u32(states.tokens as u32);
        let halves: Vec<u8> = states
            .values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect();
        out.raw(&halves);
    }
    out.finish()
}

fn read_cache(bytes: &[u8], dim: usize) -> std::result::Result<HashMap<Key, States>, String> {
    let mut reader = Reader::open(bytes, MAGIC, VERSION)?;
    let truncated = || "truncated".to_string();
    let found = reader.u32().ok_or_else(truncated)? as usize;
    if found != dim {
        return Err(format!("states of dimension {found}, the model has {dim}"));
    }
    let count = reader.u64().ok_or_else(truncated)? as usize;
    let mut known = HashMap::with_capacity(count);
    for _ in 0..count {
        let key: Key = reader
            .take(16)
            .and_then(|k| k.try_into().ok())
            .ok_or_else(truncated)?;
        let tokens = reader.u32().ok_or_else(truncated)? as usize;
        let raw = reader
            .take(tokens.checked_mul(dim * 2).ok_or_else(truncated)?)
            .ok_or_else(truncated)?;
        let values = raw
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        known.insert(
            key,
            States {
                tokens,
                values: Arc::new(values),
            },
        );
    }
    if !reader.at_end() {
        return Err("bytes after the last entry".into());
    }
    Ok(known)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2")
    }

    /// A copy of MiniLM's folder whose weights differ in one byte.
    fn altered_model(dir: &Path) -> PathBuf {
        let copy = dir.join("altered");
        std::fs::create_dir_all(&copy).unwrap();
        for name in ["config.json", "tokenizer.json", "model.safetensors"] {
            std::fs::copy(minilm().join(name), copy.join(name)).unwrap();
        }
        let weights = copy.join("model.safetensors");
        let mut bytes = std::fs::read(&weights).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        std::fs::write(&weights, bytes).unwrap();
        copy
    }

    #[test]
    fn the_cache_is_reused_and_invalidated_by_model_layer_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let texts = ["a red cube left of a blue ball", "two dogs on a sofa"];
        let first = TokenStates::open(&minilm(), 6, &cache).unwrap();
        assert_eq!(first.ensure(&texts, false).unwrap(), 2);
        let (states, mask) = first.batch(&texts, 32, &Device::Cpu).unwrap();

        // Read back from disk: nothing to compute, the same values.
        let again = TokenStates::open(&minilm(), 6, &cache).unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(again.ensure(&texts, false).unwrap(), 0);
        let (read, read_mask) = again.batch(&texts, 32, &Device::Cpu).unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(&states), flat(&read));
        assert_eq!(flat(&mask), flat(&read_mask));

        // Another text is another key; another layer or other weights another file.
        assert_eq!(
            again
                .ensure(&["a blue cube left of a red ball"], false)
                .unwrap(),
            1
        );
        let lower = TokenStates::open(&minilm(), 5, &cache).unwrap();
        assert!(lower.is_empty() && lower.file() != again.file());
        let altered = TokenStates::open(&altered_model(dir.path()), 6, &cache).unwrap();
        assert!(altered.is_empty() && altered.file() != again.file());

        // A cut-off file is refused with its name.
        let bytes = std::fs::read(again.file()).unwrap();
        std::fs::write(again.file(), &bytes[..bytes.len() - 100]).unwrap();
        let err = TokenStates::open(&minilm(), 6, &cache)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tokens-") && err.contains("checksum"), "{err}");
    }
}
