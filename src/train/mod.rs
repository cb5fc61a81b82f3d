//! The bundled trainer: a dual encoder ([`model`]) trained on a run's shards with the
//! CMCL loss ([`loss`]), evaluated after every epoch ([`eval`]).
//!
//! A training run lives in `<out>/train/<run>/`: `config.json` (the settings, the
//! vocabulary, the split's size), `epoch-NNNN/model.safetensors` and
//! `epoch-NNNN/optimizer.safetensors` (the last finished epoch), `state.json` (epochs
//! done, steps, that folder, a hash of the settings), `metrics.jsonl`, `metrics.csv` and
//! `metrics.svg`. Every file is written atomically; a
//! killed run resumes from the last finished epoch and ends with the same weights as an
//! uninterrupted one.

pub mod data;
pub mod eval;
pub mod loss;
pub mod model;
pub mod optim;
mod plot;
pub mod states;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::error::{Error, Result};
use crate::core::fs::write_json_atomic;
use crate::core::record::Pair;
use crate::core::sample::Augmented;
use data::{ImageLoader, ImageSource, Shuffled, Vocab};
use eval::EvalReport;
use loss::LossConfig;
use model::{DualEncoder, ImageTowerConfig, ModelConfig, TextInput, TextTowerConfig};
use optim::{AdamW, OptimConfig};
use states::TokenStates;

/// The `[train]` table of a pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Seed of the initial weights, the split, the shuffling and the sampled texts.
    pub seed: u64,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub loss: LossConfig,
    pub data: DataConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1,
            model: ModelConfig::default(),
            optim: OptimConfig::default(),
            loss: LossConfig::default(),
            data: DataConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Share of images held out for evaluation (by a hash of the image id).
    pub validation_fraction: f64,
    /// Rows in the shuffle buffer (memory: one shard plus these).
    pub shuffle_buffer: usize,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            validation_fraction: 0.2,
            shuffle_buffer: 4096,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.model.validate()?;
        self.optim.validate()?;
        self.loss.validate()?;
        if !(self.data.validation_fraction > 0.0 && self.data.validation_fraction < 1.0) {
            return Err("validation_fraction must be in (0, 1)".into());
        }
        Ok(())
    }

    fn sha256(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        crate::core::fs::hex(&Sha256::digest(json.as_bytes()))
    }
}

/// What a run folder's `config.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub train: TrainConfig,
    pub vocab: Vec<String>,
    pub image_dim: usize,
    pub train_rows: usize,
}

/// What `state.json` holds: how far the run got, and the folder with that epoch's
/// weights and optimizer state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub epochs_done: usize,
    pub steps: usize,
    pub config_sha256: String,
    /// SHA-256 over the names and SHA-256s of the shards the run trained on
    /// ([`data::ShardList::sha256`]): a run folder whose shards changed since (the pipeline, its
    /// inputs or cmcl were changed and `augment` ran again) starts over.
    #[serde(default)]
    pub shards_sha256: String,
    pub checkpoint: String,
}

/// What the text tower reads texts through.
pub enum TextSource {
    /// The scratch tower's word vocabulary.
    Vocab(Vocab),
    /// A pretrained tower's cached token states (with the encoder, for texts not cached).
    States(Box<TokenStates>),
}

impl TextSource {
    /// The source `config`'s text tower needs: `words` as its vocabulary, or the token
    /// states cached in `cache_dir`.
    pub fn open(config: &ModelConfig, words: Vec<String>, cache_dir: &Path) -> Result<TextSource> {
        Ok(match &config.text {
            TextTowerConfig::Scratch(_) => TextSource::Vocab(Vocab::from_words(words)),
            TextTowerConfig::Pretrained(t) => {
                let layers = model::BertShape::read(&t.model)
                    .map_err(|m| Error::model(&t.model, m))?
                    .layers;
                let frozen = layers.saturating_sub(t.train_layers);
                TextSource::States(Box::new(TokenStates::open(&t.model, frozen, cache_dir)?))
            }
        })
    }

