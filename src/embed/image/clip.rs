//! CLIP's image tower (candle-transformers) as an [`ImageEmbedder`]. A model folder holds
//! Hugging Face's `config.json` (CLIPConfig: `text_config`, `vision_config`,
//! `projection_dim`) and `model.safetensors`, e.g. openai/clip-vit-base-patch32.
//! Preprocessing is CLIP's: shortest side resized to `image_size` (Catmull-Rom, as
//! bicubic), centre crop, scale to [0, 1], normalise by OpenAI's channel mean and std.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::clip::{
    text_model::{Activation, ClipTextConfig},
    vision_model::ClipVisionConfig,
    ClipConfig, ClipModel,
};
use serde::Deserialize;

use super::{decode, ImageEmbedder, ImageRef};
use crate::core::error::{Error, Result};

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// The parts of Hugging Face's CLIPConfig that candle's model needs.
#[derive(Debug, Deserialize)]
struct HfConfig {
    projection_dim: usize,
    #[serde(default = "default_logit_scale")]
    logit_scale_init_value: f32,
    text_config: HfTower,
    vision_config: HfTower,
}

#[derive(Debug, Deserialize)]
struct HfTower {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    vocab_size: usize,
    #[serde(default)]
    max_position_embeddings: usize,
    #[serde(default)]
    image_size: usize,
    #[serde(default)]
    patch_size: usize,
}

fn default_logit_scale() -> f32 {
    2.6592
}

fn default_act() -> String {
    "quick_gelu".into()
}

impl HfConfig {
    fn to_candle(&self, path: &Path) -> Result<ClipConfig> {
        for (tower, act) in [
            ("text", &self.text_config.hidden_act),
            ("vision", &self.vision_config.hidden_act),
        ] {
            if act != "quick_gelu" {
                return Err(Error::model(
                    path,
                    format!("{tower}_config.hidden_act {act:?}: candle's CLIP has quick_gelu only"),
                ));
            }
        }
        let (t, v) = (&self.text_config, &self.vision_config);
        if v.image_size == 0 || v.patch_size == 0 || v.image_size % v.patch_size != 0 {
            return Err(Error::model(
                path,
                format!(
                    "vision_config: image_size {} is not a multiple of patch_size {}",
                    v.image_size, v.patch_size
                ),
            ));
        }
        Ok(ClipConfig {
            text_config: ClipTextConfig {
                vocab_size: t.vocab_size,
                embed_dim: t.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: t.intermediate_size,
                max_position_embeddings: t.max_position_embeddings,
                pad_with: None,
                num_hidden_layers: t.num_hidden_layers,
                num_attention_heads: t.num_attention_heads,
                projection_dim: self.projection_dim,
            },
            vision_config: ClipVisionConfig {
                embed_dim: v.hidden_size,
                activation: Activation::QuickGelu,
                intermediate_size: v.intermediate_size,
                num_hidden_layers: v.num_hidden_layers,
                num_attention_heads: v.num_attention_heads,
                projection_dim: self.projection_dim,
                num_channels: 3,
                image_size: v.image_size,
                patch_size: v.patch_size,
            },
            logit_scale_init_value: self.logit_scale_init_value,
            image_size: v.image_size,
        })
    }
}

/// A loaded CLIP model, embedding images with its vision tower and projection.
pub struct Clip {
    model: ClipModel,
    image_size: usize,
    id: String,
    dir: PathBuf,
    device: Device,
}

impl Clip {
    pub fn load(dir: &Path) -> Result<Clip> {
        let config_path = dir.join(CONFIG_FILE);
        let weights = dir.join(WEIGHTS_FILE);
        for file in [&config_path, &weights] {
            if !file.exists() {
                return Err(Error::model(
                    dir,
                    format!(
                        "missing {} (a CLIP folder has {CONFIG_FILE} and {WEIGHTS_FILE})",
                        file.display()
                    ),
                ));
            }
        }
        let text = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let hf: HfConfig = serde_json::from_slice(&text)
            .map_err(|e| Error::model(&config_path, format!("not a CLIP config: {e}")))?;
        let config = hf.to_candle(&config_path)?;
        let device = Device::Cpu;
        // SAFETY: the weights file is memory-mapped read-only and not modified while loaded.
        let vb = unsafe {
            candle_nn::VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device)
        }
        .map_err(|e| Error::model(&weights, e))?;
        let model = ClipModel::new(vb, &config).map_err(|e| Error::model(&weights, e))?;
        let sum = crate::core::fs::sha256_file(&weights)?;
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        Ok(Clip {
            model,
            image_size: config.image_size,
            id: format!("clip/{name}@{}", &sum[..8]),
            dir: dir.to_path_buf(),
            device,
        })
    }

    /// CLIP's preprocessing of the image file at `path`: a (3, size, size) tensor.
    fn pixels(&self, path: &Path) -> Result<Tensor> {
        let image = decode(path)?;
        let size = self.image_size as u32;
        let (w, h) = (image.width(), image.height());
        let scale = size as f32 / w.min(h) as f32;
        let (rw, rh) = (
            ((w as f32 * scale).round() as u32).max(size),
            ((h as f32 * scale).round() as u32).max(size),
        );
        let resized =
            image::imageops::resize(&image, rw, rh, image::imageops::FilterType::CatmullRom);
        let (x0, y0) = ((rw - size) / 2, (rh - size) / 2);
        let cropped = image::imageops::crop_imm(&resized, x0, y0, size, size).to_image();
        let plane = (size * size) as usize;
        let mut data = vec![0f32; 3 * plane];
        for (i, pixel) in cropped.pixels().enumerate() {
            for c in 0..3 {
                data[c * plane + i] = (f32::from(pixel[c]) / 255.0 - MEAN[c]) / STD[c];
            }
        }
        Tensor::from_vec(data, (3, size as usize, size as usize), &self.device)
            .map_err(|e| Error::model(&self.dir, e))
    }
}

