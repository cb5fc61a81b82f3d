//! A content-addressed translation cache on disk, so re-runs and resumed runs never
//! translate the same text twice.
//!
//! The key is SHA-256 over the translator id (backend, model, direction: the pivot is
//! part of the direction) and the text. Entries are appended to one JSON-lines log and
//! loaded into memory when the cache opens; a line torn by a crash is skipped on load
//! (the translation is simply redone), so the log never needs repair.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::error::{Error, Result};

pub const FILE_NAME: &str = "translations.jsonl";

#[derive(Serialize, Deserialize)]
struct Entry {
    k: String,
    v: String,
}

pub struct TranslationCache {
    path: PathBuf,
    entries: Mutex<(HashMap<[u8; 16], String>, File)>,
}

fn key(translator: &str, text: &str) -> [u8; 16] {
    let mut hasher = Sha256::new();
    hasher.update((translator.len() as u64).to_le_bytes());
    hasher.update(translator.as_bytes());
    hasher.update(text.as_bytes());
    let mut k = [0u8; 16];
    k.copy_from_slice(&hasher.finalize()[..16]);
    k
}

fn parse_key(hex: &str) -> Option<[u8; 16]> {
    let mut k = [0u8; 16];
    if hex.len() != 32 {
        return None;
    }
    for (i, byte) in k.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(k)
}

impl TranslationCache {
    /// Opens (creating if needed) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<TranslationCache> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(FILE_NAME);
        let mut map = HashMap::new();
        let existing = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        for line in existing.split(|&b| b == b'\n') {
            let entry = serde_json::from_slice::<Entry>(line).ok();
            if let Some((k, v)) = entry.and_then(|e| Some((parse_key(&e.k)?, e.v))) {
                map.insert(k, v);
            }
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        if existing.last().is_some_and(|&b| b != b'\n') {
            // End the torn line so the next entry starts on a line of its own.
            file.write_all(b"\n").map_err(|e| Error::io(&path, e))?;
        }
        Ok(TranslationCache {
            path,
            entries: Mutex::new((map, file)),
        })
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.0.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, translator: &str, text: &str) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        entries.0.get(&key(translator, text)).cloned()
    }

    /// Records translations; one append and fsync for the whole batch.
    pub fn insert_all(&self, translator: &str, pairs: &[(&str, &str)]) -> Result<()> {
        let mut log = Vec::new();
        let mut guard = self.entries.lock().map_err(|_| {
            Error::io(
                &self.path,
                std::io::Error::other("translation cache lock poisoned"),
            )
        })?;
        for (text, translation) in pairs {
            let k = key(translator, text);
            let entry = Entry {
                k: crate::core::fs::hex(&k),
                v: translation.to_string(),
            };
            serde_json::to_writer(&mut log, &entry).map_err(|e| Error::io(&self.path, e.into()))?;
            log.push(b'\n');
            guard.0.insert(k, translation.to_string());
        }
        let file = &mut guard.1;
        file.write_all(&log).map_err(|e| Error::io(&self.path, e))?;
        file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_across_opens_and_survives_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TranslationCache::open(dir.path()).unwrap();
        cache
            .insert_all(
                "apertium/eng-spa",
                &[("a dog", "un perro"), ("a cat", "un gato")],
            )
            .unwrap();
        assert_eq!(
            cache.get("apertium/eng-spa", "a dog").as_deref(),
            Some("un perro")
        );
        assert_eq!(
            cache.get("apertium/eng-cat", "a dog"),
            None,
            "the translator is part of the key"
        );
        drop(cache);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        file.write_all(b"{\"k\":\"00ff\",\"v\":\"tor").unwrap();
        let cache = TranslationCache::open(dir.path()).unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.get("apertium/eng-spa", "a cat").as_deref(),
            Some("un gato")
        );
        cache
            .insert_all("apertium/spa-eng", &[("un pez", "a fish")])
            .unwrap();
        drop(cache);
        let cache = TranslationCache::open(dir.path()).unwrap();
        assert_eq!(
            cache.get("apertium/spa-eng", "un pez").as_deref(),
            Some("a fish")
        );
    }
}