    fn vocab_size(&self) -> usize {
        match self {
            TextSource::Vocab(vocab) => vocab.len(),
            TextSource::States(_) => 0,
        }
    }
}

/// Where a training run in `run_dir` (`OUT/train/RUN`) caches token states: beside it,
/// shared by the run folder's trainings.
pub fn states_cache(run_dir: &Path) -> PathBuf {
    run_dir
        .parent()
        .unwrap_or(Path::new("."))
        .join("token-states")
}

/// A model with its text source and image loader: what training and evaluation share.
pub struct Trainer {
    pub config: TrainConfig,
    pub text: TextSource,
    pub model: DualEncoder,
    pub varmap: VarMap,
    loader: ImageLoader,
    device: Device,
}

fn model_error(path: &Path, e: candle_core::Error) -> Error {
    Error::model(path, e)
}

impl Trainer {
    /// A freshly initialised model (weights drawn from the seed; a pretrained text
    /// tower's from its checkpoint).
    pub fn new(config: TrainConfig, text: TextSource, image_dim: usize) -> Result<Trainer> {
        let loader = ImageLoader::new(image_source(&config.model.image)?);
        Trainer::with_loader(config, text, image_dim, loader)
    }

    fn with_loader(
        config: TrainConfig,
        text: TextSource,
        image_dim: usize,
        loader: ImageLoader,
    ) -> Result<Trainer> {
        let device = crate::embed::text::device();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let here = Path::new("<model>");
        let model = DualEncoder::new(&config.model, text.vocab_size(), image_dim, vb)
            .map_err(|e| model_error(here, e))?;
        model::seeded_init(&varmap, config.seed).map_err(|e| model_error(here, e))?;
        if let TextTowerConfig::Pretrained(t) = &config.model.text {
            model::pretrained_init(&varmap, &t.model).map_err(|e| model_error(&t.model, e))?;
        }
        Ok(Trainer {
            config,
            text,
            model,
            varmap,
            loader,
            device,
        })
    }

    /// The model of a run folder, as of its last finished epoch.
    pub fn load(run_dir: &Path) -> Result<(Trainer, RunConfig, RunState)> {
        let run: RunConfig = read_json(&run_dir.join("config.json"))?;
        let state: RunState = read_json(&run_dir.join("state.json"))?;
        let text = TextSource::open(&run.train.model, run.vocab.clone(), &states_cache(run_dir))?;
        let mut trainer = Trainer::new(run.train.clone(), text, run.image_dim)?;
        let weights = run_dir.join(&state.checkpoint).join("model.safetensors");
        trainer
            .varmap
            .load(&weights)
            .map_err(|e| model_error(&weights, e))?;
        Ok((trainer, run, state))
    }

    fn images(&self, pairs: &[&Pair]) -> Result<Tensor> {
        let loaded: Vec<_> = pairs
            .iter()
            .map(|p| self.loader.load(p))
            .collect::<Result<_>>()?;
        let width = loaded.first().map_or(0, |v| v.len());
        let mut flat = Vec::with_capacity(width * loaded.len());
        for (pair, values) in pairs.iter().zip(&loaded) {
            if values.len() != width {
                return Err(Error::Stage {
                    stage: "train".into(),
                    message: format!(
                        "image {} gives {} values, the others {width}",
                        pair.image_id,
                        values.len()
                    ),
                });
            }
            flat.extend_from_slice(values);
        }
        let shape: Vec<usize> = match &self.config.model.image {
            ImageTowerConfig::Cnn { size, .. } => vec![pairs.len(), 3, *size, *size],
            ImageTowerConfig::Mlp { .. } => vec![pairs.len(), width],
        };
        Tensor::from_vec(flat, shape, &self.device)
            .map_err(|e| model_error(Path::new("<images>"), e))
    }

