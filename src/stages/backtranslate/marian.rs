//! Marian NMT backend: opus-mt style encoder-decoder models run with candle, one model
//! per direction (`en -> pivot` and `pivot -> en`).
//!
//! # Model folder
//!
//! ```text
//! opus-mt-en-de/
//!   config.json            Hugging Face MarianConfig (the fields candle's marian::Config reads)
//!   model.safetensors      weights under the Hugging Face / candle names: final_logits_bias,
//!                          model.shared.weight, model.encoder.layers.0.self_attn.q_proj.weight, ...
//!   source.tokenizer.json  tokenizers-crate JSON of the source-language SentencePiece model
//!   target.tokenizer.json  the same for the target language
//! ```
//!
//! `config.json` keys that old opus-mt configs lack and that change nothing here
//! (`forced_eos_token_id`, `share_encoder_decoder_embeddings`, `use_cache`,
//! `is_encoder_decoder`) get Hugging Face's defaults. Token ids in both tokenizers must be
//! the model's ids (Marian maps SentencePiece pieces through its own `vocab.json`).
//!
//! # Converting an opus-mt checkpoint
//!
//! ```text
//! pip install torch transformers sentencepiece protobuf safetensors
//! python - <<'EOF'
//! from transformers import MarianMTModel
//! from safetensors.torch import save_file
//! name, out = "Helsinki-NLP/opus-mt-en-de", "models/opus-mt-en-de"
//! model = MarianMTModel.from_pretrained(name)
//! model.config.to_json_file(f"{out}/config.json")
//! # clone() unties the shared embeddings, which save_file refuses to write.
//! save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
//!           f"{out}/model.safetensors")
//! EOF
//! ```
//!
//! The tokenizers come from candle's
//! `candle-examples/examples/marian-mt/python/convert_slow_tokenizer.py`: its
//! `MarianConverter(tokenizer, index=0)` is the source side, `index=1` the target side;
//! save them as `source.tokenizer.json` and `target.tokenizer.json`. Whether the source
//! tokenizer appends `</s>` does not matter: it is added when missing.
//!
//! # Why not `candle_transformers::models::marian::MTModel`
//!
//! The forward pass is written out here over the same tensor names, because `MTModel`
//! takes no padding mask (a batch's padding would change its results), cannot reorder
//! its kv cache (beam search), and its encoder layers keep a kv cache across calls
//! (each `encoder().forward` must be preceded by `reset_kv_cache`). A test checks this
//! implementation's logits against `MTModel`'s on the same weights.
//!
//! # Decoding
//!
//! Inputs are sorted by token length and cut into batches of `batch_size`; the source is
//! right-padded and masked, so a text's translation never depends on its batch. Like
//! Hugging Face's `generate` for Marian (`bad_words_ids = [[pad]]`), the pad token is
//! never produced. Sampling draws from a ChaCha8 generator seeded by SHA-256 of the seed
//! and the text, so it is reproducible and independent of batching.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Activation, LayerNorm, Linear};
use candle_transformers::models::marian::Config;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::Translator;
use crate::core::error::{Error, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const SOURCE_TOKENIZER_FILE: &str = "source.tokenizer.json";
pub const TARGET_TOKENIZER_FILE: &str = "target.tokenizer.json";

/// Hugging Face's `layer_norm_eps` for Marian (not in its config).
const LAYER_NORM_EPS: f64 = 1e-5;

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decoding {
    #[default]
    Greedy,
    /// Per-input beam search, scores normalised by length, Hugging Face's stopping rule.
    Beam { beams: usize },
    /// Ancestral sampling with temperature and nucleus (top-p) truncation.
    Sample { temperature: f64, top_p: f64 },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MarianOptions {
    pub decoding: Decoding,
    /// Generated tokens per text, `</s>` included; also capped by the model's positions.
    pub max_new_tokens: usize,
    /// Texts per forward pass; changes speed, never outputs.
    pub batch_size: usize,
    /// Only used by `Sample`.
    pub seed: u64,
}

impl Default for MarianOptions {
    fn default() -> Self {
        MarianOptions {
            decoding: Decoding::Greedy,
            max_new_tokens: 128,
            batch_size: 16,
            seed: 0,
        }
    }
}

impl MarianOptions {
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_new_tokens == 0 {
            return Err("max_new_tokens must be at least 1".into());
        }
        if self.batch_size == 0 {
            return Err("batch_size must be at least 1".into());
        }
        match self.decoding {
            Decoding::Greedy => Ok(()),
            Decoding::Beam { beams: 0 } => Err("beams must be at least 1".into()),
            Decoding::Beam { .. } => Ok(()),
            Decoding::Sample { temperature, .. }
                if !(temperature.is_finite() && temperature > 0.0) =>
            {
                Err(format!(
                    "temperature must be a positive number, got {temperature}"
                ))
            }
            Decoding::Sample { top_p, .. } if !(top_p > 0.0 && top_p <= 1.0) => {
                Err(format!("top_p must be in (0, 1], got {top_p}"))
            }
            Decoding::Sample { .. } => Ok(()),
        }
    }

    /// The part of the translator id that names everything changing outputs
    /// (`batch_size` does not).
    fn label(&self) -> String {
        let decoding = match &self.decoding {
            Decoding::Greedy => "greedy".to_string(),
            Decoding::Beam { beams } => format!("beam{beams}"),
            Decoding::Sample { temperature, top_p } => {
                format!("sample-t{temperature}-p{top_p}-seed{}", self.seed)
            }
        };
        format!("{decoding}/max{}", self.max_new_tokens)
    }
}

/// A loaded Marian model with its tokenizers, one per direction. Clones share the weights
/// (candle tensors are reference-counted), so each worker thread can take a cheap clone.
#[derive(Clone)]
pub struct Marian {
    id: String,
    model: Model,
    source: Tokenizer,
    target: Tokenizer,
    options: MarianOptions,
}

impl std::fmt::Debug for Marian {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marian")
            .field("id", &self.id)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Marian {
    /// Loads a model folder laid out as described in the module documentation.
    pub fn load(dir: &Path, options: &MarianOptions) -> Result<Marian> {
        // `.` or `..` have no file name of their own; the id needs the real one.
        let name = std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Marian::load_named(dir, &name, options)
    }

    /// Downloads `config.json`, `model.safetensors`, `source.tokenizer.json` and
    /// `target.tokenizer.json` from a hub repository laid out like a model folder (the
    /// original Helsinki-NLP repositories are not: convert them first), then loads them.
    #[cfg(feature = "hub")]
    pub fn from_hub(repo: &str, options: &MarianOptions) -> Result<Marian> {
        let api = hf_hub::api::sync::Api::new().map_err(|e| Error::model(repo, e))?;
        let api = api.model(repo.to_string());
        let mut dir = PathBuf::new();
        for file in [
            CONFIG_FILE,
            WEIGHTS_FILE,
            SOURCE_TOKENIZER_FILE,
            TARGET_TOKENIZER_FILE,
        ] {
            let path = api
                .get(file)
                .map_err(|e| Error::model(format!("{repo}/{file}"), format!("download: {e}")))?;
            // hf-hub puts all files of one revision into one snapshot folder.
            dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        }
        Marian::load_named(&dir, repo, options)
    }

    fn load_named(dir: &Path, name: &str, options: &MarianOptions) -> Result<Marian> {
        options
            .validate()
            .map_err(|m| Error::model(dir, format!("invalid Marian options: {m}")))?;
        let config_path = dir.join(CONFIG_FILE);
        let config_bytes = std::fs::read(&config_path)
            .map_err(|e| Error::model(&config_path, format!("cannot read: {e}")))?;
        let config = parse_config(&config_path, &config_bytes)?;
        let source_path = dir.join(SOURCE_TOKENIZER_FILE);
        let target_path = dir.join(TARGET_TOKENIZER_FILE);
        let source = read_tokenizer(&source_path, config.vocab_size)?;
        let target = read_tokenizer(&target_path, target_vocab(&config))?;
        let weights_path = dir.join(WEIGHTS_FILE);
        let device = device().map_err(|e| Error::model(dir, e))?;
        let weights = Weights::load(&weights_path, &device)?;
        let model = Model::load(&config, &weights, &device)?;

        // Cheap fingerprint: the config bytes and the sizes of the big files.
        let mut hash = Sha256::new();
        hash.update(&config_bytes);
        for path in [&weights_path, &source_path, &target_path] {
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            hash.update(len.to_le_bytes());
        }
        let short: String = hash.finalize()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = format!("marian/{name}@{short}/{}", options.label());
        Ok(Marian {
            id,
            model,
            source,
            target,
            options: options.clone(),
        })
    }

    /// Source token ids of one text, ending in exactly one `</s>`, cut to the model's
    /// positions.
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let eos = self.model.eos;
        let mut ids = self
            .source
            .encode(text, true)
            .map_err(|e| Error::translate(&self.id, format!("tokenizing {text:?}: {e}")))?
            .get_ids()
            .to_vec();
        if ids.last() != Some(&eos) {
            ids.push(eos);
        }
        if ids.len() > self.model.max_positions {
            ids.truncate(self.model.max_positions - 1);
            ids.push(eos);
        }
        Ok(ids)
    }

    fn detokenize(&self, ids: &[u32]) -> Result<String> {
        let m = &self.model;
        let ids: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&t| t != m.eos && t != m.pad && t != m.start)
            .collect();
        let text = self
            .target
            .decode(&ids, true)
            .map_err(|e| Error::translate(&self.id, format!("detokenizing: {e}")))?;
        Ok(text.trim().to_string())
    }

    /// Translates one padded batch; returns generated ids without `</s>`, in batch order.
    fn run_batch(&self, sources: &[&[u32]], texts: &[&str]) -> candle_core::Result<Vec<Vec<u32>>> {
        let m = &self.model;
        let width = sources.iter().map(|s| s.len()).max().unwrap_or(1);
        let mut ids = Vec::with_capacity(sources.len() * width);
        let mut mask = Vec::with_capacity(sources.len() * width);
        for source in sources {
            ids.extend_from_slice(source);
            ids.resize(ids.len() + width - source.len(), m.pad);
            mask.extend(std::iter::repeat_n(0f32, source.len()));
            mask.extend(std::iter::repeat_n(f32::NEG_INFINITY, width - source.len()));
        }
        let ids = Tensor::from_vec(ids, (sources.len(), width), &m.device)?;
        let mask = Tensor::from_vec(mask, (sources.len(), 1, 1, width), &m.device)?;
        let encoded = m.encode(&ids, &mask)?;
        let state = m.start(&encoded, mask)?;
        let steps = self.options.max_new_tokens.min(m.max_positions);
        match self.options.decoding {
            Decoding::Greedy => m.decode_simple(state, sources.len(), steps, None),
            Decoding::Sample { temperature, top_p } => {
                let rngs = texts
                    .iter()
                    .map(|t| sample_rng(self.options.seed, t))
                    .collect();
                m.decode_simple(
                    state,
                    sources.len(),
                    steps,
                    Some(Sampler {
                        rngs,
                        temperature,
                        top_p,
                    }),
                )
            }
            Decoding::Beam { beams } => m.decode_beam(state, sources.len(), steps, beams),
        }
    }
}

