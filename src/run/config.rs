//! Pipeline configuration: what to read, which stages to run in which order, how to
//! write. Parsed from TOML with `deny_unknown_fields` everywhere so a typo is an error,
//! not a silently ignored setting. Runtime knobs (threads, output dir, progress) are CLI
//! flags, not part of this file, so the same pipeline gives the same bytes anywhere.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::core::error::{Error, Result};
use crate::core::fs::hex;
use crate::ingest::check_images;
use crate::ingest::config::{Format, IngestConfig, Inputs, Source};
use crate::ingest::webdataset::expand_braces;
use crate::stages::StageConfig;
use crate::train::model::{ImageTowerConfig, TextTowerConfig};
use crate::train::TrainConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Name used for the default output directory (`out/<name>`).
    pub name: String,
    /// Seed of every random choice a stage makes.
    #[serde(default)]
    pub seed: u64,
    pub inputs: Inputs,
    #[serde(default)]
    pub ingest: IngestConfig,
    /// Stages, run in this order on every shard.
    #[serde(default)]
    pub stages: Vec<StageConfig>,
    #[serde(default)]
    pub output: OutputConfig,
    /// The bundled trainer (`cmcl train`); it reads this run's shards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub rows_per_shard: usize,
    /// Also export every shard as Parquet beside the Arrow IPC file.
    pub parquet: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            rows_per_shard: 1000,
            parquet: false,
        }
    }
}