    /// What the text tower reads of `texts`, padded to the longest.
    fn text_input(&self, texts: &[&str]) -> Result<TextInput> {
        let max_len = self.config.model.text.max_len();
        let vocab = match &self.text {
            TextSource::Vocab(vocab) => vocab,
            TextSource::States(states) => {
                let (states, mask) = states.batch(texts, max_len, &self.device)?;
                return Ok(TextInput::States { states, mask });
            }
        };
        let encoded: Vec<Vec<u32>> = texts.iter().map(|t| vocab.encode(t, max_len)).collect();
        let len = encoded.iter().map(Vec::len).max().unwrap_or(1);
        let mut ids = vec![data::PAD; texts.len() * len];
        let mut mask = vec![0f32; texts.len() * len];
        for (row, tokens) in encoded.iter().enumerate() {
            ids[row * len..row * len + tokens.len()].copy_from_slice(tokens);
            mask[row * len..row * len + tokens.len()].fill(1.0);
        }
        let err = |e| model_error(Path::new("<texts>"), e);
        Ok(TextInput::Ids {
            ids: Tensor::from_vec(ids, (texts.len(), len), &self.device).map_err(err)?,
            mask: Tensor::from_vec(mask, (texts.len(), len), &self.device).map_err(err)?,
        })
    }

    pub fn embed_images(&self, pairs: &[&Pair]) -> Result<Vec<Vec<f32>>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let images = self.images(pairs)?;
        let err = |e| model_error(Path::new("<images>"), e);
        self.model
            .embed_images(&images)
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(err)
    }

    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let input = self.text_input(texts)?;
        let err = |e| model_error(Path::new("<texts>"), e);
        self.model
            .embed_texts(&input)
            .and_then(|t| t.to_vec2::<f32>())
            .map_err(err)
    }

    /// The CMCL loss of one batch.
    pub fn loss(&self, rows: &[(Pair, Augmented)], epoch: u64) -> Result<Tensor> {
        let targets = loss::targets(rows, &self.config.loss, self.config.seed, epoch);
        let pairs: Vec<&Pair> = rows.iter().map(|(p, _)| p).collect();
        let images = self.images(&pairs)?;
        let texts: Vec<&str> = targets.texts.iter().map(String::as_str).collect();
        let input = self.text_input(&texts)?;
        let (n, t) = (rows.len(), texts.len());
        let run = || -> candle_core::Result<Tensor> {
            let weights = Tensor::from_vec(targets.text_weights, (n, t), &self.device)?;
            let same = Tensor::from_vec(targets.same_image, (n, n), &self.device)?;
            loss::cmcl_loss(
                &self.model.embed_images(&images)?,
                &self.model.embed_texts(&input)?,
                &weights,
                &same,
                &self.model.scale()?,
            )
        };
        run().map_err(|e| model_error(Path::new("<loss>"), e))
    }
}