impl Translator for Marian {
    fn id(&self) -> &str {
        &self.id
    }

    fn translate(&mut self, texts: &[&str]) -> Result<Vec<String>> {
        let mut out = vec![String::new(); texts.len()];
        let mut jobs = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            if !text.trim().is_empty() {
                jobs.push((i, self.encode(text)?));
            }
        }
        // Similar lengths share a batch, so little compute goes into padding.
        jobs.sort_by_key(|(i, ids)| (ids.len(), *i));
        for batch in jobs.chunks(self.options.batch_size) {
            let sources: Vec<&[u32]> = batch.iter().map(|(_, ids)| ids.as_slice()).collect();
            let batch_texts: Vec<&str> = batch.iter().map(|(i, _)| texts[*i]).collect();
            let generated = self
                .run_batch(&sources, &batch_texts)
                .map_err(|e| Error::translate(&self.id, e))?;
            for ((i, _), ids) in batch.iter().zip(generated) {
                out[*i] = self.detokenize(&ids)?;
            }
        }
        Ok(out)
    }
}

#[cfg(feature = "cuda")]
fn device() -> candle_core::Result<Device> {
    Device::cuda_if_available(0)
}

#[cfg(not(feature = "cuda"))]
fn device() -> candle_core::Result<Device> {
    Ok(Device::Cpu)
}

fn target_vocab(config: &Config) -> usize {
    config.decoder_vocab_size.unwrap_or(config.vocab_size)
}

fn parse_config(path: &Path, bytes: &[u8]) -> Result<Config> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::model(path, format!("invalid JSON: {e}")))?;
    if let Some(obj) = value.as_object_mut() {
        let eos = obj.get("eos_token_id").cloned().unwrap_or(0.into());
        obj.entry("forced_eos_token_id").or_insert(eos);
        obj.entry("share_encoder_decoder_embeddings")
            .or_insert(true.into());
        obj.entry("use_cache").or_insert(true.into());
        obj.entry("is_encoder_decoder").or_insert(true.into());
    }
    let config: Config = serde_json::from_value(value)
        .map_err(|e| Error::model(path, format!("not a Marian config: {e}")))?;
    let bad = |m: String| Err(Error::model(path, m));
    let d = config.d_model;
    for heads in [
        config.encoder_attention_heads,
        config.decoder_attention_heads,
    ] {
        if heads == 0 || !d.is_multiple_of(heads) {
            return bad(format!(
                "d_model {d} is not a multiple of {heads} attention heads"
            ));
        }
    }
    if !d.is_multiple_of(2) {
        return bad(format!("d_model {d} must be even (sinusoidal positions)"));
    }
    let vocab = config.vocab_size;
    let target = target_vocab(&config);
    if config.share_encoder_decoder_embeddings && target != vocab {
        return bad(format!(
            "shared embeddings need decoder_vocab_size ({target}) == vocab_size ({vocab})"
        ));
    }
    for (what, id, limit) in [
        ("pad_token_id", config.pad_token_id, vocab.min(target)),
        ("eos_token_id", config.eos_token_id, vocab.min(target)),
        (
            "decoder_start_token_id",
            config.decoder_start_token_id,
            target,
        ),
    ] {
        if id as usize >= limit {
            return bad(format!("{what} {id} is outside the vocabulary of {limit}"));
        }
    }
    if config.max_position_embeddings < 2 {
        return bad("max_position_embeddings must be at least 2".into());
    }
    Ok(config)
}

fn read_tokenizer(path: &Path, vocab: usize) -> Result<Tokenizer> {
    if !path.is_file() {
        return Err(Error::model(path, "missing tokenizer file"));
    }
    let tokenizer = Tokenizer::from_file(path)
        .map_err(|e| Error::model(path, format!("not a tokenizers JSON file: {e}")))?;
    let size = tokenizer.get_vocab_size(true);
    if size > vocab {
        return Err(Error::model(
            path,
            format!("tokenizer has {size} tokens but the model's vocabulary is {vocab}"),
        ));
    }
    Ok(tokenizer)
}

