//! The dual encoder: an image tower (a small CNN over pixels, or an MLP over precomputed
//! image vectors) and a text tower (a small transformer over a word vocabulary built
//! from the training texts), each ending in a projection into one shared space, plus a
//! learnable temperature. Built from a `VarBuilder` and the serde config, candle-style.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{conv2d, embedding, layer_norm, linear, Conv2d, Embedding, LayerNorm, Linear};
use candle_nn::{Conv2dConfig, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub image: ImageTowerConfig,
    pub text: TextTowerConfig,
    /// Dimension of the shared space.
    pub embed_dim: usize,
    /// Initial softmax temperature (learned from there; never below 0.01).
    pub temperature: f32,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            image: ImageTowerConfig::default(),
            text: TextTowerConfig::default(),
            embed_dim: 64,
            temperature: 0.07,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageTowerConfig {
    /// Stride-2 3x3 convolutions with ReLU over `size` x `size` RGB. Their last feature
    /// map is max-pooled over the whole image (what is there, wherever it is: colour and
    /// shape bound together by the convolutions) and average-pooled onto a `grid` x
    /// `grid` layout (where things are, which relations need); both are projected.
    Cnn {
        size: usize,
        channels: Vec<usize>,
        #[serde(default = "default_grid")]
        grid: usize,
    },
    /// Two layers over a fixed image embedding (descriptor, CLIP or precomputed).
    Mlp {
        embeddings: crate::embed::image::ImageEmbeddingConfig,
        hidden: usize,
    },
}

fn default_grid() -> usize {
    3
}

/// The MLP over the training-free pixel descriptor (with its colour-by-edge and
/// colour-region blocks): on the 470 training images of the default set it generalises
/// better than the CNN (held-out text->image R@5 0.33 against 0.23 after 6 epochs,
/// 2026-11-29) at a third of the time per epoch. The region block raised held-out
/// image->text R@5 after 10 epochs from 0.49 to 0.65 (2026-11-30).
impl Default for ImageTowerConfig {
    fn default() -> Self {
        ImageTowerConfig::Mlp {
            embeddings: crate::embed::image::ImageEmbeddingConfig::Descriptor {
                grid: 4,
                size: 64,
                bind: true,
                regions: true,
            },
            hidden: 256,
        }
    }
}

/// The text tower: trained from scratch, or started from a pretrained encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TextTowerConfig {
    Scratch(ScratchTextConfig),
    Pretrained(PretrainedTextConfig),
}

impl Default for TextTowerConfig {
    fn default() -> Self {
        TextTowerConfig::Scratch(ScratchTextConfig::default())
    }
}

/// A small transformer over a word vocabulary built from the training texts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScratchTextConfig {
    pub dim: usize,
    pub layers: usize,
    pub heads: usize,
    /// Tokens kept per text (longer texts are cut).
    pub max_len: usize,
    /// Words seen fewer times than this in training texts map to `[UNK]`.
    pub min_count: usize,
}

impl Default for ScratchTextConfig {
    fn default() -> Self {
        ScratchTextConfig {
            dim: 128,
            layers: 3,
            heads: 4,
            max_len: 32,
            min_count: 1,
        }
    }
}

/// A pretrained BERT sentence encoder (all-MiniLM-L6-v2): its lower layers stay frozen
/// and their token states are computed once per text and cached on disk
/// ([`super::states`]); its top `train_layers` layers (initialised from it), then
/// `head_layers` transformer blocks and attention pooling train. The blocks start as the
/// identity and the pooling as a mean, so before training the tower gives the encoder's
/// own sentence vector (through the projection, the identity where `embed_dim` is the
/// encoder's width).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainedTextConfig {
    /// The model folder (`config.json`, `model.safetensors`, `tokenizer.json`).
    pub model: std::path::PathBuf,
    /// The encoder's top layers that train (0: all frozen; all of them: every layer
    /// trains, the embeddings' output being cached).
    #[serde(default)]
    pub train_layers: usize,
    /// Trainable transformer blocks over the states.
    #[serde(default = "default_head_layers")]
    pub head_layers: usize,
    /// Heads of the attention pooling (and of the blocks).
    #[serde(default = "default_heads")]
    pub heads: usize,
    /// Tokens kept per text, `[CLS]` and `[SEP]` included.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
}