fn image_source(config: &ImageTowerConfig) -> Result<ImageSource> {
    Ok(match config {
        ImageTowerConfig::Cnn { size, .. } => ImageSource::Pixels { size: *size },
        ImageTowerConfig::Mlp { embeddings, .. } => ImageSource::Vectors(embeddings.build()?),
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Manifest {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let temp = crate::core::fs::temp_path(path);
    candle_core::safetensors::save(tensors, &temp).map_err(|e| Error::model(path, e))?;
    std::fs::rename(&temp, path).map_err(|e| Error::io(path, e))
}

/// What `cmcl train` was asked to do.
pub struct TrainOptions {
    /// `<out>/train/<run>`.
    pub run_dir: PathBuf,
    /// The run's shards folder.
    pub shards: PathBuf,
    /// Start over even when a checkpoint exists.
    pub fresh: bool,
    /// Stop after this many more epochs (a checkpoint remains to resume from).
    pub stop_after: Option<usize>,
    pub progress: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub steps: usize,
    pub train_loss: f64,
    pub learning_rate: f64,
    pub temperature: f64,
    pub seconds: f64,
    pub pairs_per_second: f64,
    pub eval: EvalReport,
}

/// Trains (or resumes) the run in `options.run_dir`; returns the last epoch's metrics.
pub fn train(config: &TrainConfig, options: &TrainOptions) -> Result<Option<EpochMetrics>> {
    let dir = &options.run_dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let shard_list = data::shard_files(&options.shards)?;
    let shards = shard_list.sha256()?;
    let files = shard_list.files;
    let state_path = dir.join("state.json");
    let trained_on_other_shards = std::fs::read(&state_path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<RunState>(&bytes).ok())
        .is_some_and(|state| state.shards_sha256 != shards);
    if trained_on_other_shards && !options.fresh {
        eprintln!(
            "{}: trained on other shards than {} holds now; starting over",
            dir.display(),
            options.shards.display()
        );
    }
    let resumable = !options.fresh && !trained_on_other_shards && state_path.is_file();
    let (trainer, run, mut optimizer, mut state) = if resumable {
        let (trainer, run, state) = Trainer::load(dir)?;
        if state.config_sha256 != config.sha256() {
            return Err(Error::Stage {
                stage: "train".into(),
                message: format!(
                    "{} was trained with other settings; pass --fresh to start over",
                    dir.display()
                ),
            });
        }
        let mut optimizer = new_optimizer(&trainer)?;
        let path = dir.join(&state.checkpoint).join("optimizer.safetensors");
        let saved = candle_core::safetensors::load(&path, &trainer.device)
            .map_err(|e| model_error(&path, e))?;
        optimizer
            .load_state(&saved, state.steps)
            .map_err(|e| model_error(&path, e))?;
        (trainer, run, optimizer, state)
    } else {
        for stale in ["state.json", "metrics.jsonl", "metrics.csv", "metrics.svg"] {
            let _ = std::fs::remove_file(dir.join(stale));
        }
        // An earlier run's checkpoints would otherwise outlive it (e.g. its epoch 12 when
        // this run stops at 10).
        for entry in std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with("epoch-") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let min_count = match &config.model.text {
            TextTowerConfig::Scratch(t) => t.min_count,
            TextTowerConfig::Pretrained(_) => usize::MAX,
        };
        let (vocab, train_rows, probe) = Vocab::build(
            &files,
            config.seed,
            config.data.validation_fraction,
            min_count,
        )?;
        let probe = probe.ok_or_else(|| Error::Input {
            path: options.shards.clone(),
            line: 0,
            message: "no training rows: every image fell in the validation split".into(),
        })?;
        // One loader (an image model may sit behind it) both probes the width and serves.
        let loader = ImageLoader::new(image_source(&config.model.image)?);
        let image_dim = loader.width(&probe)?;
        let words = match &config.model.text {
            TextTowerConfig::Scratch(_) => vocab.words,
            TextTowerConfig::Pretrained(_) => Vec::new(),
        };
        let run = RunConfig {
            train: config.clone(),
            vocab: words.clone(),
            image_dim,
            train_rows,
        };
        write_json_atomic(&dir.join("config.json"), &run)?;
        let text = TextSource::open(&config.model, words, &states_cache(dir))?;
        if let TextSource::States(states) = &text {
            cache_all_texts(states, &files, options.progress)?;
        }
        let trainer = Trainer::with_loader(config.clone(), text, image_dim, loader)?;
        let optimizer = new_optimizer(&trainer)?;
        let state = RunState {
            epochs_done: 0,
            steps: 0,
            config_sha256: config.sha256(),
            shards_sha256: shards,
            checkpoint: String::new(),
        };
        (trainer, run, optimizer, state)
    };

    let batch = config.optim.batch_size;
    let steps_per_epoch = run.train_rows.div_ceil(batch);
    let total_steps = steps_per_epoch * config.optim.epochs;
    let last_epoch = match options.stop_after {
        Some(n) => (state.epochs_done + n).min(config.optim.epochs),
        None => config.optim.epochs,
    };
    let mut last = None;
    for epoch in state.epochs_done..last_epoch {
        let started = Instant::now();
        let bar = crate::core::progress::progress_bar(
            options.progress,
            run.train_rows as u64,
            &format!("pairs, epoch {}/{}", epoch + 1, config.optim.epochs),
        );
        let mut stream = Shuffled::new(
            &files,
            config.seed,
            epoch as u64,
            config.data.validation_fraction,
            config.data.shuffle_buffer,
        );
        let (mut loss_sum, mut batches, mut rate) = (0.0f64, 0usize, 0.0);
        loop {
            let mut rows: Vec<(Pair, Augmented)> = Vec::with_capacity(batch);
            while rows.len() < batch {
                match stream.next_row()? {
                    Some(row) => rows.push(row),
                    None => break,
                }
            }
            // A lone row has no in-batch negative to contrast with.
            if rows.len() < 2 {
                break;
            }
            let loss = trainer.loss(&rows, epoch as u64)?;
            let err = |e| model_error(dir, e);
            let value = loss.to_scalar::<f32>().map_err(err)? as f64;
            if !value.is_finite() {
                return Err(Error::Stage {
                    stage: "train".into(),
                    message: format!("loss became {value} at step {}", optimizer.step),
                });
            }
            let grads = loss.backward().map_err(err)?;
            rate = config.optim.rate(optimizer.step, total_steps);
            optimizer.step(&grads, rate).map_err(err)?;
            loss_sum += value;
            batches += 1;
            bar.inc(rows.len() as u64);
            let seconds = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.3}, {:.0} pairs/s",
                loss_sum / batches as f64,
                bar.position() as f64 / seconds
            ));
        }
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        let report = eval::evaluate(&trainer, &files, data::Split::Validation, batch)?;
        let temperature = trainer
            .model
            .scale()
            .and_then(|s| s.to_scalar::<f32>())
            .map(|s| 1.0 / s as f64)
            .map_err(|e| model_error(dir, e))?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            steps: optimizer.step,
            train_loss: loss_sum / batches.max(1) as f64,
            learning_rate: rate,
            temperature,
            seconds,
            pairs_per_second: run.train_rows as f64 / seconds.max(1e-9),
            eval: report,
        };
        state.epochs_done = epoch + 1;
        state.steps = optimizer.step;
        checkpoint(dir, &trainer, &optimizer, &mut state, &metrics)?;
        last = Some(metrics);
    }
    Ok(last)
}