/// The safetensors file, checked tensor by tensor against the shapes the config implies.
struct Weights {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    fn load(path: &Path, device: &Device) -> Result<Weights> {
        if !path.is_file() {
            return Err(Error::model(path, "missing weights file"));
        }
        let tensors = candle_core::safetensors::load(path, device)
            .map_err(|e| Error::model(path, format!("not a readable safetensors file: {e}")))?;
        Ok(Weights {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// The first of `names` present (checkpoints keep tied embeddings under any of their
    /// names), as f32.
    fn first(&self, names: &[&str], shape: &[usize]) -> Result<Tensor> {
        let Some((name, tensor)) = names
            .iter()
            .find_map(|n| self.tensors.get(*n).map(|t| (n, t)))
        else {
            return Err(Error::model(
                &self.path,
                format!("missing tensor `{}`", names.join("` or `")),
            ));
        };
        if tensor.dims() != shape {
            return Err(Error::model(
                &self.path,
                format!(
                    "tensor `{name}` has shape {:?} but {CONFIG_FILE} implies {shape:?}",
                    tensor.dims()
                ),
            ));
        }
        tensor
            .to_dtype(DType::F32)
            .map_err(|e| Error::model(&self.path, format!("tensor `{name}`: {e}")))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.first(&[name], shape)
    }

    fn linear(&self, prefix: &str, input: usize, output: usize) -> Result<Linear> {
        let weight = self.get(&format!("{prefix}.weight"), &[output, input])?;
        let bias = self.get(&format!("{prefix}.bias"), &[output])?;
        Ok(Linear::new(weight, Some(bias)))
    }

    fn layer_norm(&self, prefix: &str, d: usize) -> Result<LayerNorm> {
        let weight = self.get(&format!("{prefix}.weight"), &[d])?;
        let bias = self.get(&format!("{prefix}.bias"), &[d])?;
        Ok(LayerNorm::new(weight, bias, LAYER_NORM_EPS))
    }
}

#[derive(Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
    scaling: f64,
}

impl Attention {
    fn load(w: &Weights, prefix: &str, d: usize, heads: usize) -> Result<Attention> {
        let head_dim = d / heads;
        Ok(Attention {
            q: w.linear(&format!("{prefix}.q_proj"), d, d)?,
            k: w.linear(&format!("{prefix}.k_proj"), d, d)?,
            v: w.linear(&format!("{prefix}.v_proj"), d, d)?,
            out: w.linear(&format!("{prefix}.out_proj"), d, d)?,
            heads,
            head_dim,
            scaling: (head_dim as f64).powf(-0.5),
        })
    }

    /// (batch, len, d) -> (batch, heads, len, head_dim)
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        x.reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    fn keys_values(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((
            self.split_heads(&x.apply(&self.k)?)?,
            self.split_heads(&x.apply(&self.v)?)?,
        ))
    }

    /// `mask` is additive (0 or -inf) and broadcasts to (batch, heads, len, keys).
    fn attend(
        &self,
        x: &Tensor,
        keys: &Tensor,
        values: &Tensor,
        mask: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let q = self.split_heads(&(x.apply(&self.q)? * self.scaling)?)?;
        let scores = q.matmul(&keys.t()?)?;
        let scores = match mask {
            Some(mask) => scores.broadcast_add(mask)?,
            None => scores,
        };
        candle_nn::ops::softmax_last_dim(&scores)?
            .matmul(values)?
            .transpose(1, 2)?
            .reshape((b, t, d))?
            .apply(&self.out)
    }
}

#[derive(Clone)]
struct FeedForward {
    fc1: Linear,
    fc2: Linear,
    activation: Activation,
    norm: LayerNorm,
}

impl FeedForward {
    fn load(w: &Weights, prefix: &str, config: &Config, ffn: usize) -> Result<FeedForward> {
        let d = config.d_model;
        Ok(FeedForward {
            fc1: w.linear(&format!("{prefix}.fc1"), d, ffn)?,
            fc2: w.linear(&format!("{prefix}.fc2"), ffn, d)?,
            activation: config.activation_function,
            norm: w.layer_norm(&format!("{prefix}.final_layer_norm"), d)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = x
            .apply(&self.fc1)?
            .apply(&self.activation)?
            .apply(&self.fc2)?;
        (h + x)?.apply(&self.norm)
    }
}

#[derive(Clone)]
struct EncoderLayer {
    attn: Attention,
    attn_norm: LayerNorm,
    ffn: FeedForward,
}

#[derive(Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_norm: LayerNorm,
    cross_attn: Attention,
    cross_norm: LayerNorm,
    ffn: FeedForward,
}

impl DecoderLayer {
    /// One token per row; appends its keys and values to `cache`.
    fn step(
        &self,
        x: &Tensor,
        cache: &mut Option<(Tensor, Tensor)>,
        cross: &(Tensor, Tensor),
        cross_mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let (k, v) = self.self_attn.keys_values(x)?;
        let (k, v) = match cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        // A single new token may see every earlier one: no causal mask needed.
        let h = self.self_attn.attend(x, &k, &v, None)?;
        *cache = Some((k, v));
        let x = (h + x)?.apply(&self.self_norm)?;
        let h = self
            .cross_attn
            .attend(&x, &cross.0, &cross.1, Some(cross_mask))?;
        let x = (h + x)?.apply(&self.cross_norm)?;
        self.ffn.forward(&x)
    }
}

/// Decoder state of one batch, one row per live hypothesis.
struct DecoderState {
    self_kv: Vec<Option<(Tensor, Tensor)>>,
    /// Encoder keys and values per layer, computed once per batch.
    cross_kv: Vec<(Tensor, Tensor)>,
    cross_mask: Tensor,
    /// Tokens fed so far (the next position).
    len: usize,
}

impl DecoderState {
    /// Keeps, reorders or duplicates rows: row i becomes old row `rows[i]`.
    fn select(&mut self, rows: &[u32]) -> candle_core::Result<()> {
        let idx = Tensor::new(rows, self.cross_mask.device())?;
        let pick = |t: &Tensor| t.index_select(&idx, 0);
        for (k, v) in self.self_kv.iter_mut().flatten() {
            (*k, *v) = (pick(k)?, pick(v)?);
        }
        for (k, v) in &mut self.cross_kv {
            (*k, *v) = (pick(k)?, pick(v)?);
        }
        self.cross_mask = pick(&self.cross_mask)?;
        Ok(())
    }
}

struct Sampler {
    rngs: Vec<ChaCha8Rng>,
    temperature: f64,
    top_p: f64,
}

#[derive(Clone)]
struct Model {
    encoder_embed: Tensor,
    decoder_embed: Tensor,
    lm_head: Linear,
    /// Includes -inf for the pad token, which is never generated.
    final_logits_bias: Tensor,
    /// (max_positions, d): sines in the first half, cosines in the second, as Marian.
    positions: Tensor,
    embed_scale: f64,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    pad: u32,
    eos: u32,
    start: u32,
    max_positions: usize,
    device: Device,
}

impl Model {
    fn load(config: &Config, w: &Weights, device: &Device) -> Result<Model> {
        let d = config.d_model;
        let vocab = config.vocab_size;
        let target = target_vocab(config);
        let (encoder_embed, decoder_embed, lm_head) = if config.share_encoder_decoder_embeddings {
            let shared = w.first(
                &[
                    "model.shared.weight",
                    "model.encoder.embed_tokens.weight",
                    "model.decoder.embed_tokens.weight",
                    "lm_head.weight",
                ],
                &[vocab, d],
            )?;
            (shared.clone(), shared.clone(), shared)
        } else {
            let encoder = w.first(
                &["model.encoder.embed_tokens.weight", "model.shared.weight"],
                &[vocab, d],
            )?;
            let decoder = w.get("model.decoder.embed_tokens.weight", &[target, d])?;
            let lm_head = w.first(
                &["lm_head.weight", "model.decoder.embed_tokens.weight"],
                &[target, d],
            )?;
            (encoder, decoder, lm_head)
        };
        let mut bias: Vec<f32> = w
            .get("final_logits_bias", &[1, target])?
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| Error::model(&w.path, e))?;
        if config.pad_token_id != config.eos_token_id {
            bias[config.pad_token_id as usize] = f32::NEG_INFINITY;
        }
        let tensor_err = |e: candle_core::Error| Error::model(&w.path, e);
        let final_logits_bias = Tensor::from_vec(bias, (1, target), device).map_err(tensor_err)?;
        let positions = sinusoids(config.max_position_embeddings, d, device).map_err(tensor_err)?;