impl ImageEmbedder for Clip {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn embed(&self, image: &ImageRef) -> Result<Vec<f32>> {
        let path = image.image_path.ok_or_else(|| Error::Stage {
            stage: "retrieval".into(),
            message: format!(
                "image {} has no image_path; CLIP needs pixels",
                image.image_id
            ),
        })?;
        let pixels = self.pixels(Path::new(path))?.unsqueeze(0);
        let features = pixels
            .and_then(|p| self.model.get_image_features(&p))
            .and_then(|f| f.squeeze(0))
            .and_then(|f| f.to_vec1::<f32>())
            .map_err(|e| Error::model(&self.dir, e))?;
        Ok(features)
    }
}

/// Tiny random CLIP folders for tests and benchmarks (no real weights can be fetched).
pub mod testing {
    use super::*;

    /// Writes a CLIP folder: image 32, patch 8, width 16, 2 heads, 1 layer per tower,
    /// projection `projection_dim`; weights drawn from `seed`.
    pub fn write_tiny_clip(dir: &Path, projection_dim: usize, seed: u64) -> Result<()> {
        let tower = |extra: serde_json::Value| {
            let mut t = serde_json::json!({
                "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                "num_attention_heads": 2, "hidden_act": "quick_gelu",
            });
            if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
                t.extend(extra.clone());
            }
            t
        };
        let json = serde_json::json!({
            "model_type": "clip",
            "projection_dim": projection_dim,
            "text_config": tower(serde_json::json!({ "vocab_size": 64, "max_position_embeddings": 16 })),
            "vision_config": tower(serde_json::json!({ "image_size": 32, "patch_size": 8 })),
        });
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let config_path = dir.join(CONFIG_FILE);
        let hf: HfConfig =
            serde_json::from_value(json.clone()).map_err(|e| Error::model(&config_path, e))?;
        let config = hf.to_candle(&config_path)?;
        std::fs::write(&config_path, json.to_string()).map_err(|e| Error::io(&config_path, e))?;
        crate::embed::random_weights::write(
            &dir.join(WEIGHTS_FILE),
            seed,
            |vb| ClipModel::new(vb, &config).map(drop),
            |name| {
                let norm = name.contains("layer_norm")
                    || name.contains("layrnorm")
                    || name.contains("layernorm");
                norm.then(|| f32::from(name.ends_with(".weight")))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coco_images() -> Vec<String> {
        let dir = crate::test_data_dir().join("coco-mini/val2017");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path().to_string_lossy().into_owned())
            .collect();
        files.sort();
        files.truncate(3);
        files
    }

    #[test]
    fn tiny_random_clip_embeds_real_jpegs_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        testing::write_tiny_clip(dir.path(), 12, 5).unwrap();
        let clip = Clip::load(dir.path()).unwrap();
        let embed = |path: &str| {
            clip.embed(&ImageRef {
                image_id: "x",
                image_path: Some(path),
                image_vector: None,
            })
            .unwrap()
        };
        let files = coco_images();
        let vectors: Vec<Vec<f32>> = files.iter().map(|f| embed(f)).collect();
        assert!(vectors
            .iter()
            .all(|v| v.len() == 12 && v.iter().all(|x| x.is_finite())));
        assert_ne!(vectors[0], vectors[1]);
        assert_eq!(embed(&files[0]), vectors[0]);
        // Another model (seed) gives another id and other vectors.
        let other_dir = tempfile::tempdir().unwrap();
        testing::write_tiny_clip(other_dir.path(), 12, 6).unwrap();
        let other = Clip::load(other_dir.path()).unwrap();
        assert_ne!(other.id(), clip.id());
    }

    #[test]
    fn bad_folders_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = Clip::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("missing") && err.contains(CONFIG_FILE),
            "{err}"
        );
        testing::write_tiny_clip(dir.path(), 12, 5).unwrap();
        let config = dir.path().join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, text.replace("quick_gelu", "gelu")).unwrap();
        let err = Clip::load(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("config.json") && err.contains("quick_gelu"),
            "{err}"
        );
        std::fs::write(&config, text).unwrap();
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"garbage").unwrap();
        let err = Clip::load(dir.path()).err().unwrap().to_string();
        assert!(err.contains(WEIGHTS_FILE), "{err}");
    }
}