/// Computes the token states of every text of the shards (both splits) that the cache
/// lacks: captions and the texts of their items.
fn cache_all_texts(states: &TokenStates, files: &[PathBuf], progress: bool) -> Result<()> {
    let mut texts: Vec<String> = Vec::new();
    for file in files {
        for (pair, aug) in crate::store::shard::read_pairs(file)? {
            texts.push(pair.caption);
            let items = aug
                .positives
                .into_iter()
                .chain(aug.negatives)
                .chain(aug.neighbours);
            texts.extend(items.filter_map(|i| i.text));
        }
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    states.ensure(&refs, progress)?;
    Ok(())
}

fn new_optimizer(trainer: &Trainer) -> Result<AdamW> {
    let vars: Vec<(String, candle_core::Var)> = trainer
        .varmap
        .data()
        .lock()
        .map_err(|_| Error::model("<model>", "variable map lock poisoned"))?
        .iter()
        .map(|(name, var)| (name.clone(), var.clone()))
        .collect();
    AdamW::new(vars, trainer.config.optim.weight_decay)
        .map_err(|e| model_error(Path::new("<model>"), e))
}

/// Writes the epoch's weights and optimizer state into a folder of their own, then the
/// metrics, then `state.json` pointing at the new folder, then removes the old one: a
/// kill at any point leaves a consistent last epoch to resume from.
fn checkpoint(
    dir: &Path,
    trainer: &Trainer,
    optimizer: &AdamW,
    state: &mut RunState,
    metrics: &EpochMetrics,
) -> Result<()> {
    let weights: HashMap<String, Tensor> = trainer
        .varmap
        .data()
        .lock()
        .map_err(|_| Error::model(dir, "variable map lock poisoned"))?
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    let previous = std::mem::replace(&mut state.checkpoint, format!("epoch-{:04}", metrics.epoch));
    let folder = dir.join(&state.checkpoint);
    std::fs::create_dir_all(&folder).map_err(|e| Error::io(&folder, e))?;
    save_tensors(&folder.join("model.safetensors"), &weights)?;
    save_tensors(&folder.join("optimizer.safetensors"), &optimizer.state())?;
    let metrics_path = dir.join("metrics.jsonl");
    let mut history: Vec<EpochMetrics> = read_history(&metrics_path)?;
    history.retain(|m| m.epoch < metrics.epoch);
    history.push(metrics.clone());
    let lines: String = history
        .iter()
        .map(|m| serde_json::to_string(m).unwrap_or_default() + "\n")
        .collect();
    crate::core::fs::write_bytes_atomic(&metrics_path, lines.as_bytes())?;
    crate::core::fs::write_bytes_atomic(&dir.join("metrics.csv"), plot::csv(&history).as_bytes())?;
    crate::core::fs::write_bytes_atomic(&dir.join("metrics.svg"), plot::svg(&history).as_bytes())?;
    write_json_atomic(&dir.join("state.json"), state)?;
    if !previous.is_empty() && previous != state.checkpoint {
        let _ = std::fs::remove_dir_all(dir.join(previous));
    }
    Ok(())
}

pub fn read_history(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| Error::Input {
                path: path.to_path_buf(),
                line: i as u64 + 1,
                message: e.to_string(),
            })
        })
        .collect()
}