        let mut encoder = Vec::with_capacity(config.encoder_layers);
        for i in 0..config.encoder_layers {
            let p = format!("model.encoder.layers.{i}");
            encoder.push(EncoderLayer {
                attn: Attention::load(
                    w,
                    &format!("{p}.self_attn"),
                    d,
                    config.encoder_attention_heads,
                )?,
                attn_norm: w.layer_norm(&format!("{p}.self_attn_layer_norm"), d)?,
                ffn: FeedForward::load(w, &p, config, config.encoder_ffn_dim)?,
            });
        }
        let mut decoder = Vec::with_capacity(config.decoder_layers);
        for i in 0..config.decoder_layers {
            let p = format!("model.decoder.layers.{i}");
            let heads = config.decoder_attention_heads;
            decoder.push(DecoderLayer {
                self_attn: Attention::load(w, &format!("{p}.self_attn"), d, heads)?,
                self_norm: w.layer_norm(&format!("{p}.self_attn_layer_norm"), d)?,
                cross_attn: Attention::load(w, &format!("{p}.encoder_attn"), d, heads)?,
                cross_norm: w.layer_norm(&format!("{p}.encoder_attn_layer_norm"), d)?,
                ffn: FeedForward::load(w, &p, config, config.decoder_ffn_dim)?,
            });
        }
        Ok(Model {
            encoder_embed,
            decoder_embed,
            lm_head: Linear::new(lm_head, None),
            final_logits_bias,
            positions,
            embed_scale: if config.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
            encoder,
            decoder,
            pad: config.pad_token_id,
            eos: config.eos_token_id,
            start: config.decoder_start_token_id,
            max_positions: config.max_position_embeddings,
            device: device.clone(),
        })
    }

    /// Token embeddings, scaled, plus positions `offset..`.
    fn embed(&self, table: &Tensor, ids: &Tensor, offset: usize) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let x = table
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, ()))?;
        (x * self.embed_scale)?.broadcast_add(&self.positions.narrow(0, offset, t)?)
    }

    /// `ids`: (batch, len), right-padded; `mask`: (batch, 1, 1, len), -inf at padding.
    fn encode(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = self.embed(&self.encoder_embed, ids, 0)?;
        for layer in &self.encoder {
            let (k, v) = layer.attn.keys_values(&x)?;
            let h = layer.attn.attend(&x, &k, &v, Some(mask))?;
            x = (h + &x)?.apply(&layer.attn_norm)?;
            x = layer.ffn.forward(&x)?;
        }
        Ok(x)
    }

    fn start(&self, encoded: &Tensor, mask: Tensor) -> candle_core::Result<DecoderState> {
        let cross_kv = self
            .decoder
            .iter()
            .map(|l| l.cross_attn.keys_values(encoded))
            .collect::<candle_core::Result<_>>()?;
        Ok(DecoderState {
            self_kv: vec![None; self.decoder.len()],
            cross_kv,
            cross_mask: mask,
            len: 0,
        })
    }

    /// Feeds one token per row; returns logits (rows, target vocab).
    fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> candle_core::Result<Tensor> {
        let ids = Tensor::new(tokens, &self.device)?.unsqueeze(1)?;
        let mut x = self.embed(&self.decoder_embed, &ids, state.len)?;
        let layers = self
            .decoder
            .iter()
            .zip(&mut state.self_kv)
            .zip(&state.cross_kv);
        for ((layer, cache), cross) in layers {
            x = layer.step(&x, cache, cross, &state.cross_mask)?;
        }
        state.len += 1;
        x.squeeze(1)?
            .apply(&self.lm_head)?
            .broadcast_add(&self.final_logits_bias)
    }

    /// Greedy decoding, or sampling when `sampler` is set; finished rows leave the batch.
    fn decode_simple(
        &self,
        mut state: DecoderState,
        n: usize,
        steps: usize,
        mut sampler: Option<Sampler>,
    ) -> candle_core::Result<Vec<Vec<u32>>> {
        let mut out = vec![Vec::new(); n];
        let mut rows: Vec<usize> = (0..n).collect();
        let mut tokens = vec![self.start; n];
        for step in 0..steps {
            let logits = self.step(&mut state, &tokens)?;
            let next: Vec<u32> = match &mut sampler {
                None => logits.argmax(D::Minus1)?.to_vec1()?,
                Some(s) => logits
                    .to_vec2::<f32>()?
                    .iter()
                    .zip(&rows)
                    .map(|(l, &r)| sample(l, s.temperature, s.top_p, &mut s.rngs[r], self.eos))
                    .collect(),
            };
            let mut keep = Vec::with_capacity(rows.len());
            for (i, (&row, &token)) in rows.iter().zip(&next).enumerate() {
                if token != self.eos {
                    out[row].push(token);
                    keep.push(i);
                }
            }
            if keep.is_empty() || step + 1 == steps {
                break;
            }
            if keep.len() < rows.len() {
                let picked: Vec<u32> = keep.iter().map(|&i| i as u32).collect();
                state.select(&picked)?;
                rows = keep.iter().map(|&i| rows[i]).collect();
            }
            tokens = keep.iter().map(|&i| next[i]).collect();
        }
        Ok(out)
    }

    /// Beam search per input; all live hypotheses of all inputs share the forward pass.
    fn decode_beam(
        &self,
        mut state: DecoderState,
        n: usize,
        steps: usize,
        beams: usize,
    ) -> candle_core::Result<Vec<Vec<u32>>> {
        let mut searches: Vec<Search> = (0..n).map(|_| Search::new()).collect();
        for step in 0..steps {
            let tokens: Vec<u32> = searches
                .iter()
                .filter(|s| !s.done)
                .flat_map(|s| s.live.iter())
                .map(|h| h.tokens.last().copied().unwrap_or(self.start))
                .collect();
            let logits = self.step(&mut state, &tokens)?;
            let log_probs = candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec2::<f32>()?;
            let len = (step + 1) as f64;
            let last = step + 1 == steps;
            let mut parents = Vec::new();
            let mut row = 0;
            for search in searches.iter_mut().filter(|s| !s.done) {
                let live = search.live.len();
                let next = search.advance(&log_probs[row..row + live], row, beams, len, self.eos);
                row += live;
                // Hugging Face's rule (early_stopping=False): stop once `beams` hypotheses
                // are finished and the best live one, at its current length, is no better.
                let best_live = next.first().map(|(h, _)| h.score / len);
                search.done = next.is_empty()
                    || (search.finished.len() >= beams
                        && best_live.is_none_or(|b| search.worst_finished() >= b));
                if last && !search.done {
                    for (h, _) in next {
                        search.finish(h.score / len, h.tokens, beams);
                    }
                    search.done = true;
                } else if !search.done {
                    parents.extend(next.iter().map(|(_, parent)| *parent as u32));
                    search.live = next.into_iter().map(|(h, _)| h).collect();
                }
            }
            if parents.is_empty() {
                break;
            }
            state.select(&parents)?;
        }
        Ok(searches
            .into_iter()
            .map(|s| {
                s.finished
                    .into_iter()
                    .next()
                    .map(|f| f.1)
                    .unwrap_or_default()
            })
            .collect())
    }
}

struct Hypothesis {
    tokens: Vec<u32>,
    /// Sum of log-probabilities.
    score: f64,
}

struct Search {
    live: Vec<Hypothesis>,
    /// Best `beams` finished hypotheses, best first: (length-normalised score, tokens).
    finished: Vec<(f64, Vec<u32>)>,
    done: bool,
}

impl Search {
    fn new() -> Search {
        Search {
            live: vec![Hypothesis {
                tokens: Vec::new(),
                score: 0.0,
            }],
            finished: Vec::new(),
            done: false,
        }
    }