/// None: on the default synthetic set (in-batch negatives, 10 epochs, 2026-12-05) one
/// block made the epochs 23 times slower (444 s against 19 s in all, 2 cores shared
/// with another job) for lower held-out image->text R@5 (76.2 against 84.6).
fn default_head_layers() -> usize {
    0
}

fn default_heads() -> usize {
    6
}

fn default_max_len() -> usize {
    32
}

impl TextTowerConfig {
    pub fn max_len(&self) -> usize {
        match self {
            TextTowerConfig::Scratch(c) => c.max_len,
            TextTowerConfig::Pretrained(c) => c.max_len,
        }
    }
}

impl ModelConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        match &self.text {
            TextTowerConfig::Scratch(t)
                if t.dim == 0 || t.heads == 0 || !t.dim.is_multiple_of(t.heads) =>
            {
                return Err(format!(
                    "text dim {} must be a positive multiple of heads {}",
                    t.dim, t.heads
                ));
            }
            TextTowerConfig::Pretrained(t) if t.heads == 0 => {
                return Err("pretrained text: heads must be at least 1".into());
            }
            _ => {}
        }
        if self.text.max_len() == 0 || self.embed_dim == 0 {
            return Err("max_len and embed_dim must be at least 1".into());
        }
        if !(self.temperature >= 0.01 && self.temperature <= 1.0) {
            return Err("temperature must be in [0.01, 1]".into());
        }
        match &self.image {
            ImageTowerConfig::Cnn {
                size,
                channels,
                grid,
            } => {
                let side = (0..channels.len()).fold(*size, |s, _| s.div_ceil(2));
                if channels.is_empty() || channels.contains(&0) || *grid == 0 || side % grid != 0 {
                    return Err(format!(
                        "cnn: the last feature map ({side} x {side} after {} stride-2 layers) \
                         must split evenly into grid {grid}, and channels must be non-zero",
                        channels.len()
                    ));
                }
            }
            ImageTowerConfig::Mlp { hidden, .. } if *hidden == 0 => {
                return Err("mlp: hidden must be at least 1".into())
            }
            ImageTowerConfig::Mlp { .. } => {}
        }
        Ok(())
    }
}

/// What the image tower reads: pixels (`[n, 3, size, size]`, in [-0.5, 0.5]) or vectors.
pub enum ImageTower {
    Cnn {
        convs: Vec<Conv2d>,
        /// Pooling window onto the grid.
        cell: usize,
        project: Linear,
    },
    Mlp {
        hidden: Linear,
        project: Linear,
    },
}

impl ImageTower {
    fn new(config: &ModelConfig, image_dim: usize, vb: VarBuilder) -> Result<ImageTower> {
        Ok(match &config.image {
            ImageTowerConfig::Cnn {
                size,
                channels,
                grid,
            } => {
                let conv = Conv2dConfig {
                    padding: 1,
                    stride: 2,
                    ..Default::default()
                };
                let mut convs = Vec::new();
                let (mut from, mut side) = (3, *size);
                for (i, &to) in channels.iter().enumerate() {
                    convs.push(conv2d(from, to, 3, conv, vb.pp(format!("conv{i}")))?);
                    (from, side) = (to, side.div_ceil(2));
                }
                let features = from + from * grid * grid;
                ImageTower::Cnn {
                    convs,
                    cell: side / grid.max(&1),
                    project: linear(features, config.embed_dim, vb.pp("project"))?,
                }
            }
            ImageTowerConfig::Mlp { hidden, .. } => ImageTower::Mlp {
                hidden: linear(image_dim, *hidden, vb.pp("hidden"))?,
                project: linear(*hidden, config.embed_dim, vb.pp("project"))?,
            },
        })
    }
}