impl Pipeline {
    /// Reads, expands and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        // Absolute paths in the run, so shards and manifests name files unambiguously.
        let path = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path)
    }

    /// Parses pipeline TOML; relative paths resolve against `origin`'s folder.
    pub fn parse(text: &str, origin: &Path) -> Result<Pipeline> {
        let mut pipeline: Pipeline =
            toml::from_str(text).map_err(|e| Error::config(origin, e.to_string()))?;
        let base = origin.parent().unwrap_or(Path::new("."));
        for source in pipeline.sources_mut() {
            source.path = resolve(&source.path, base, origin)?;
            if let Some(dir) = &source.images_dir {
                source.images_dir = Some(resolve(dir, base, origin)?);
            }
            if let Some(instances) = &source.instances {
                source.instances = Some(resolve(instances, base, origin)?);
            }
        }
        for stage in &mut pipeline.stages {
            for path in stage.spec_mut().paths_mut() {
                *path = resolve(path, base, origin)?;
            }
        }
        if let Some(train) = &mut pipeline.train {
            if let ImageTowerConfig::Mlp { embeddings, .. } = &mut train.model.image {
                for path in embeddings.paths_mut() {
                    *path = resolve(path, base, origin)?;
                }
            }
            if let TextTowerConfig::Pretrained(text) = &mut train.model.text {
                text.model = resolve(&text.model, base, origin)?;
            }
        }
        pipeline.validate(origin)?;
        Ok(pipeline)
    }

    fn sources(&self) -> impl Iterator<Item = &Source> {
        let inputs = &self.inputs;
        inputs
            .pairs
            .iter()
            .chain(&inputs.image_corpus)
            .chain(&inputs.text_corpus)
    }

    fn sources_mut(&mut self) -> impl Iterator<Item = &mut Source> {
        let inputs = &mut self.inputs;
        inputs
            .pairs
            .iter_mut()
            .chain(inputs.image_corpus.iter_mut())
            .chain(inputs.text_corpus.iter_mut())
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let fail = |m: String| Err(Error::config(origin, m));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_alphanumeric() || "-_.".contains(c))
        {
            return fail(format!(
                "name {:?} must be non-empty letters, digits, '-', '_' or '.'",
                self.name
            ));
        }
        if self.inputs.pairs.is_empty() {
            return fail("inputs.pairs needs at least one source".into());
        }
        if self.output.rows_per_shard == 0 {
            return fail("output.rows_per_shard must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.ingest.max_reject_share) {
            return fail("ingest.max_reject_share must be between 0 and 1".into());
        }
        for source in &self.inputs.image_corpus {
            if matches!(source.format, Format::Coco | Format::Flickr8k) {
                return fail(format!(
                    "image_corpus {}: use jsonl, csv or parquet for image-only corpora",
                    source.path.display()
                ));
            }
        }
        for source in self.sources() {
            let is_webdataset = source.format == Format::Webdataset;
            if source.webdataset.is_some() && !is_webdataset {
                return fail(format!(
                    "{}: webdataset options need format = \"webdataset\"",
                    source.path.display()
                ));
            }
            if is_webdataset {
                if let Err(why) = expand_braces(&source.path.to_string_lossy()) {
                    return fail(why);
                }
            }
        }
        for stage in &self.stages {
            stage
                .spec()
                .validate()
                .map_err(|m| Error::config(origin, format!("stage {}: {m}", stage.name())))?;
        }
        if let Some(train) = &self.train {
            train
                .validate()
                .map_err(|m| Error::config(origin, format!("train: {m}")))?;
        }
        Ok(())
    }

    /// Fails, before anything is ingested, when a stage needs images (pixels or vectors)
    /// that a pair source's records do not carry; a caption-only run must ask for
    /// none (`image_k = 0`).
    pub fn check_image_inputs(&self, origin: &Path) -> Result<()> {
        for stage in &self.stages {
            let Some(need) = stage.spec().image_need() else {
                continue;
            };
            for source in &self.inputs.pairs {
                if let Err(why) = check_images(source, need)? {
                    return Err(Error::config(
                        origin,
                        format!(
                            "stage {} needs {}, but inputs.pairs {} gives none: {why} \
                             (a caption-only run sets image_k = 0)",
                            stage.name(),
                            need.describe(),
                            source.path.display()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stable hash of everything that determines the output bytes (so not the trainer's
    /// settings: changing them must not redo the shards).
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let shards_only = Pipeline {
            train: None,
            ..self.clone()
        };
        let json = serde_json::to_vec(&shards_only).unwrap_or_default();
        hex(&Sha256::digest(json))
    }
}

/// Expands `${VAR}` / `${VAR:-default}` and makes the path absolute against `base`.
fn resolve(path: &Path, base: &Path, origin: &Path) -> Result<PathBuf> {
    let text = path.to_string_lossy();
    let expanded = expand_env(&text).map_err(|m| Error::config(origin, m))?;
    Ok(normalize(&base.join(expanded)))
}

/// Drops `.` and folds `dir/..` without touching the filesystem (the file may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn expand_env(text: &str) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed '${{' in path {text:?}"))?;
        let spec = &after[..end];
        let (name, default) = match spec.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (spec, None),
        };
        match (std::env::var(name), default) {
            (Ok(v), _) if !v.is_empty() => out.push_str(&v),
            (_, Some(d)) => out.push_str(d),
            _ => {
                return Err(format!(
                    "environment variable {name} (used in path {text:?}) is not set"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "t"
[[inputs.pairs]]
format = "jsonl"
path = "pairs.jsonl"
"#;

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let p = Pipeline::parse(MINIMAL, Path::new("/a/b/p.toml")).unwrap();
        assert_eq!(p.inputs.pairs[0].path, PathBuf::from("/a/b/pairs.jsonl"));
        assert_eq!(p.output.rows_per_shard, 1000);
    }

    #[test]
    fn unknown_fields_are_errors() {
        let text = format!("{MINIMAL}\n[output]\nrows_per_shard = 5\nrows_per_shrd = 3\n");
        let err = Pipeline::parse(&text, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rows_per_shrd"), "{err}");
        let text = format!("{MINIMAL}\n[[stages]]\ntype = \"tfidf\"\nkk = 3\n");
        let err = Pipeline::parse(&text, Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kk"), "{err}");
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            normalize(Path::new("/a/b/../../c/./d")),
            PathBuf::from("/c/d")
        );
        assert_eq!(normalize(Path::new("../x/../y")), PathBuf::from("../y"));
    }

    #[test]
    fn env_expansion() {
        assert_eq!(expand_env("${CMCL_SURELY_UNSET:-x}/y").unwrap(), "x/y");
        assert!(expand_env("${CMCL_SURELY_UNSET}/y").is_err());
        assert!(expand_env("${oops").is_err());
    }
}