    fn worst_finished(&self) -> f64 {
        self.finished.last().map_or(f64::NEG_INFINITY, |f| f.0)
    }

    fn finish(&mut self, score: f64, tokens: Vec<u32>, beams: usize) {
        // After equal scores, so earlier hypotheses win ties.
        let at = self.finished.partition_point(|f| f.0 >= score);
        self.finished.insert(at, (score, tokens));
        self.finished.truncate(beams);
    }

    /// One step: the `2 * beams` best continuations; `</s>` among the first `beams`
    /// finishes a hypothesis, the others fill the next live beams. Returns them with
    /// their parent's row in the batch.
    fn advance(
        &mut self,
        log_probs: &[Vec<f32>],
        first_row: usize,
        beams: usize,
        len: f64,
        eos: u32,
    ) -> Vec<(Hypothesis, usize)> {
        let mut candidates: Vec<(f64, usize, u32)> = Vec::new();
        for (b, (h, lp)) in self.live.iter().zip(log_probs).enumerate() {
            for (token, p) in top_k(lp, 2 * beams) {
                let score = h.score + f64::from(p);
                if score.is_finite() {
                    candidates.push((score, b, token));
                }
            }
        }
        candidates.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)).then(x.2.cmp(&y.2)));
        candidates.truncate(2 * beams);
        let mut next = Vec::with_capacity(beams);
        for (rank, (score, b, token)) in candidates.into_iter().enumerate() {
            if token == eos {
                if rank < beams {
                    let tokens = self.live[b].tokens.clone();
                    self.finish(score / len, tokens, beams);
                }
            } else {
                let mut tokens = self.live[b].tokens.clone();
                tokens.push(token);
                next.push((Hypothesis { tokens, score }, first_row + b));
                if next.len() == beams {
                    break;
                }
            }
        }
        next
    }
}

/// The `k` largest entries, largest first, ties by lower id.
fn top_k(row: &[f32], k: usize) -> Vec<(u32, f32)> {
    let order = |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
    let mut ids: Vec<u32> = (0..row.len() as u32).collect();
    if k == 0 {
        return Vec::new();
    }
    if k < ids.len() {
        ids.select_nth_unstable_by(k - 1, order);
        ids.truncate(k);
    }
    ids.sort_unstable_by(order);
    ids.into_iter().map(|i| (i, row[i as usize])).collect()
}

/// A generator per text, so samples depend on the seed and the text, not on batching.
fn sample_rng(seed: u64, text: &str) -> ChaCha8Rng {
    let mut hash = Sha256::new();
    hash.update(seed.to_le_bytes());
    hash.update(text.as_bytes());
    ChaCha8Rng::from_seed(hash.finalize().into())
}

/// Samples a token from `softmax(logits / temperature)` truncated to the smallest set of
/// most probable tokens whose mass reaches `top_p`.
fn sample(logits: &[f32], temperature: f64, top_p: f64, rng: &mut ChaCha8Rng, eos: u32) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_finite())
        .map(|(i, &l)| {
            (
                i as u32,
                ((f64::from(l) - f64::from(max)) / temperature).exp(),
            )
        })
        .filter(|(_, p)| *p > 0.0)
        .collect();
    // Most probable first, ties by id, so the order never depends on the sort algorithm.
    let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let total: f64 = probs.iter().map(|p| p.1).sum();
    // Sort only as long a head as the nucleus needs (trained models are peaked); the
    // head of a partial selection, sorted, is the prefix a full sort would give.
    let mut head = probs.len().min(64);
    let kept = loop {
        if head < probs.len() {
            probs.select_nth_unstable_by(head - 1, order);
        }
        probs[..head].sort_unstable_by(order);
        let mut kept = 0.0;
        let cut = probs[..head].iter().position(|p| {
            kept += p.1;
            kept >= top_p * total
        });
        if let Some(cut) = cut {
            probs.truncate(cut + 1);
            break kept;
        }
        if head == probs.len() {
            break kept;
        }
        head = (head * 4).min(probs.len());
    };
    let mut r = rng.random::<f64>() * kept;
    for &(id, p) in &probs {
        if r < p {
            return id;
        }
        r -= p;
    }
    // Rounding can leave r just above the last mass; all-masked logits end the text.
    probs.last().map_or(eos, |p| p.0)
}

/// Marian's sinusoidal positions, computed as candle (and Hugging Face) do.
fn sinusoids(positions: usize, d: usize, device: &Device) -> candle_core::Result<Tensor> {
    let inv_freq: Vec<f32> = (0..d)
        .step_by(2)
        .map(|i| 1f32 / 10000f32.powf(i as f32 / d as f32))
        .collect();
    let mut table = Vec::with_capacity(positions * d);
    for p in 0..positions {
        let angles = inv_freq.iter().map(|f| p as f32 * f);
        table.extend(angles.clone().map(f32::sin));
        table.extend(angles.map(f32::cos));
    }
    Tensor::from_vec(table, (positions, d), device)
}

/// Writes randomly initialised Marian models with WordLevel tokenizers, for tests and
/// throughput benchmarks (outputs are gibberish; shapes and costs are real).
pub mod testing {
    use super::*;
    use candle_transformers::models::marian::MTModel;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::AddedToken;

    /// d_model 16, 2 heads, 1 + 1 layers, ffn 32; `</s>` = 0, `<unk>` = 1,
    /// `<pad>` = decoder start = `vocab - 1`.
    pub fn tiny_config(vocab: usize) -> Config {
        let pad = vocab.saturating_sub(1) as u32;
        Config {
            vocab_size: vocab,
            decoder_vocab_size: Some(vocab),
            max_position_embeddings: 64,
            encoder_layers: 1,
            encoder_ffn_dim: 32,
            encoder_attention_heads: 2,
            decoder_layers: 1,
            decoder_ffn_dim: 32,
            decoder_attention_heads: 2,
            use_cache: true,
            is_encoder_decoder: true,
            activation_function: Activation::Swish,
            d_model: 16,
            decoder_start_token_id: pad,
            scale_embedding: true,
            pad_token_id: pad,
            eos_token_id: 0,
            forced_eos_token_id: 0,
            share_encoder_decoder_embeddings: true,
        }
    }

    /// The shape of Helsinki-NLP/opus-mt-en-de (about 74M parameters).
    pub fn opus_mt_en_de_config() -> Config {
        Config {
            vocab_size: 58101,
            decoder_vocab_size: Some(58101),
            max_position_embeddings: 512,
            encoder_layers: 6,
            encoder_ffn_dim: 2048,
            encoder_attention_heads: 8,
            decoder_layers: 6,
            decoder_ffn_dim: 2048,
            decoder_attention_heads: 8,
            d_model: 512,
            decoder_start_token_id: 58100,
            pad_token_id: 58100,
            ..tiny_config(58101)
        }
    }

    /// The word the written tokenizers map to token `id` (other than the special ones).
    pub fn word(id: u32) -> String {
        format!("w{id}")
    }

