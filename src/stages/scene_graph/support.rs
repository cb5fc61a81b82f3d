//! What the corpus says is plausible: how many distinct texts state each triple
//! (subject-relation-object, object-attribute), the same with each object replaced by its
//! category ("person sit on furniture"), so an unseen but ordinary triple ("girl sit on
//! sofa") is still supported while "cattle walk down cowboy" is not, with one side only
//! replaced ("animal stand on ground", where the ground has no category), and how many texts
//! name each two objects together (no caption puts a cucumber in a turkey's grass).
//!
//! Built once per corpus from the parsed texts and kept as `OUT/index/support.bin`, an
//! artifact like `tfidf.bin` (versioned, checksummed, rebuilt when the texts change).

use std::collections::HashMap;
use std::path::Path;

use crate::core::binfile::{Reader, Writer};
use crate::core::error::{Error, Result};
use crate::core::fs::write_bytes_atomic;
use crate::text::parse::category::Categories;
use crate::text::parse::SceneGraph;

pub const VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"CMCLSUPP";
/// Separates the parts of a key: no caption word contains it.
const SEP: char = '\u{1f}';

/// Triple counts, by lemma and by category, and what fills each slot of a stated triple.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Support {
    counts: HashMap<String, u32>,
    /// Slot -> the words stated in it, sorted: "s|p|o" for the subjects of (p, o), "o|s|p"
    /// for the objects of (s, p), "v|s" for the attribute values of s, "w|a" for the
    /// objects named beside a. Derived from `counts`, never stored.
    fillers: HashMap<String, Vec<String>>,
}

fn key(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(SEP);
        }
        out.push_str(p);
    }
    out
}

impl Support {
    /// Counts every triple of every graph once per text (a caption that repeats a triple
    /// supports it once), by lemma and by category.
    /// `categories` holds the category of every object name in `graphs`.
    pub fn build(graphs: &[SceneGraph], categories: &Categories) -> Support {
        let mut counts: HashMap<String, u32> = HashMap::new();
        for graph in graphs {
            let mut keys: Vec<String> = Vec::new();
            for [s, p, o] in graph.triples() {
                if p == "is" && o.chars().all(|c| c.is_ascii_digit()) {
                    continue;
                }
                let category = |name: &str| categories.get(name).copied().flatten();
                keys.push(key(&["t", &s, &p, &o]));
                let cs = category(&s);
                let co = if p == "is" { None } else { category(&o) };
                if let Some(cs) = cs {
                    let o_side = if p == "is" { Some(o.as_str()) } else { co };
                    if let Some(o_side) = o_side {
                        keys.push(key(&["c", cs, &p, o_side]));
                    }
                    if p != "is" {
                        keys.push(key(&["l", cs, &p, &o]));
                    }
                }
                if let Some(co) = co {
                    keys.push(key(&["r", &s, &p, co]));
                }
            }
            for (i, a) in graph.objects.iter().enumerate() {
                for b in &graph.objects[i + 1..] {
                    let (a, b) = if a.name <= b.name { (&a.name, &b.name) } else { (&b.name, &a.name) };
                    if a != b {
                        keys.push(key(&["o", a, b]));
                    }
                }
            }
            keys.sort();
            keys.dedup();
            for k in keys {
                *counts.entry(k).or_insert(0) += 1;
            }
        }
        Support::with_fillers(counts)
    }

    fn with_fillers(counts: HashMap<String, u32>) -> Support {
        let mut fillers: HashMap<String, Vec<String>> = HashMap::new();
        for k in counts.keys() {
            let parts: Vec<&str> = k.split(SEP).collect();
            match parts.as_slice() {
                ["t", s, "is", v] => {
                    fillers.entry(key(&["v", s])).or_default().push(v.to_string());
                    fillers.entry(key(&["s", "is", v])).or_default().push(s.to_string());
                }
                ["t", s, p, o] => {
                    fillers.entry(key(&["s", p, o])).or_default().push(s.to_string());
                    fillers.entry(key(&["o", s, p])).or_default().push(o.to_string());
                }
                ["o", a, b] => {
                    fillers.entry(key(&["w", a])).or_default().push(b.to_string());
                    fillers.entry(key(&["w", b])).or_default().push(a.to_string());
                }
                _ => {}
            }
        }
        for words in fillers.values_mut() {
            words.sort();
            words.dedup();
        }
        Support { counts, fillers }
    }

    fn fillers(&self, parts: &[&str]) -> &[String] {
        self.fillers.get(&key(parts)).map_or(&[], Vec::as_slice)
    }

    /// Subjects stated with predicate `p` and object `o`, sorted.
    pub fn subjects_of(&self, p: &str, o: &str) -> &[String] {
        self.fillers(&["s", p, o])
    }