/// Several runs evaluated side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub kinds: Vec<String>,
    pub runs: Vec<(String, usize, EvalReport)>,
}

/// Evaluates the runs under `train_dir` (all, or those `names`) on `split` of the shards
/// of the run folder above it.
pub fn compare(train_dir: &Path, names: &[String], split: data::Split) -> Result<Comparison> {
    let mut names = names.to_vec();
    if names.is_empty() {
        let entries = std::fs::read_dir(train_dir).map_err(|e| Error::io(train_dir, e))?;
        names = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
    }
    let shards = train_dir.parent().unwrap_or(Path::new("."));
    let files = data::shard_files(shards)?.files;
    let mut runs = Vec::new();
    for name in names {
        let (trainer, _, state) = Trainer::load(&train_dir.join(&name))?;
        let report = eval::evaluate(&trainer, &files, split, trainer.config.optim.batch_size)?;
        runs.push((name, state.epochs_done, report));
    }
    let kinds = runs
        .iter()
        .flat_map(|(_, _, r)| r.hard_negatives.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    Ok(Comparison { kinds, runs })
}

impl Comparison {
    /// A Markdown table, percentages with one decimal.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| run | epochs | i->t R@1 | i->t R@5 | t->i R@1 | t->i R@5 |");
        for kind in &self.kinds {
            out.push_str(&format!(" {kind} |"));
        }
        out.push_str("\n|---|---|---|---|---|---|");
        out.push_str(&"---|".repeat(self.kinds.len()));
        out.push('\n');
        let pct = |x: f64| format!("{:.1}", 100.0 * x);
        for (name, epochs, r) in &self.runs {
            out.push_str(&format!(
                "| {name} | {epochs} | {} | {} | {} | {} |",
                pct(r.image_to_text[0]),
                pct(r.image_to_text[1]),
                pct(r.text_to_image[0]),
                pct(r.text_to_image[1])
            ));
            for kind in &self.kinds {
                let cell = match (r.accuracy(kind), r.hard_negatives.get(kind)) {
                    (Some(a), Some((_, n))) => format!(" {} (n={n}) |", pct(a)),
                    _ => " - |".to_string(),
                };
                out.push_str(&cell);
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sample::Item;
    use rand::{Rng, SeedableRng};

    /// Six pairs of three images with random 8-d vectors, one hard negative each.
    fn batch() -> Vec<(Pair, Augmented)> {
        let captions = [
            "a red cube left of a ball",
            "a blue ball",
            "a red cube near a ball",
            "two green stars",
            "a blue sphere",
            "green stars",
        ];
        let mut corpus = crate::core::record::test_corpus(captions);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let vectors: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..8).map(|_| rng.random_range(-1.0..1.0)).collect())
            .collect();
        for (i, pair) in corpus.pairs.iter_mut().enumerate() {
            pair.image_id = (i % 3).to_string();
            pair.image_vector = Some(vectors[i % 3].clone());
        }
        corpus
            .pairs
            .into_iter()
            .map(|p| {
                let negative = Item {
                    text: Some(format!("not {}", p.caption)),
                    ref_id: None,
                    kind: "tfidf".into(),
                    generator: "t".into(),
                    params: "{}".into(),
                    score: 0.0,
                };
                let aug = Augmented {
                    negatives: vec![negative],
                    ..Augmented::default()
                };
                (p, aug)
            })
            .collect()
    }

    fn tiny() -> TrainConfig {
        let mut config = TrainConfig::default();
        config.model.image = ImageTowerConfig::Mlp {
            embeddings: crate::embed::image::ImageEmbeddingConfig::Precomputed { path: None },
            hidden: 16,
        };
        config.model.text = TextTowerConfig::Scratch(model::ScratchTextConfig {
            dim: 16,
            layers: 1,
            heads: 2,
            max_len: 16,
            min_count: 1,
        });
        config.model.embed_dim = 8;
        config
    }

    fn vocab(rows: &[(Pair, Augmented)]) -> TextSource {
        let mut counts = std::collections::BTreeMap::new();
        for (p, a) in rows {
            let texts = std::iter::once(p.caption.as_str())
                .chain(a.negatives.iter().filter_map(|i| i.text.as_deref()));
            for word in texts.flat_map(Vocab::words_of) {
                *counts.entry(word).or_insert(0) += 1;
            }
        }
        TextSource::Vocab(Vocab::from_counts(&counts, 1))
    }

    #[test]
    fn one_step_lowers_the_loss_and_the_seed_fixes_everything() {
        let rows = batch();
        let trainer = Trainer::new(tiny(), vocab(&rows), 8).unwrap();
        let value = |t: &Trainer| t.loss(&rows, 0).unwrap().to_scalar::<f32>().unwrap();
        let before = value(&trainer);
        let mut optimizer = new_optimizer(&trainer).unwrap();
        let grads = trainer.loss(&rows, 0).unwrap().backward().unwrap();
        optimizer.step(&grads, 1e-2).unwrap();
        let after = value(&trainer);
        assert!(after < before, "{before} -> {after}");

        let again = Trainer::new(tiny(), vocab(&rows), 8).unwrap();
        assert_eq!(value(&again), before);
        let other_seed = TrainConfig { seed: 2, ..tiny() };
        assert_ne!(
            value(&Trainer::new(other_seed, vocab(&rows), 8).unwrap()),
            before
        );
    }
}

#[cfg(test)]
mod pretrained_tests {
    use super::*;
    use crate::embed::text::{cosine, TextEncoder};

    /// Before training, a MiniLM-initialised tower gives MiniLM's own sentence vectors,
    /// whichever of its layers train (the trainable layers are the checkpoint's, the
    /// head blocks the identity, the pooling a mean, the projection the identity).
    #[test]
    fn an_untrained_pretrained_tower_reproduces_the_sentence_vectors() {
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        let texts = [
            "a red cube to the left of a blue sphere",
            "A man riding a horse on a beach.",
            "two dogs",
        ];
        let expected = TextEncoder::load(&model).unwrap().encode(&texts).unwrap();
        for train_layers in [0, 2] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = TrainConfig::default();
            config.model.image = ImageTowerConfig::Mlp {
                embeddings: crate::embed::image::ImageEmbeddingConfig::Precomputed { path: None },
                hidden: 8,
            };
            config.model.embed_dim = 384;
            config.model.text = TextTowerConfig::Pretrained(model::PretrainedTextConfig {
                model: model.clone(),
                train_layers,
                head_layers: 1,
                heads: 6,
                max_len: 32,
            });
            let text = TextSource::open(&config.model, Vec::new(), dir.path()).unwrap();
            let trainer = Trainer::new(config, text, 8).unwrap();
            let got = trainer.embed_texts(&texts).unwrap();
            for (g, e) in got.iter().zip(&expected) {
                let c = cosine(g, e);
                assert!(c > 0.9999, "train_layers {train_layers}: cosine {c}");
            }
        }
    }
}
