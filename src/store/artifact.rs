//! The one scheme for every corpus-wide artifact of a run (the TF-IDF index, the caption
//! language model, the HNSW indexes, the BM25 index): a versioned, checksummed file or
//! folder under `OUT/index/`, listed in `OUT/index/manifest.json` with the SHA-256 of
//! the inputs it was built from. It is reused while its inputs, format version and
//! bytes are unchanged, rebuilt otherwise, and built once (by `cmcl index`, `cmcl plan`
//! or a whole run): the workers of a shard plan only load.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::layout::INDEX_MANIFEST;
use crate::core::error::{Error, Result};
use crate::core::fs::{hex, remove_temp_files, sha256_path, size_of_path, write_json_atomic};

/// Whether a missing or stale artifact may be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexPolicy {
    /// Build what is missing: a whole run, `cmcl index`, `cmcl plan`.
    Build,
    /// Reuse only: a worker of a shard plan must see the artifacts `cmcl plan` built, as
    /// every other worker does (a parallel build is not byte-reproducible).
    ReuseOnly,
}

/// What an artifact's kind says about one artifact (counts, dimensions, parameters).
pub type Details = BTreeMap<String, serde_json::Value>;

/// One artifact's entry in the index manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// The file or folder under the index folder.
    pub file: String,
    /// The format's version; a build that reads another version rebuilds.
    pub format_version: u32,
    /// SHA-256 over the settings and every input that shaped it.
    pub inputs_sha256: String,
    /// SHA-256 of the file, or of a folder's files (see [`sha256_path`]).
    pub file_sha256: String,
    pub bytes: u64,
    pub build_seconds: f64,
    #[serde(default, skip_serializing_if = "Details::is_empty")]
    pub details: Details,
}

/// `OUT/index/manifest.json`: every artifact of the run by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IndexManifest {
    pub artifacts: BTreeMap<String, ArtifactRecord>,
}

impl IndexManifest {
    /// The manifest in `dir`; empty when missing or unreadable, so everything rebuilds.
    pub fn load(dir: &Path) -> IndexManifest {
        std::fs::read(dir.join(INDEX_MANIFEST))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        write_json_atomic(&dir.join(INDEX_MANIFEST), self)
    }

    pub fn get(&self, name: &str) -> Option<&ArtifactRecord> {
        self.artifacts.get(name)
    }
}

/// A freshly built artifact and what the manifest should say of it.
pub struct Built<T> {
    pub value: T,
    pub details: Details,
}

/// How to make and read one kind of artifact.
pub struct Artifact<'a, T> {
    /// Its key in the index manifest.
    pub name: &'a str,
    /// The file or folder under the index folder.
    pub file: &'a str,
    pub format_version: u32,
    /// Builds the artifact and writes it to the given path, atomically.
    pub build: &'a dyn Fn(&Path) -> Result<Built<T>>,
    pub load: &'a dyn Fn(&Path) -> Result<T>,
}

/// An artifact, loaded or built, with its manifest entry.
pub struct Opened<T> {
    pub value: T,
    pub record: ArtifactRecord,
    /// Built by this call rather than reused.
    pub built: bool,
}

impl<T> Opened<T> {
    /// "built in 1.2 s" or "unchanged, reused", for messages.
    pub fn status(&self) -> String {
        match self.built {
            true => format!("built in {:.1} s", self.record.build_seconds),
            false => "unchanged, reused".to_string(),
        }
    }
}

impl<T> Artifact<'_, T> {
    /// Loads the artifact under `dir` when the manifest says it was built from these
    /// inputs in this format and its bytes are intact; otherwise builds and records it
    /// (an error instead under [`IndexPolicy::ReuseOnly`]).
    pub fn build_or_open(
        &self,
        dir: &Path,
        inputs_sha256: &str,
        policy: IndexPolicy,
    ) -> Result<Opened<T>> {
        let path = dir.join(self.file);
        let mut manifest = IndexManifest::load(dir);
        let current = manifest.get(self.name).filter(|r| {
            r.inputs_sha256 == inputs_sha256 && r.format_version == self.format_version
        });
        if let Some(record) = current {
            let intact = sha256_path(&path).is_ok_and(|s| s == record.file_sha256);
            if let Some(value) = intact.then(|| (self.load)(&path).ok()).flatten() {
                return Ok(Opened {
                    value,
                    record: record.clone(),
                    built: false,
                });
            }
        }
        if policy == IndexPolicy::ReuseOnly {
            return Err(not_prebuilt(dir, self.file));
        }
        // A killed build's temp files go first (the caller holds the output lock).
        remove_temp_files(dir)?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let started = Instant::now();
        let Built { value, details } = (self.build)(&path)?;
        let record = ArtifactRecord {
            file: self.file.to_string(),
            format_version: self.format_version,
            inputs_sha256: inputs_sha256.to_string(),
            file_sha256: sha256_path(&path)?,
            bytes: size_of_path(&path)?,
            build_seconds: started.elapsed().as_secs_f64(),
            details,
        };
        manifest
            .artifacts
            .insert(self.name.to_string(), record.clone());
        manifest.save(dir)?;
        Ok(Opened {
            value,
            record,
            built: true,
        })
    }
}