    /// Writes a model folder (see the module documentation) with weights drawn from
    /// `seed`; the tokenizers have `</s>`, `<pad>` and `<unk>` at the config's ids and
    /// `word(id)` everywhere else.
    pub fn write_random_model(dir: &Path, config: &Config, seed: u64) -> Result<()> {
        // candle's own MTModel registers every tensor it reads, so the names and shapes
        // are exactly a real checkpoint's.
        crate::embed::random_weights::write(
            &dir.join(WEIGHTS_FILE),
            seed,
            |vb| MTModel::new(config, vb).map(drop),
            |name| match name {
                _ if name.contains("layer_norm") => Some(f32::from(name.ends_with(".weight"))),
                "final_logits_bias" => Some(0.0),
                _ => None,
            },
        )?;

        let json = serde_json::json!({
            "model_type": "marian",
            "vocab_size": config.vocab_size,
            "decoder_vocab_size": config.decoder_vocab_size,
            "max_position_embeddings": config.max_position_embeddings,
            "encoder_layers": config.encoder_layers,
            "encoder_ffn_dim": config.encoder_ffn_dim,
            "encoder_attention_heads": config.encoder_attention_heads,
            "decoder_layers": config.decoder_layers,
            "decoder_ffn_dim": config.decoder_ffn_dim,
            "decoder_attention_heads": config.decoder_attention_heads,
            "use_cache": config.use_cache,
            "is_encoder_decoder": config.is_encoder_decoder,
            "activation_function": config.activation_function,
            "d_model": config.d_model,
            "decoder_start_token_id": config.decoder_start_token_id,
            "scale_embedding": config.scale_embedding,
            "pad_token_id": config.pad_token_id,
            "eos_token_id": config.eos_token_id,
            "forced_eos_token_id": config.forced_eos_token_id,
            "share_encoder_decoder_embeddings": config.share_encoder_decoder_embeddings,
        });
        let config_path = dir.join(CONFIG_FILE);
        let text =
            serde_json::to_string_pretty(&json).map_err(|e| Error::model(&config_path, e))?;
        std::fs::write(&config_path, text).map_err(|e| Error::io(&config_path, e))?;

        for (file, vocab) in [
            (SOURCE_TOKENIZER_FILE, config.vocab_size),
            (TARGET_TOKENIZER_FILE, target_vocab(config)),
        ] {
            let path = dir.join(file);
            word_level(config, vocab)
                .and_then(|t| t.save(&path, false))
                .map_err(|e| Error::model(&path, e))?;
        }
        Ok(())
    }