impl Module for ImageTower {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            ImageTower::Cnn {
                convs,
                cell,
                project,
            } => {
                let mut x = x.clone();
                for conv in convs {
                    x = conv.forward(&x)?.relu()?;
                }
                let what = x.flatten_from(2)?.max(2)?;
                let layout = x.avg_pool2d(*cell)?.flatten_from(1)?;
                project.forward(&Tensor::cat(&[what, layout], 1)?)
            }
            ImageTower::Mlp { hidden, project } => project.forward(&hidden.forward(x)?.relu()?),
        }
    }
}

struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    out: Linear,
    norm2: LayerNorm,
    up: Linear,
    down: Linear,
    heads: usize,
}

impl Block {
    fn new(dim: usize, heads: usize, vb: VarBuilder) -> Result<Block> {
        Ok(Block {
            norm1: layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            qkv: linear(dim, 3 * dim, vb.pp("qkv"))?,
            out: linear(dim, dim, vb.pp("out"))?,
            norm2: layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            up: linear(dim, 4 * dim, vb.pp("up"))?,
            down: linear(4 * dim, dim, vb.pp("down"))?,
            heads,
        })
    }

    /// Pre-norm attention and MLP; `pad_bias` is `[n, 1, 1, len]`, -1e9 at padding.
    fn forward(&self, x: &Tensor, pad_bias: &Tensor) -> Result<Tensor> {
        let (n, len, dim) = x.dims3()?;
        let head_dim = dim / self.heads;
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        let qkv = qkv
            .reshape((n, len, 3, self.heads, head_dim))?
            .permute((2, 0, 3, 1, 4))?;
        let (q, k, v) = (
            qkv.get(0)?.contiguous()?,
            qkv.get(1)?.contiguous()?,
            qkv.get(2)?.contiguous()?,
        );
        let scores = (q.matmul(&k.t()?)? / (head_dim as f64).sqrt())?.broadcast_add(pad_bias)?;
        let attention = candle_nn::ops::softmax_last_dim(&scores)?;
        let mixed = attention
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((n, len, dim))?;
        let x = (x + self.out.forward(&mixed)?)?;
        let hidden = self.up.forward(&self.norm2.forward(&x)?)?.gelu_erf()?;
        x + self.down.forward(&hidden)?
    }
}

/// What a text tower reads: word ids of the scratch tower's vocabulary (`[n, len]`,
/// u32), or a pretrained encoder's cached token states (`[n, len, dim]`); with the mask
/// (`[n, len]`, f32, 1 at tokens).
pub enum TextInput {
    Ids { ids: Tensor, mask: Tensor },
    States { states: Tensor, mask: Tensor },
}

pub enum TextTower {
    Scratch(ScratchTower),
    Pretrained(PretrainedTower),
}

impl TextTower {
    fn new(config: &ModelConfig, vocab: usize, vb: VarBuilder) -> Result<TextTower> {
        Ok(match &config.text {
            TextTowerConfig::Scratch(t) => {
                TextTower::Scratch(ScratchTower::new(t, config.embed_dim, vocab, vb)?)
            }
            TextTowerConfig::Pretrained(t) => {
                TextTower::Pretrained(PretrainedTower::new(t, config.embed_dim, vb)?)
            }
        })
    }

    pub fn forward(&self, input: &TextInput) -> Result<Tensor> {
        match (self, input) {
            (TextTower::Scratch(tower), TextInput::Ids { ids, mask }) => tower.forward(ids, mask),
            (TextTower::Pretrained(tower), TextInput::States { states, mask }) => {
                tower.forward(states, mask)
            }
            _ => Err(candle_core::Error::Msg(
                "the text tower got the other tower's input".into(),
            )),
        }
    }
}