/// The error of a worker that finds an artifact missing or stale.
pub fn not_prebuilt(dir: &Path, file: &str) -> Error {
    Error::Index {
        message: format!(
            "{} is missing or was built from other inputs; a worker of a shard plan only \
             reuses indexes: run `cmcl plan` again",
            dir.join(file).display()
        ),
    }
}

/// SHA-256 of an artifact's inputs: the settings, then each input, each length-prefixed
/// so that no two lists of inputs hash alike.
pub struct InputsHasher(Sha256);

impl InputsHasher {
    pub fn new(settings: &str) -> InputsHasher {
        let mut hasher = InputsHasher(Sha256::new());
        hasher.add(settings.as_bytes());
        hasher
    }

    pub fn add(&mut self, input: &[u8]) {
        self.0.update((input.len() as u64).to_le_bytes());
        self.0.update(input);
    }

    pub fn finish(self) -> String {
        hex(&self.0.finalize())
    }
}

/// [`InputsHasher`] over `settings` and a list of texts.
pub fn inputs_sha256<'t>(settings: &str, texts: impl IntoIterator<Item = &'t str>) -> String {
    let mut hasher = InputsHasher::new(settings);
    for text in texts {
        hasher.add(text.as_bytes());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fs::write_bytes_atomic;
    use std::cell::Cell;

    fn artifact<'a>(build: &'a dyn Fn(&Path) -> Result<Built<String>>) -> Artifact<'a, String> {
        Artifact {
            name: "words",
            file: "words.txt",
            format_version: 1,
            build,
            load: &|p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p, e)),
        }
    }

    #[test]
    fn built_once_reused_rebuilt_on_change_and_refused_to_workers() {
        let dir = tempfile::tempdir().unwrap();
        let builds = Cell::new(0);
        let build = |path: &Path| {
            builds.set(builds.get() + 1);
            let value = format!("built {}", builds.get());
            write_bytes_atomic(path, value.as_bytes())?;
            let details = Details::from([("n".to_string(), builds.get().into())]);
            Ok(Built { value, details })
        };
        let a = artifact(&build);
        let open = |a: &Artifact<String>, sum: &str, policy| {
            a.build_or_open(dir.path(), sum, policy).map(|o| o.value)
        };
        let sum = inputs_sha256("k=1", ["a", "b"]);
        assert_ne!(sum, inputs_sha256("k=1", ["ab"]));
        assert_eq!(open(&a, &sum, IndexPolicy::Build).unwrap(), "built 1");
        let reused = a
            .build_or_open(dir.path(), &sum, IndexPolicy::ReuseOnly)
            .unwrap();
        assert_eq!((reused.value.as_str(), reused.built), ("built 1", false));
        let record = IndexManifest::load(dir.path()).artifacts["words"].clone();
        assert_eq!((record.file.as_str(), record.bytes), ("words.txt", 7));
        assert_eq!(record.details["n"], 1);

        // Other inputs: a worker refuses, a build rebuilds.
        let other = inputs_sha256("k=2", ["a", "b"]);
        let err = open(&a, &other, IndexPolicy::ReuseOnly).unwrap_err();
        assert!(err.to_string().contains("words.txt"), "{err}");
        assert_eq!(open(&a, &other, IndexPolicy::Build).unwrap(), "built 2");

        // A changed file no longer matches its checksum.
        std::fs::write(dir.path().join("words.txt"), "tampered").unwrap();
        assert!(open(&a, &other, IndexPolicy::ReuseOnly).is_err());
        assert_eq!(open(&a, &other, IndexPolicy::Build).unwrap(), "built 3");

        // Another format version rebuilds too.
        let newer = Artifact {
            format_version: 2,
            ..artifact(&build)
        };
        assert_eq!(open(&newer, &other, IndexPolicy::Build).unwrap(), "built 4");
        assert_eq!(builds.get(), 4);
    }

    #[test]
    fn a_folder_artifact_is_checksummed_over_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let build = |path: &Path| {
            std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
            write_bytes_atomic(&path.join("a"), b"one")?;
            write_bytes_atomic(&path.join("b"), b"two")?;
            Ok(Built {
                value: String::new(),
                details: Details::new(),
            })
        };
        let a = Artifact {
            file: "folder",
            load: &sha256_path,
            ..artifact(&build)
        };
        let sum = inputs_sha256("", []);
        a.build_or_open(dir.path(), &sum, IndexPolicy::Build)
            .unwrap();
        let record = IndexManifest::load(dir.path()).artifacts["words"].clone();
        assert_eq!(record.bytes, 6);
        // Hidden files (a reader's lock files) do not count; a changed file does.
        std::fs::write(dir.path().join("folder/.lock"), "x").unwrap();
        assert!(a
            .build_or_open(dir.path(), &sum, IndexPolicy::ReuseOnly)
            .is_ok());
        std::fs::write(dir.path().join("folder/b"), "changed").unwrap();
        assert!(a
            .build_or_open(dir.path(), &sum, IndexPolicy::ReuseOnly)
            .is_err());
    }
}