    fn word_level(config: &Config, vocab: usize) -> tokenizers::Result<Tokenizer> {
        let (eos, pad) = (config.eos_token_id, config.pad_token_id);
        let unk = (0..vocab as u32).find(|&i| i != eos && i != pad);
        let token = |id: u32| match id {
            _ if id == eos => "</s>".to_string(),
            _ if id == pad => "<pad>".to_string(),
            _ if Some(id) == unk => "<unk>".to_string(),
            _ => word(id),
        };
        let model = WordLevel::builder()
            .vocab((0..vocab as u32).map(|id| (token(id), id)).collect())
            .unk_token("<unk>".into())
            .build()?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer.with_pre_tokenizer(Some(Whitespace));
        tokenizer.add_special_tokens(&[
            AddedToken::from("</s>", true),
            AddedToken::from("<pad>", true),
            AddedToken::from("<unk>", true),
        ]);
        Ok(tokenizer)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{tiny_config, word, write_random_model};
    use super::*;

    const VOCAB: usize = 40;
    const EOS_BIAS: f32 = 3.0;

    fn texts() -> Vec<String> {
        let s = |ids: &[u32]| ids.iter().map(|&i| word(i)).collect::<Vec<_>>().join(" ");
        vec![
            s(&[5, 6, 7]),
            String::new(),
            s(&[9]),
            s(&[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
            "   ".into(),
            format!("{} unknownword {}", s(&[12]), s(&[13])),
            s(&[20, 21, 22, 23]),
            s(&[5, 6, 7]),
            s(&[30, 2, 17, 17, 4, 38]),
        ]
    }

    fn model_dir(seed: u64) -> (tempfile::TempDir, PathBuf) {
        model_dir_with_eos_bias(seed, EOS_BIAS)
    }

    /// A random model rarely emits `</s>`; a bias makes texts end at varied lengths, so
    /// early stopping and shrinking batches are exercised.
    fn model_dir_with_eos_bias(seed: u64, bias: f32) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tiny-en-xx");
        let config = tiny_config(VOCAB);
        write_random_model(&dir, &config, seed).unwrap();
        let path = dir.join(WEIGHTS_FILE);
        let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        let mut logits_bias = vec![0f32; VOCAB];
        logits_bias[config.eos_token_id as usize] = bias;
        let logits_bias = Tensor::from_vec(logits_bias, (1, VOCAB), &Device::Cpu).unwrap();
        tensors.insert("final_logits_bias".into(), logits_bias);
        candle_core::safetensors::save(&tensors, &path).unwrap();
        (tmp, dir)
    }

    fn options(decoding: Decoding, batch_size: usize) -> MarianOptions {
        MarianOptions {
            decoding,
            max_new_tokens: 8,
            batch_size,
            seed: 11,
        }
    }

    fn decodings() -> Vec<Decoding> {
        vec![
            Decoding::Greedy,
            Decoding::Beam { beams: 3 },
            Decoding::Sample {
                temperature: 0.9,
                top_p: 0.8,
            },
        ]
    }

    fn translate(dir: &Path, opts: &MarianOptions, texts: &[String]) -> Vec<String> {
        let mut m = Marian::load(dir, opts).unwrap();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        m.translate(&refs).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(&b)
            .filter(|(x, y)| x.is_finite() || y.is_finite())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn options_serde() {
        let default: MarianOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(default, MarianOptions::default());
        assert_eq!(default.decoding, Decoding::Greedy);
        let beam: MarianOptions =
            serde_json::from_str(r#"{"decoding": {"kind": "beam", "beams": 4}, "seed": 3}"#)
                .unwrap();
        assert_eq!(beam.decoding, Decoding::Beam { beams: 4 });
        let sample = options(
            Decoding::Sample {
                temperature: 0.7,
                top_p: 0.9,
            },
            2,
        );
        let json = serde_json::to_string(&sample).unwrap();
        assert_eq!(
            serde_json::from_str::<MarianOptions>(&json).unwrap(),
            sample
        );
        for bad in [
            r#"{"beams": 4}"#,
            r#"{"decoding": {"kind": "beam", "beams": 4, "width": 2}}"#,
            r#"{"decoding": {"kind": "nucleus"}}"#,
        ] {
            assert!(serde_json::from_str::<MarianOptions>(bad).is_err(), "{bad}");
        }
    }

    /// Same weights, same logits as candle's MTModel (one unpadded text).
    #[test]
    fn matches_candle_reference() {
        use candle_nn::VarBuilder;
        use candle_transformers::models::marian::MTModel;
        let (_tmp, dir) = model_dir(1);
        let config = tiny_config(VOCAB);
        let marian = Marian::load(&dir, &MarianOptions::default()).unwrap();
        let m = &marian.model;
        let tensors = candle_core::safetensors::load(dir.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let mut reference = MTModel::new(&config, vb).unwrap();
        reference.reset_kv_cache();

        let ids = marian.encode("w5 w6 w7 w8 w9").unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(ids.last(), Some(&config.eos_token_id));
        let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let expected_encoded = reference.encoder().forward(&ids, 0).unwrap();
        let mask = Tensor::zeros((1, 1, 1, 6), DType::F32, &Device::Cpu).unwrap();
        let encoded = m.encode(&ids, &mask).unwrap();
        assert!(max_diff(&encoded, &expected_encoded) < 1e-4);

        let mut state = m.start(&encoded, mask).unwrap();
        let mut token = config.decoder_start_token_id;
        for step in 0..5 {
            let logits = m.step(&mut state, &[token]).unwrap();
            let input = Tensor::new(&[[token]], &Device::Cpu).unwrap();
            let expected = reference
                .decode(&input, &expected_encoded, step)
                .unwrap()
                .squeeze(0)
                .unwrap();
            // Ours bans the pad token (-inf), the reference does not: compare the rest.
            let pad = config.pad_token_id as usize;
            let mine = logits.narrow(1, 0, pad).unwrap();
            let theirs = expected.narrow(1, 0, pad).unwrap();
            assert!(max_diff(&mine, &theirs) < 1e-4, "step {step}");
            token = mine.argmax(D::Minus1).unwrap().to_vec1::<u32>().unwrap()[0];
        }
    }

    #[test]
    fn structure_and_determinism() {
        let (_tmp, dir) = model_dir(2);
        let (_tmp2, dir2) = model_dir(2);
        let texts = texts();
        for decoding in decodings() {
            let opts = options(decoding.clone(), 16);
            let a = translate(&dir, &opts, &texts);
            let b = translate(&dir, &opts, &texts);
            // A second folder written from the same seed: same weights, same outputs.
            let c = translate(&dir2, &opts, &texts);
            assert_eq!(a.len(), texts.len());
            assert_eq!(a, b, "{decoding:?}");
            assert_eq!(a, c, "{decoding:?}");
            for (text, out) in texts.iter().zip(&a) {
                if text.trim().is_empty() {
                    assert_eq!(out, "");
                }
                assert!(!out.contains("</s>") && !out.contains("<pad>"), "{out}");
                assert!(out.split_whitespace().count() <= 8, "{out}");
            }
            // The fixture makes some texts stop early and others run to the limit.
            let lengths: Vec<usize> = a.iter().map(|o| o.split_whitespace().count()).collect();
            assert!(lengths.contains(&8), "{decoding:?} {a:?}");
            assert!(
                lengths.iter().any(|&n| n > 0 && n < 8),
                "{decoding:?} {a:?}"
            );
            // Duplicate texts translate alike, even when sampling.
            assert_eq!(a[0], a[7]);
        }
        // A clone (shared weights) translates like the original.
        let opts = options(Decoding::Beam { beams: 2 }, 4);
        let mut original = Marian::load(&dir, &opts).unwrap();
        let mut clone = original.clone();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_eq!(
            clone.translate(&refs).unwrap(),
            original.translate(&refs).unwrap()
        );
        assert_eq!(clone.id(), original.id());
        let mut m = Marian::load(&dir, &MarianOptions::default()).unwrap();
        assert!(m.translate(&[]).unwrap().is_empty());
        assert_eq!(m.translate(&["", " \t"]).unwrap(), vec!["", ""]);
    }

    #[test]
    fn batching_does_not_change_outputs() {
        let (_tmp, dir) = model_dir(3);
        let texts = texts();
        for decoding in decodings() {
            let batched = translate(&dir, &options(decoding.clone(), 16), &texts);
            let small = translate(&dir, &options(decoding.clone(), 3), &texts);
            let mut m = Marian::load(&dir, &options(decoding.clone(), 16)).unwrap();
            let single: Vec<String> = texts
                .iter()
                .map(|t| m.translate(&[t]).unwrap().remove(0))
                .collect();
            assert_eq!(batched, single, "{decoding:?}");
            assert_eq!(small, single, "{decoding:?}");
        }
    }

    #[test]
    fn cold_sampling_is_greedy_and_seed_matters() {
        let (_tmp, dir) = model_dir(4);
        let texts = texts();
        let greedy = translate(&dir, &options(Decoding::Greedy, 4), &texts);
        let cold = Decoding::Sample {
            temperature: 1e-4,
            top_p: 1.0,
        };
        assert_eq!(translate(&dir, &options(cold, 4), &texts), greedy);
        let narrow = Decoding::Sample {
            temperature: 1.0,
            top_p: 1e-9,
        };
        assert_eq!(translate(&dir, &options(narrow, 4), &texts), greedy);

        let hot = Decoding::Sample {
            temperature: 2.0,
            top_p: 1.0,
        };
        let mut seeded = options(hot, 4);
        let first = translate(&dir, &seeded, &texts);
        seeded.seed += 1;
        assert_ne!(translate(&dir, &seeded, &texts), first);
    }

    /// Length-normalised log-probability of `output` (plus `</s>` when it ended early),
    /// the quantity beam search maximises.
    fn normalised_score(m: &Marian, text: &str, output: &str, max_new: usize) -> f64 {
        let model = &m.model;
        let ids = m.encode(text).unwrap();
        let len = ids.len();
        let ids = Tensor::new(ids.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let mask = Tensor::zeros((1, 1, 1, len), DType::F32, &Device::Cpu).unwrap();
        let encoded = model.encode(&ids, &mask).unwrap();
        let mut state = model.start(&encoded, mask).unwrap();
        let mut targets: Vec<u32> = output
            .split_whitespace()
            .map(|w| m.target.token_to_id(w).unwrap())
            .collect();
        if targets.len() < max_new {
            targets.push(model.eos);
        }
        let mut token = model.start;
        let mut sum = 0.0;
        for &t in &targets {
            let logits = model.step(&mut state, &[token]).unwrap();
            let lp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
            sum += f64::from(lp.to_vec2::<f32>().unwrap()[0][t as usize]);
            token = t;
        }
        sum / targets.len() as f64
    }

    #[test]
    fn beam_search_scores_at_least_greedy() {
        let texts = texts();
        let mut improved = 0;
        for seed in [5, 6] {
            let (_tmp, dir) = model_dir(seed);
            let greedy = translate(&dir, &options(Decoding::Greedy, 4), &texts);
            let beam = translate(&dir, &options(Decoding::Beam { beams: 4 }, 4), &texts);
            let m = Marian::load(&dir, &MarianOptions::default()).unwrap();
            for ((text, g), b) in texts.iter().zip(&greedy).zip(&beam) {
                if text.trim().is_empty() {
                    continue;
                }
                let (gs, bs) = (
                    normalised_score(&m, text, g, 8),
                    normalised_score(&m, text, b, 8),
                );
                assert!(
                    bs >= gs - 1e-6,
                    "{text:?}: beam {b:?} {bs} < greedy {g:?} {gs}"
                );
                improved += usize::from(bs > gs + 1e-6);
            }
        }
        assert!(improved > 0, "beam search never beat greedy");
    }

    #[test]
    fn top_k_and_sample_edge_cases() {
        // Ties go to the lower id; -inf is last.
        let row = [1.0, 3.0, 3.0, f32::NEG_INFINITY];
        assert_eq!(top_k(&row, 3), vec![(1, 3.0), (2, 3.0), (0, 1.0)]);
        assert_eq!(top_k(&row, 9).len(), 4);
        let mut rng = sample_rng(0, "x");
        // All tokens masked: end the text.
        assert_eq!(sample(&[f32::NEG_INFINITY; 3], 1.0, 1.0, &mut rng, 0), 0);
        // The nucleus of 0.5 holds only the clear favourite.
        for _ in 0..20 {
            assert_eq!(
                sample(&[0.0, 5.0, f32::NEG_INFINITY], 1.0, 0.5, &mut rng, 0),
                1
            );
        }
        // Different texts get different generators.
        let draw = |t: &str| sample_rng(1, t).random::<u64>();
        assert_ne!(draw("a"), draw("b"));
        assert_eq!(draw("a"), draw("a"));
    }

    /// The partially sorted nucleus draws exactly what a fully sorted one would.
    #[test]
    fn sample_matches_full_sort() {
        fn reference(logits: &[f32], temperature: f64, top_p: f64, rng: &mut ChaCha8Rng) -> u32 {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut probs: Vec<(u32, f64)> = (0..logits.len() as u32)
                .map(|i| {
                    (
                        i,
                        ((f64::from(logits[i as usize]) - f64::from(max)) / temperature).exp(),
                    )
                })
                .collect();
            probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let total: f64 = probs.iter().map(|p| p.1).sum();
            let mut kept = 0.0;
            let mut cut = probs.len();
            for (i, p) in probs.iter().enumerate() {
                kept += p.1;
                if kept >= top_p * total {
                    cut = i + 1;
                    break;
                }
            }
            probs.truncate(cut);
            let mut r = rng.random::<f64>() * kept;
            for &(id, p) in &probs {
                if r < p {
                    return id;
                }
                r -= p;
            }
            probs[probs.len() - 1].0
        }
        let mut gen = ChaCha8Rng::seed_from_u64(1);
        for case in 0..300 {
            // Flat and peaked rows; 300 entries make the head grow 64 -> 256 -> 300.
            let spread = [0.1f32, 1.0, 5.0][case % 3];
            let logits: Vec<f32> = (0..300).map(|_| gen.random::<f32>() * spread).collect();
            let top_p = [0.3, 0.9, 1.0][(case / 3) % 3];
            let mut a = sample_rng(case as u64, "t");
            let mut b = sample_rng(case as u64, "t");
            for _ in 0..5 {
                assert_eq!(
                    sample(&logits, 1.0, top_p, &mut a, 0),
                    reference(&logits, 1.0, top_p, &mut b),
                    "case {case}"
                );
            }
        }
    }

    /// A padded row of a batch gets the logits it gets alone.
    #[test]
    fn padding_is_masked() {
        let (_tmp, dir) = model_dir(10);
        let marian = Marian::load(&dir, &MarianOptions::default()).unwrap();
        let m = &marian.model;
        let short = marian.encode("w5 w6").unwrap();
        let long = marian.encode("w7 w8 w9 w10 w11 w12 w13").unwrap();
        let run = |sources: &[&[u32]]| -> Vec<Tensor> {
            let width = sources.iter().map(|s| s.len()).max().unwrap();
            let mut ids = Vec::new();
            let mut mask = Vec::new();
            for s in sources {
                ids.extend_from_slice(s);
                ids.resize(ids.len() + width - s.len(), m.pad);
                mask.extend((0..width).map(|i| if i < s.len() { 0f32 } else { f32::NEG_INFINITY }));
            }
            let n = sources.len();
            let ids = Tensor::from_vec(ids, (n, width), &Device::Cpu).unwrap();
            let mask = Tensor::from_vec(mask, (n, 1, 1, width), &Device::Cpu).unwrap();
            let encoded = m.encode(&ids, &mask).unwrap();
            let mut state = m.start(&encoded, mask).unwrap();
            let mut tokens = vec![m.start; n];
            let mut all = Vec::new();
            for step in 0..4 {
                let logits = m.step(&mut state, &tokens).unwrap();
                tokens = vec![2 + step; n];
                all.push(logits);
            }
            all
        };
        let alone = run(&[&short]);
        let batched = run(&[&long, &short]);
        for (a, b) in alone.iter().zip(&batched) {
            let row = b.narrow(0, 1, 1).unwrap();
            assert!(max_diff(a, &row) < 1e-5);
        }
    }

    #[test]
    fn id_names_model_and_settings() {
        let (_tmp, dir) = model_dir(6);
        let greedy = Marian::load(&dir, &options(Decoding::Greedy, 4)).unwrap();
        let id = greedy.id().to_string();
        assert!(id.starts_with("marian/tiny-en-xx@"), "{id}");
        assert!(id.ends_with("/greedy/max8"), "{id}");
        // Batch size never changes outputs, so it is not part of the id.
        assert_eq!(
            Marian::load(&dir, &options(Decoding::Greedy, 1))
                .unwrap()
                .id(),
            id
        );
        let mut ids = vec![id];
        for decoding in decodings().into_iter().skip(1) {
            ids.push(
                Marian::load(&dir, &options(decoding, 4))
                    .unwrap()
                    .id()
                    .to_string(),
            );
        }
        let mut seeded = options(decodings()[2].clone(), 4);
        seeded.seed = 99;
        ids.push(Marian::load(&dir, &seeded).unwrap().id().to_string());
        let tmp = tempfile::tempdir().unwrap();
        let other = tmp.path().join("tiny-en-xx");
        let mut config = tiny_config(VOCAB);
        config.encoder_ffn_dim = 24;
        write_random_model(&other, &config, 6).unwrap();
        ids.push(
            Marian::load(&other, &options(Decoding::Greedy, 4))
                .unwrap()
                .id()
                .to_string(),
        );
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
    }

    fn load_error(dir: &Path) -> String {
        match Marian::load(dir, &MarianOptions::default()) {
            Ok(_) => panic!("loaded"),
            Err(e @ Error::Model { .. }) => e.to_string(),
            Err(e) => panic!("wrong error kind: {e}"),
        }
    }

    #[test]
    fn load_errors_name_the_file() {
        let (_tmp, dir) = model_dir(7);
        let weights = dir.join(WEIGHTS_FILE);
        let good = std::fs::read(&weights).unwrap();

        std::fs::remove_file(&weights).unwrap();
        let e = load_error(&dir);
        assert!(
            e.contains("model.safetensors") && e.contains("missing"),
            "{e}"
        );

        std::fs::write(&weights, &good[..good.len() / 2]).unwrap();
        let e = load_error(&dir);
        assert!(
            e.contains("model.safetensors") && e.contains("safetensors"),
            "{e}"
        );

        std::fs::write(&weights, b"not a safetensors file at all").unwrap();
        let e = load_error(&dir);
        assert!(e.contains("model.safetensors"), "{e}");
        std::fs::write(&weights, &good).unwrap();

        // The config says ffn 64, the weights have 32.
        let config_path = dir.join(CONFIG_FILE);
        let config_text = std::fs::read_to_string(&config_path).unwrap();
        let mut config: serde_json::Value = serde_json::from_str(&config_text).unwrap();
        config["encoder_ffn_dim"] = 64.into();
        std::fs::write(&config_path, config.to_string()).unwrap();
        let e = load_error(&dir);
        assert!(
            e.contains("model.safetensors")
                && e.contains("model.encoder.layers.0.fc1.weight")
                && e.contains("[32, 16]")
                && e.contains("[64, 16]"),
            "{e}"
        );

        config["encoder_ffn_dim"] = 32.into();
        config["encoder_layers"] = 2.into();
        std::fs::write(&config_path, config.to_string()).unwrap();
        let e = load_error(&dir);
        assert!(e.contains("missing tensor `model.encoder.layers.1."), "{e}");

        config["encoder_layers"] = 1.into();
        config["d_model"] = 15.into();
        std::fs::write(&config_path, config.to_string()).unwrap();
        let e = load_error(&dir);
        assert!(e.contains("config.json") && e.contains("d_model"), "{e}");

        std::fs::write(&config_path, "{\"d_model\": 16").unwrap();
        let e = load_error(&dir);
        assert!(e.contains("config.json") && e.contains("JSON"), "{e}");
        std::fs::write(&config_path, &config_text).unwrap();

        std::fs::remove_file(dir.join(TARGET_TOKENIZER_FILE)).unwrap();
        let e = load_error(&dir);
        assert!(e.contains("target.tokenizer.json"), "{e}");

        std::fs::write(dir.join(TARGET_TOKENIZER_FILE), "{}").unwrap();
        let e = load_error(&dir);
        assert!(e.contains("target.tokenizer.json"), "{e}");
    }

    #[test]
    fn invalid_options_are_rejected() {
        let (_tmp, dir) = model_dir(8);
        let bad = [
            options(Decoding::Beam { beams: 0 }, 4),
            options(Decoding::Greedy, 0),
            MarianOptions {
                max_new_tokens: 0,
                ..MarianOptions::default()
            },
            options(
                Decoding::Sample {
                    temperature: 0.0,
                    top_p: 0.9,
                },
                4,
            ),
            options(
                Decoding::Sample {
                    temperature: 1.0,
                    top_p: 1.5,
                },
                4,
            ),
        ];
        for opts in bad {
            let e = Marian::load(&dir, &opts).unwrap_err().to_string();
            assert!(e.contains("invalid Marian options"), "{e}");
        }
    }

    #[test]
    fn old_configs_without_optional_keys_load() {
        let (_tmp, dir) = model_dir(9);
        let path = dir.join(CONFIG_FILE);
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let obj = config.as_object_mut().unwrap();
        for key in [
            "forced_eos_token_id",
            "share_encoder_decoder_embeddings",
            "use_cache",
            "is_encoder_decoder",
        ] {
            obj.remove(key);
        }
        std::fs::write(&path, config.to_string()).unwrap();
        let mut m = Marian::load(&dir, &options(Decoding::Greedy, 4)).unwrap();
        assert_eq!(m.translate(&["w5 w6"]).unwrap().len(), 1);
    }
}
