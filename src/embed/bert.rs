//! The forward pass of a BERT encoder (the architecture of all-MiniLM-L6-v2) on candle
//! tensors, written here rather than taken from candle-transformers for speed on CPU: a
//! profile of candle's `BertModel` spent 18% of its time in the exact GELU's `erf`, which
//! here is a closed form accurate to float precision, computed in parallel; the query,
//! key and value projections are one matrix product, and the attention scale is folded
//! into the query weights at load.

use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
use candle_transformers::models::bert::Config;
use rayon::prelude::*;

pub struct Bert {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

struct Layer {
    /// Query, key and value in one `(3 * hidden, hidden)` product; the query's rows are
    /// already divided by the square root of the head size.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Bert {
    /// Loads the weights under `embeddings.` and `encoder.`, or under `bert.` as some
    /// checkpoints name them.
    pub fn load(vb: VarBuilder, config: &Config) -> Result<Bert> {
        let vb = match vb.contains_tensor("embeddings.word_embeddings.weight") {
            true => vb,
            false => vb.pp("bert"),
        };
        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        let eps = config.layer_norm_eps;
        let embeddings = vb.pp("embeddings");
        let embedding = |name: &str, n: usize| -> Result<Embedding> {
            Ok(Embedding::new(
                embeddings.get((n, hidden), &format!("{name}.weight"))?,
                hidden,
            ))
        };
        let word = embedding("word_embeddings", config.vocab_size)?;
        let position = embedding("position_embeddings", config.max_position_embeddings)?;
        let token_type = embedding("token_type_embeddings", config.type_vocab_size)?;
        let norm = candle_nn::layer_norm(hidden, eps, embeddings.pp("LayerNorm"))?;
        let scale = 1.0 / ((hidden / heads) as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let layer = vb.pp(format!("encoder.layer.{i}"));
            let attention = layer.pp("attention");
            let own = attention.pp("self");
            let weight = |name: &str| own.get((hidden, hidden), &format!("{name}.weight"));
            let bias = |name: &str| own.get(hidden, &format!("{name}.bias"));
            let qkv = Linear::new(
                Tensor::cat(
                    &[
                        (weight("query")? * scale)?,
                        weight("key")?,
                        weight("value")?,
                    ],
                    0,
                )?,
                Some(Tensor::cat(
                    &[(bias("query")? * scale)?, bias("key")?, bias("value")?],
                    0,
                )?),
            );
            let linear = |vb: VarBuilder, inputs: usize, outputs: usize| {
                candle_nn::linear(inputs, outputs, vb)
            };
            layers.push(Layer {
                qkv,
                attention_out: linear(attention.pp("output.dense"), hidden, hidden)?,
                attention_norm: candle_nn::layer_norm(
                    hidden,
                    eps,
                    attention.pp("output.LayerNorm"),
                )?,
                intermediate: linear(
                    layer.pp("intermediate.dense"),
                    hidden,
                    config.intermediate_size,
                )?,
                output: linear(layer.pp("output.dense"), config.intermediate_size, hidden)?,
                output_norm: candle_nn::layer_norm(hidden, eps, layer.pp("output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            word,
            position,
            token_type,
            norm,
            layers,
            heads,
        })
    }

    /// Hidden states `(batch, tokens, hidden)` of token ids `(batch, tokens)`, where `mask`
    /// (same shape, 1 for a token, 0 for padding) keeps attention off the padding.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        self.forward_layers(ids, mask, self.layers.len())
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The hidden states after the first `layers` layers (0: the embeddings), as
    /// [`Bert::forward`] computes them.
    pub fn forward_layers(&self, ids: &Tensor, mask: &Tensor, layers: usize) -> Result<Tensor> {
        let (batch, tokens) = ids.dims2()?;
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let types = Tensor::zeros(1, candle_core::DType::U32, ids.device())?;
        let mut x = self
            .word
            .forward(ids)?
            .broadcast_add(&self.position.forward(&positions)?)?
            .broadcast_add(&self.token_type.forward(&types)?)?;
        x = self.norm.forward(&x)?;
        // 0 where a token is, a large negative number where padding is: softmax then
        // gives padding no weight.
        let bias = ((mask.to_dtype(x.dtype())? - 1.0)? * 1e4)?.reshape((batch, 1, 1, tokens))?;
        for layer in self.layers.iter().take(layers) {
            x = layer.forward(&x, &bias, self.heads)?;
        }
        Ok(x)
    }
}

impl Layer {
    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let head = hidden / heads;
        let qkv = self.qkv.forward(x)?;
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(D::Minus1, i * hidden, hidden)?
                .reshape((batch, tokens, heads, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?.broadcast_add(bias)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, tokens, hidden))?;
        let x = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = gelu(&self.intermediate.forward(&x)?)?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + x)?)
    }
}

/// GELU with the exact (erf) form BERT was trained with: the closed form below on CPU,
/// candle's own elsewhere.
fn gelu(x: &Tensor) -> Result<Tensor> {
    match x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        true => x.apply_op1_no_bwd(&GeluErf),
        false => x.gelu_erf(),
    }
}

struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let values = storage.as_slice::<f32>()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gelu-erf: the input is not contiguous");
        };
        let mut out = vec![0f32; end - start];
        out.par_chunks_mut(CHUNK)
            .zip(values[start..end].par_chunks(CHUNK))
            .for_each(|(out, values)| {
                for (o, &v) in out.iter_mut().zip(values) {
                    *o = gelu_erf(v);
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Values per parallel task: enough to outweigh the task's cost.
const CHUNK: usize = 1 << 14;

/// `0.5 x (1 + erf(x / sqrt 2))`.
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7, float precision),
/// evaluated in f32: one exponential, no branches beyond the sign.
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_8,
        -1.453_152,
        1.061_405_4,
    ];
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    (1.0 - poly * (-a * a).exp()).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_transformers::models::bert::BertModel;

    /// The real all-MiniLM-L6-v2 (`make models`) through this forward pass and through
    /// candle-transformers' `BertModel`: the same hidden states on real tokens, padding
    /// included in the batch.
    #[test]
    fn agrees_with_candles_bert_on_minilm() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        let config: Config =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        // SAFETY: the weights file is mapped read-only and not modified during the test.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &Device::Cpu,
            )
        }
        .unwrap_or_else(|e| panic!("{e} (run `make models`)"));
        let ours = Bert::load(vb.clone(), &config).unwrap();
        let theirs = BertModel::load(vb, &config).unwrap();
        let ids = Tensor::new(
            &[
                [101u32, 1037, 2158, 5559, 1037, 3586, 102],
                [101, 2048, 6077, 102, 0, 0, 0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::new(
            &[[1u32, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0, 0]],
            &Device::Cpu,
        )
        .unwrap();
        let a = ours.forward(&ids, &mask).unwrap();
        let b = theirs
            .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
            .unwrap();
        for (row, real) in [(0usize, 7usize), (1, 4)] {
            let diff = (a.get(row).unwrap().narrow(0, 0, real).unwrap()
                - b.get(row).unwrap().narrow(0, 0, real).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
            assert!(diff < 1e-4, "row {row}: largest difference {diff}");
        }
    }

    #[test]
    fn the_closed_form_gelu_matches_candles_exact_one() {
        let values: Vec<f32> = (-4000..=4000).map(|i| i as f32 / 400.0).collect();
        let x = Tensor::from_vec(values, 8001, &candle_core::Device::Cpu).unwrap();
        let ours: Vec<f32> = gelu(&x).unwrap().to_vec1().unwrap();
        let exact: Vec<f32> = x.gelu_erf().unwrap().to_vec1().unwrap();
        let worst = ours
            .iter()
            .zip(&exact)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 2e-6, "largest difference {worst}");
    }
}