/// `-1e9` at padding, 0 at tokens, shaped to add to attention scores `[n, h, q, len]`.
fn pad_bias(mask: &Tensor) -> Result<Tensor> {
    ((mask - 1.0)? * 1e9)?.unsqueeze(1)?.unsqueeze(1)
}

/// Mean of `x` (`[n, len, dim]`) over the tokens `mask` marks.
fn masked_mean(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let weights = mask.unsqueeze(2)?;
    let summed = x.broadcast_mul(&weights)?.sum(1)?;
    let counts = weights.sum(1)?.clamp(1.0, f64::MAX)?;
    summed.broadcast_div(&counts)
}

pub struct ScratchTower {
    tokens: Embedding,
    positions: Embedding,
    blocks: Vec<Block>,
    norm: LayerNorm,
    project: Linear,
}

impl ScratchTower {
    fn new(
        t: &ScratchTextConfig,
        embed_dim: usize,
        vocab: usize,
        vb: VarBuilder,
    ) -> Result<ScratchTower> {
        Ok(ScratchTower {
            tokens: embedding(vocab, t.dim, vb.pp("tokens"))?,
            positions: embedding(t.max_len, t.dim, vb.pp("positions"))?,
            blocks: (0..t.layers)
                .map(|i| Block::new(t.dim, t.heads, vb.pp(format!("block{i}"))))
                .collect::<Result<_>>()?,
            norm: layer_norm(t.dim, 1e-5, vb.pp("norm"))?,
            project: linear(t.dim, embed_dim, vb.pp("project"))?,
        })
    }

    /// Masked mean pooling over the last layer, then the projection.
    fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, len) = ids.dims2()?;
        let positions = self.positions.embeddings().narrow(0, 0, len)?;
        let mut x = self.tokens.forward(ids)?.broadcast_add(&positions)?;
        let pad_bias = pad_bias(mask)?;
        for block in &self.blocks {
            x = block.forward(&x, &pad_bias)?;
        }
        let x = self.norm.forward(&x)?;
        self.project.forward(&masked_mean(&x, mask)?)
    }
}

/// One BERT encoder layer, trainable, its variables named as in the checkpoint
/// (`encoder.layer.N.attention.self.query.weight`, ...) so they load from it.
struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
}

impl BertLayer {
    fn new(bert: &BertShape, vb: VarBuilder) -> Result<BertLayer> {
        let (h, inner, eps) = (bert.hidden, bert.intermediate, bert.eps);
        let attention = vb.pp("attention");
        Ok(BertLayer {
            query: linear(h, h, attention.pp("self.query"))?,
            key: linear(h, h, attention.pp("self.key"))?,
            value: linear(h, h, attention.pp("self.value"))?,
            attention_out: linear(h, h, attention.pp("output.dense"))?,
            attention_norm: layer_norm(h, eps, attention.pp("output.LayerNorm"))?,
            intermediate: linear(h, inner, vb.pp("intermediate.dense"))?,
            output: linear(inner, h, vb.pp("output.dense"))?,
            output_norm: layer_norm(h, eps, vb.pp("output.LayerNorm"))?,
            heads: bert.heads,
        })
    }

    /// Post-norm attention and MLP, as BERT computes them.
    fn forward(&self, x: &Tensor, pad_bias: &Tensor) -> Result<Tensor> {
        let (n, len, dim) = x.dims3()?;
        let head = dim / self.heads;
        let split = |t: Tensor| -> Result<Tensor> {
            t.reshape((n, len, self.heads, head))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split((self.query.forward(x)? / (head as f64).sqrt())?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(pad_bias)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((n, len, dim))?;
        let x = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + x)?)?;
        let inner = self.intermediate.forward(&x)?.gelu_erf()?;
        self.output_norm
            .forward(&(self.output.forward(&inner)? + x)?)
    }
}