    /// Objects stated after subject `s` and predicate `p`, sorted.
    pub fn objects_of(&self, s: &str, p: &str) -> &[String] {
        self.fillers(&["o", s, p])
    }

    /// Objects named in one text with `a`, sorted.
    pub fn companions(&self, a: &str) -> &[String] {
        self.fillers(&["w", a])
    }

    /// Attribute values stated of `s`, sorted.
    pub fn values_of(&self, s: &str) -> &[String] {
        self.fillers(&["v", s])
    }

    /// Texts that state the triple itself.
    pub fn triple(&self, s: &str, p: &str, o: &str) -> u32 {
        self.counts.get(&key(&["t", s, p, o])).copied().unwrap_or(0)
    }

    /// Texts that state it with the objects replaced by their categories (an attribute's
    /// value stays a value).
    pub fn by_category(&self, cs: &str, p: &str, o_side: &str) -> u32 {
        self.counts
            .get(&key(&["c", cs, p, o_side]))
            .copied()
            .unwrap_or(0)
    }

    /// Texts that state a relation with the subject replaced by its category and the
    /// object kept ("animal stand on ground"): places and other things of no category
    /// still back off on the subject's side.
    pub fn by_subject_category(&self, cs: &str, p: &str, o: &str) -> u32 {
        self.counts.get(&key(&["l", cs, p, o])).copied().unwrap_or(0)
    }

    /// Texts that state a relation with the object replaced by its category and the
    /// subject kept ("dog chase animal").
    pub fn by_object_category(&self, s: &str, p: &str, co: &str) -> u32 {
        self.counts.get(&key(&["r", s, p, co])).copied().unwrap_or(0)
    }

    /// Texts that name both objects.
    pub fn together(&self, a: &str, b: &str) -> u32 {
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        self.counts.get(&key(&["o", a, b])).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut entries: Vec<(&String, &u32)> = self.counts.iter().collect();
        entries.sort();
        let mut w = Writer::new(MAGIC, VERSION, 32 * entries.len());
        w.u64(entries.len() as u64);
        for (k, n) in entries {
            w.u32(k.len() as u32);
            w.raw(k.as_bytes());
            w.u32(*n);
        }
        write_bytes_atomic(path, &w.finish())
    }

    pub fn load(path: &Path) -> Result<Support> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |why: &str| Error::model(path, why);
        let mut r = Reader::open(&bytes, MAGIC, VERSION).map_err(|e| bad(&e))?;
        let n = r.u64().ok_or_else(|| bad("truncated"))?;
        let mut counts = HashMap::with_capacity(n.min(1 << 24) as usize);
        for _ in 0..n {
            let len = r.u32().ok_or_else(|| bad("truncated"))? as usize;
            let raw = r.take(len).ok_or_else(|| bad("truncated"))?;
            let k = std::str::from_utf8(raw).map_err(|_| bad("key is not UTF-8"))?;
            let c = r.u32().ok_or_else(|| bad("truncated"))?;
            counts.insert(k.to_string(), c);
        }
        if !r.at_end() {
            return Err(bad("trailing bytes"));
        }
        Ok(Support::with_fillers(counts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse::category::categories;
    use crate::text::parse::tests::parser;

    fn graph(caption: &str) -> SceneGraph {
        parser().parse(caption)
    }

    #[test]
    fn counts_triples_by_lemma_category_and_company() {
        let graphs = [
            graph("a man riding a horse"),
            graph("a woman riding a horse"),
            graph("a girl riding a horse on a beach"),
        ];
        let support = Support::build(&graphs, &categories(parser().lexicon(), &graphs));
        assert_eq!(support.triple("man", "ride", "horse"), 1);
        assert_eq!(support.by_category("person", "ride", "animal"), 3);
        assert_eq!(support.by_subject_category("person", "ride", "horse"), 3);
        assert_eq!(support.by_object_category("girl", "ride", "animal"), 1);
        assert_eq!(support.by_object_category("girl", "on", "animal"), 0);
        assert_eq!(support.together("horse", "beach"), 1);
        assert_eq!(support.together("man", "beach"), 0);
        assert_eq!(support.subjects_of("ride", "horse"), ["girl", "man", "woman"]);
        assert_eq!(support.companions("beach"), ["girl", "horse"]);
    }

    #[test]
    fn saves_and_loads_every_count() {
        let graphs = [graph("a black dog on a red sofa"), graph("two cats on a bed")];
        let support = Support::build(&graphs, &categories(parser().lexicon(), &graphs));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("support.bin");
        support.save(&path).unwrap();
        assert_eq!(Support::load(&path).unwrap(), support);
        // Damage is refused with the path in the error.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = Support::load(&path).unwrap_err().to_string();
        assert!(err.contains("support.bin"), "{err}");
    }
}
