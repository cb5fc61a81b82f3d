//! Corpus-wide tables that stages derive from the whole corpus (the TF-IDF index, the
//! caption language model), kept as versioned, checksummed files under `OUT/index/`
//! beside the HNSW and BM25 indexes. Built once (by `cmcl index`, `cmcl plan` or a
//! whole run) and loaded by everyone else: the workers of a shard plan never derive
//! them on their own.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::retrieval::index::{not_prebuilt, IndexManifest};
use crate::stage::IndexPolicy;

/// One artifact's line in `OUT/index/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub file: String,
    /// The file format's version; a build that reads another version rebuilds.
    pub format_version: u32,
    /// SHA-256 over the settings and every input text that shaped it.
    pub inputs_sha256: String,
    pub file_sha256: String,
    pub bytes: u64,
    pub build_seconds: f64,
}

/// How to make, write and read one kind of artifact.
pub struct Artifact<'a, T> {
    pub file: &'a str,
    pub format_version: u32,
    /// Its slot in the index manifest.
    pub slot: fn(&mut IndexManifest) -> &mut Option<ArtifactRecord>,
    pub build: &'a dyn Fn() -> Result<T>,
    pub save: &'a dyn Fn(&T, &Path) -> Result<()>,
    pub load: &'a dyn Fn(&Path) -> Result<T>,
}

impl<T> Artifact<'_, T> {
    /// Loads the artifact under `dir` when the manifest says it was built from these
    /// inputs in this format and the file is intact; otherwise builds and records it
    /// (an error instead under [`IndexPolicy::ReuseOnly`]).
    pub fn build_or_open(&self, dir: &Path, inputs_sha256: &str, policy: IndexPolicy) -> Result<T> {
        let path = dir.join(self.file);
        let mut manifest = IndexManifest::load(dir);
        let current = (self.slot)(&mut manifest).as_ref().filter(|r| {
            r.inputs_sha256 == inputs_sha256 && r.format_version == self.format_version
        });
        if let Some(record) = current {
            let intact = crate::fsutil::sha256_file(&path).is_ok_and(|s| s == record.file_sha256);
            if let Some(value) = intact.then(|| (self.load)(&path).ok()).flatten() {
                return Ok(value);
            }
        }
        if policy == IndexPolicy::ReuseOnly {
            return Err(not_prebuilt(dir, self.file));
        }
        // A killed build's temp files go first (the caller holds the output lock).
        crate::fsutil::remove_temp_files(dir)?;
        let started = Instant::now();
        let value = (self.build)()?;
        std::fs::create_dir_all(dir).map_err(|e| crate::error::Error::io(dir, e))?;
        (self.save)(&value, &path)?;
        let bytes = std::fs::metadata(&path)
            .map_err(|e| crate::error::Error::io(&path, e))?
            .len();
        *(self.slot)(&mut manifest) = Some(ArtifactRecord {
            file: self.file.to_string(),
            format_version: self.format_version,
            inputs_sha256: inputs_sha256.to_string(),
            file_sha256: crate::fsutil::sha256_file(&path)?,
            bytes,
            build_seconds: started.elapsed().as_secs_f64(),
        });
        manifest.save(dir)?;
        Ok(value)
    }
}

/// SHA-256 over `settings` and then each text, length-prefixed so that no two lists of
/// texts hash alike.
pub fn inputs_sha256<'t>(settings: &str, texts: impl IntoIterator<Item = &'t str>) -> String {
    let mut h = Sha256::new();
    h.update((settings.len() as u64).to_le_bytes());
    h.update(settings.as_bytes());
    for t in texts {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    crate::fsutil::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn artifact(build: &dyn Fn() -> Result<String>) -> Artifact<'_, String> {
        Artifact {
            file: "words.txt",
            format_version: 1,
            slot: |m| &mut m.tfidf,
            build,
            save: &|s: &String, p: &Path| crate::fsutil::write_bytes_atomic(p, s.as_bytes()),
            load: &|p: &Path| std::fs::read_to_string(p).map_err(|e| crate::error::Error::io(p, e)),
        }
    }

    #[test]
    fn built_once_reused_rebuilt_on_change_and_refused_to_workers() {
        let dir = tempfile::tempdir().unwrap();
        let builds = Cell::new(0);
        let build = || {
            builds.set(builds.get() + 1);
            Ok(format!("built {}", builds.get()))
        };
        let a = artifact(&build);
        let sum = inputs_sha256("k=1", ["a", "b"]);
        assert_ne!(sum, inputs_sha256("k=1", ["ab"]));
        assert_eq!(
            a.build_or_open(dir.path(), &sum, IndexPolicy::Build)
                .unwrap(),
            "built 1"
        );
        assert_eq!(
            a.build_or_open(dir.path(), &sum, IndexPolicy::ReuseOnly)
                .unwrap(),
            "built 1"
        );
        let record = IndexManifest::load(dir.path()).tfidf.unwrap();
        assert_eq!((record.file.as_str(), record.bytes), ("words.txt", 7));

        // Other inputs: a worker refuses, a build rebuilds.
        let other = inputs_sha256("k=2", ["a", "b"]);
        let err = a
            .build_or_open(dir.path(), &other, IndexPolicy::ReuseOnly)
            .unwrap_err();
        assert!(err.to_string().contains("words.txt"), "{err}");
        assert_eq!(
            a.build_or_open(dir.path(), &other, IndexPolicy::Build)
                .unwrap(),
            "built 2"
        );

        // A changed file no longer matches its checksum.
        std::fs::write(dir.path().join("words.txt"), "tampered").unwrap();
        assert!(a
            .build_or_open(dir.path(), &other, IndexPolicy::ReuseOnly)
            .is_err());
        assert_eq!(
            a.build_or_open(dir.path(), &other, IndexPolicy::Build)
                .unwrap(),
            "built 3"
        );

        // Another format version rebuilds too.
        let newer = Artifact {
            format_version: 2,
            ..artifact(&build)
        };
        assert_eq!(
            newer
                .build_or_open(dir.path(), &other, IndexPolicy::Build)
                .unwrap(),
            "built 4"
        );
        assert_eq!(builds.get(), 4);
    }
}