/// What the trainable layers need of the encoder's `config.json`.
#[derive(Debug, Clone, Copy)]
pub struct BertShape {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    pub layers: usize,
    pub eps: f64,
}

impl BertShape {
    pub fn read(model: &std::path::Path) -> std::result::Result<BertShape, String> {
        let path = model.join("config.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: candle_transformers::models::bert::Config =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(BertShape {
            hidden: c.hidden_size,
            intermediate: c.intermediate_size,
            heads: c.num_attention_heads,
            layers: c.num_hidden_layers,
            eps: c.layer_norm_eps,
        })
    }
}

/// Attention pooling: per head, a learned query scores each token (through a learned
/// key projection) and the head's slice of the states is averaged by those weights. The
/// queries start at zero, which weighs every token alike: a mean.
struct AttentionPool {
    key: Linear,
    query: Tensor,
    heads: usize,
}

impl AttentionPool {
    fn forward(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (n, len, dim) = x.dims3()?;
        let head = dim / self.heads;
        let keys = self
            .key
            .forward(x)?
            .reshape((n, len, self.heads, head))?
            .transpose(1, 2)?
            .contiguous()?;
        let query = self.query.reshape((1, self.heads, head, 1))?;
        let scores = (keys.broadcast_matmul(&query)?.squeeze(3)? / (head as f64).sqrt())?;
        let bias = pad_bias(mask)?.squeeze(1)?;
        let weights = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&bias)?)?;
        let values = x.reshape((n, len, self.heads, head))?.transpose(1, 2)?;
        weights
            .unsqueeze(2)?
            .matmul(&values.contiguous()?)?
            .reshape((n, dim))
    }
}

pub struct PretrainedTower {
    layers: Vec<BertLayer>,
    blocks: Vec<Block>,
    pool: AttentionPool,
    project: Linear,
}

/// Where a pretrained tower's encoder layers live among the model's variables.
pub const BERT_PREFIX: &str = "text.bert.";

impl PretrainedTower {
    fn new(t: &PretrainedTextConfig, embed_dim: usize, vb: VarBuilder) -> Result<PretrainedTower> {
        let bert = BertShape::read(&t.model).map_err(candle_core::Error::Msg)?;
        if t.train_layers > bert.layers || bert.hidden % t.heads != 0 {
            return Err(candle_core::Error::Msg(format!(
                "{}: train_layers {} must be at most its {} layers, and heads {} must divide its width {}",
                t.model.display(),
                t.train_layers,
                bert.layers,
                t.heads,
                bert.hidden
            )));
        }
        let first = bert.layers - t.train_layers;
        let pool = vb.pp("pool");
        Ok(PretrainedTower {
            layers: (first..bert.layers)
                .map(|i| BertLayer::new(&bert, vb.pp(format!("bert.encoder.layer.{i}"))))
                .collect::<Result<_>>()?,
            blocks: (0..t.head_layers)
                .map(|i| Block::new(bert.hidden, t.heads, vb.pp(format!("head{i}"))))
                .collect::<Result<_>>()?,
            pool: AttentionPool {
                key: linear(bert.hidden, bert.hidden, pool.pp("key"))?,
                query: pool.get((t.heads, bert.hidden / t.heads), "query")?,
                heads: t.heads,
            },
            project: linear(bert.hidden, embed_dim, vb.pp("project"))?,
        })
    }

    fn forward(&self, states: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let bias = pad_bias(mask)?;
        let mut x = states.clone();
        for layer in &self.layers {
            x = layer.forward(&x, &bias)?;
        }
        for block in &self.blocks {
            x = block.forward(&x, &bias)?;
        }
        self.project.forward(&self.pool.forward(&x, mask)?)
    }
}

/// After [`seeded_init`], a pretrained tower's starting point: its encoder layers from
/// the checkpoint, its blocks the identity (their output projections zero), its pooling
/// a mean (queries zero), and its projection the identity where it is square.
pub fn pretrained_init(varmap: &VarMap, model: &std::path::Path) -> Result<()> {
    let weights = model.join("model.safetensors");
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
    // With every encoder layer frozen nothing is read from the checkpoint.
    let checkpoint = match vars.keys().any(|n| n.starts_with(BERT_PREFIX)) {
        true => candle_core::safetensors::load(&weights, &candle_core::Device::Cpu)?,
        false => std::collections::HashMap::new(),
    };
    for (name, var) in vars.iter() {
        let zero = || var.set(&var.zeros_like()?);
        if let Some(own) = name.strip_prefix(BERT_PREFIX) {
            let found = checkpoint
                .get(own)
                .or_else(|| checkpoint.get(&format!("bert.{own}")))
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!("{}: no tensor {own}", weights.display()))
                })?;
            var.set(&found.to_device(var.device())?)?;
        } else if name.starts_with("text.head")
            && (name.contains(".out.") || name.contains(".down."))
            || name == "text.pool.query"
        {
            zero()?;
        } else if name == "text.project.weight" && var.dim(0)? == var.dim(1)? {
            var.set(&Tensor::eye(var.dim(0)?, var.dtype(), var.device())?)?;
        }
    }
    Ok(())
}

pub struct DualEncoder {
    pub image: ImageTower,
    pub text: TextTower,
    /// ln(1 / temperature).
    pub logit_scale: Tensor,
}

/// The largest logit scale (temperature 0.01), as CLIP clamps it.
const MAX_LOGIT_SCALE: f64 = 4.605_170_185_988_091;

impl DualEncoder {
    pub fn new(
        config: &ModelConfig,
        vocab: usize,
        image_dim: usize,
        vb: VarBuilder,
    ) -> Result<DualEncoder> {
        let init = (1.0 / config.temperature as f64).ln();
        Ok(DualEncoder {
            image: ImageTower::new(config, image_dim, vb.pp("image"))?,
            text: TextTower::new(config, vocab, vb.pp("text"))?,
            logit_scale: vb.get_with_hints((), "logit_scale", candle_nn::Init::Const(init))?,
        })
    }

    /// exp(logit scale), clamped.
    pub fn scale(&self) -> Result<Tensor> {
        self.logit_scale.clamp(0.0, MAX_LOGIT_SCALE)?.exp()
    }

    pub fn embed_images(&self, images: &Tensor) -> Result<Tensor> {
        l2_normalise(&self.image.forward(images)?)
    }

    pub fn embed_texts(&self, input: &TextInput) -> Result<Tensor> {
        l2_normalise(&self.text.forward(input)?)
    }
}

pub fn l2_normalise(x: &Tensor) -> Result<Tensor> {
    let norm = x
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f64::MAX)?;
    x.broadcast_div(&norm)
}

/// Overwrites every variable with values drawn from `seed`, in name order, since
/// candle's CPU generator cannot be seeded: weight matrices and kernels uniform with
/// variance 1/fan-in (LeCun; an embedding table's fan-in is its width, as candle names
/// it `weight` too), layer-norm gains 1, biases 0; `logit_scale` keeps its configured
/// value.
pub fn seeded_init(varmap: &VarMap, seed: u64) -> Result<()> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for name in names {
        let var = &vars[name];
        let shape = var.dims().to_vec();
        let n: usize = shape.iter().product();
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let is_norm = name.contains("norm");
        let values: Vec<f32> = match leaf {
            "logit_scale" => continue,
            "bias" => vec![0.0; n],
            "weight" if is_norm => vec![1.0; n],
            _ => {
                let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
                let bound = (3.0 / fan_in as f32).sqrt();
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            }
        };
        var.set(&Tensor::from_vec(values, shape, var.device())?)?;
    }
    Ok(())
}
