//! Reader for the WordNet 3.0 database (`index.*`, `data.*`, `*.exc`, as installed by
//! Debian's `wordnet-base` in /usr/share/wordnet). Only `std` is used so the module can
//! be compiled and tested on its own with plain rustc.
//!
//! Everything is loaded into memory once: synsets live in one `Vec` addressed by an
//! internal id, their words and the few pointer kinds we query (hypernym, attribute,
//! similar-to) in flat side tables, so a lookup never touches the files again.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Errors name the file and, for malformed content, the 1-based line, so a broken
/// installation can be found without a debugger.
#[derive(Debug)]
pub enum WordNetError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl fmt::Display for WordNetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WordNetError::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            WordNetError::Parse {
                path,
                line,
                message,
            } => {
                write!(f, "{}:{}: {}", path.display(), line, message)
            }
        }
    }
}

impl std::error::Error for WordNetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WordNetError::Io { source, .. } => Some(source),
            WordNetError::Parse { .. } => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pos {
    Noun,
    Verb,
    Adj,
    Adv,
}

impl Pos {
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adj, Pos::Adv];

    /// The suffix of the database file names (`index.noun`, `noun.exc`, ...).
    fn file_name(self) -> &'static str {
        match self {
            Pos::Noun => "noun",
            Pos::Verb => "verb",
            Pos::Adj => "adj",
            Pos::Adv => "adv",
        }
    }

    fn idx(self) -> usize {
        self as usize
    }

    /// The one-letter codes of the files; `s` (adjective satellite) is an adjective.
    fn from_code(code: &str) -> Option<Pos> {
        match code {
            "n" => Some(Pos::Noun),
            "v" => Some(Pos::Verb),
            "a" | "s" => Some(Pos::Adj),
            "r" => Some(Pos::Adv),
            _ => None,
        }
    }

    /// Morphy's detachment rules (suffix, replacement), from WordNet's morph.c.
    #[rustfmt::skip]
    fn suffix_rules(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Pos::Noun => &[("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
                ("shes", "sh"), ("men", "man"), ("ies", "y")],
            Pos::Verb => &[("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
                ("ing", "e"), ("ing", "")],
            Pos::Adj => &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
            Pos::Adv => &[],
        }
    }
}

/// The standard lexicographer files of WordNet 3.0, indexed by a data line's lex_filenum.
#[rustfmt::skip]
pub const LEXNAMES: [&str; 45] = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
];

/// The pointer kinds any query follows; the others are parsed for validation and dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PtrKind {
    /// `@` and `@i`: instance hypernyms count as hypernyms for every query here.
    Hypernym,
    Attribute,
    Similar,
}

#[derive(Clone, Copy, Debug)]
struct Ptr {
    /// Synset id once loading finished (a byte offset while it is still pending).
    target: u32,
    kind: PtrKind,
}

#[derive(Clone, Copy, Debug)]
struct Synset {
    words_start: u32,
    ptrs_start: u32,
    ptrs_len: u16,
    words_len: u8,
    lexfile: u8,
    satellite: bool,
}

#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    /// Range into `WordNet::index_synsets`, in the index's sense order.
    start: u32,
    len: u32,
    tagged: u32,
}

/// One part of speech's index. The lemmas' text lies in one buffer, so a binary search
/// stays within one allocation: as separate small strings they landed wherever the heap
/// had room, scattered over a 1M-pair corpus, and string compares under these lookups
/// took a third of a scene-graph worker's time.
#[derive(Default)]
struct Index {
    text: String,
    /// Sorted by lemma: where each lemma lies in `text`, and its entry.
    lemmas: Vec<(u32, u32, IndexEntry)>,
}

impl Index {
    fn new(mut entries: Vec<(Box<str>, IndexEntry)>) -> Index {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut index = Index {
            text: String::with_capacity(entries.iter().map(|(l, _)| l.len()).sum()),
            lemmas: Vec::with_capacity(entries.len()),
        };
        for (lemma, entry) in entries {
            let start = index.text.len() as u32;
            index.text.push_str(&lemma);
            index.lemmas.push((start, index.text.len() as u32, entry));
        }
        index
    }

    fn get(&self, lemma: &str) -> Option<&IndexEntry> {
        let i = self
            .lemmas
            .binary_search_by(|&(start, end, _)| self.text[start as usize..end as usize].cmp(lemma))
            .ok()?;
        Some(&self.lemmas[i].2)
    }
}

pub struct WordNet {
    synsets: Vec<Synset>,
    /// Synset words, lowercased, spaces for underscores, adjective markers stripped.
    words: Vec<Box<str>>,
    ptrs: Vec<Ptr>,
    /// Per pos, sorted by lemma (spaces for underscores) so lookups can binary-search.
    index: [Index; 4],
    index_synsets: Vec<u32>,
    /// Per pos: inflected form -> base forms.
    exceptions: [HashMap<Box<str>, Vec<Box<str>>>; 4],
}

/// Where a pointer came from, kept only until every data file is read, because
/// pointers refer forward and across files.
struct PendingPtr {
    target_pos: Pos,
    source_pos: Pos,
    line: usize,
}

/// Whitespace-separated fields of one line, with errors that say which field is bad.
struct Fields<'a> {
    it: std::str::SplitAsciiWhitespace<'a>,
}

impl<'a> Fields<'a> {
    fn new(s: &'a str) -> Self {
        Fields {
            it: s.split_ascii_whitespace(),
        }
    }

    fn next(&mut self, what: &str) -> Result<&'a str, String> {
        self.it.next().ok_or_else(|| format!("missing {what}"))
    }

    fn num(&mut self, what: &str, radix: u32) -> Result<u32, String> {
        let field = self.next(what)?;
        u32::from_str_radix(field, radix).map_err(|_| format!("bad {what} {field:?}"))
    }
}

fn read(path: &Path) -> Result<String, WordNetError> {
    fs::read_to_string(path).map_err(|source| WordNetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_error(path: &Path, line: usize, message: String) -> WordNetError {
    WordNetError::Parse {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Lines that carry records, numbered from 1; the licence header lines start with two
/// spaces and are skipped.
fn records(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.starts_with("  ") && !l.trim().is_empty())
}

/// The form every lookup compares: lowercase, single spaces for underscores and blanks.
fn normalize(s: &str) -> String {
    // This runs for every word of every file at load time, hence the ASCII fast path.
    if s.is_ascii() {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            let blank = b == b'_' || b.is_ascii_whitespace();
            if !blank {
                out.push(b.to_ascii_lowercase() as char);
            } else if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        }
        if out.ends_with(' ') {
            out.pop();
        }
        return out;
    }
    let lower = s.to_lowercase();
    let parts: Vec<&str> = lower
        .split(|c: char| c == '_' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    parts.join(" ")
}

/// A data-file word without its adjective position marker (`(a)`, `(p)`, `(ip)`).
fn data_word(w: &str) -> Box<str> {
    let w = match (w.ends_with(')'), w.rfind('(')) {
        (true, Some(open)) => &w[..open],
        _ => w,
    };
    normalize(w).into_boxed_str()
}

impl WordNet {
    /// Loads every index/data/exc file from `dir` (e.g. /usr/share/wordnet).
    pub fn load(dir: &Path) -> Result<WordNet, WordNetError> {
        let mut wn = WordNet {
            synsets: Vec::new(),
            words: Vec::new(),
            ptrs: Vec::new(),
            index: Default::default(),
            index_synsets: Vec::new(),
            exceptions: Default::default(),
        };
        // Per pos: the byte offsets of its synsets in file order, and the id of the first.
        let mut offsets: [Vec<u32>; 4] = Default::default();
        let mut base = [0u32; 4];
        let mut pending: Vec<PendingPtr> = Vec::new();

        for pos in Pos::ALL {
            let path = dir.join(format!("data.{}", pos.file_name()));
            let text = read(&path)?;
            base[pos.idx()] = wn.synsets.len() as u32;
            for (line, record) in records(&text) {
                wn.parse_data_line(record, pos, line, &mut offsets[pos.idx()], &mut pending)
                    .map_err(|m| parse_error(&path, line, m))?;
            }
        }

        // Offsets are ascending within a file, so a binary search replaces a hash map.
        let resolve = |pos: Pos, offset: u32| -> Option<u32> {
            let i = offsets[pos.idx()].binary_search(&offset).ok()?;
            Some(base[pos.idx()] + i as u32)
        };
        for (ptr, p) in wn.ptrs.iter_mut().zip(&pending) {
            ptr.target = resolve(p.target_pos, ptr.target).ok_or_else(|| {
                let path = dir.join(format!("data.{}", p.source_pos.file_name()));
                let message = format!(
                    "pointer to {:08} which is not a synset of data.{}",
                    ptr.target,
                    p.target_pos.file_name()
                );
                parse_error(&path, p.line, message)
            })?;
        }
        drop(pending);

        for pos in Pos::ALL {
            let path = dir.join(format!("index.{}", pos.file_name()));
            let text = read(&path)?;
            let mut entries = Vec::new();
            for (line, record) in records(&text) {
                let entry = wn
                    .parse_index_line(record, pos, &|off| resolve(pos, off))
                    .map_err(|m| parse_error(&path, line, m))?;
                entries.push(entry);
            }
            // The files sort by the underscore spelling; spaces sort differently.
            wn.index[pos.idx()] = Index::new(entries);
        }

        for pos in Pos::ALL {
            let path = dir.join(format!("{}.exc", pos.file_name()));
            let text = read(&path)?;
            let map = &mut wn.exceptions[pos.idx()];
            for (line, record) in records(&text) {
                let mut fields = record.split_ascii_whitespace().map(normalize);
                let (Some(inflected), Some(first)) = (fields.next(), fields.next()) else {
                    return Err(parse_error(
                        &path,
                        line,
                        "expected an inflected form and at least one base form".into(),
                    ));
                };
                let bases = map.entry(inflected.into_boxed_str()).or_default();
                bases.push(first.into_boxed_str());
                bases.extend(fields.map(String::into_boxed_str));
            }
        }
        Ok(wn)
    }

    /// Parses `offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt (ptr)* [frames] | gloss`.
    fn parse_data_line(
        &mut self,
        record: &str,
        pos: Pos,
        line: usize,
        offsets: &mut Vec<u32>,
        pending: &mut Vec<PendingPtr>,
    ) -> Result<(), String> {
        // The gloss is free text and holds nothing we need.
        let body = record.split_once('|').map_or(record, |(b, _)| b);
        let mut f = Fields::new(body);
        let offset = f.num("synset_offset", 10)?;
        if offsets.last().is_some_and(|&last| last >= offset) {
            return Err(format!("synset_offset {offset:08} is not ascending"));
        }
        let lexfile = f.num("lex_filenum", 10)?;
        if lexfile as usize >= LEXNAMES.len() {
            return Err(format!(
                "lex_filenum {lexfile} is not a known lexicographer file"
            ));
        }
        let ss_type = f.next("ss_type")?;
        if Pos::from_code(ss_type) != Some(pos) {
            return Err(format!(
                "ss_type {ss_type:?} does not belong in data.{}",
                pos.file_name()
            ));
        }
        let w_cnt = f.num("w_cnt", 16)?;
        // Two hex digits and three decimal ones by wndb(5); the counts are stored narrow.
        if w_cnt > 0xff {
            return Err(format!("w_cnt {w_cnt} exceeds two hex digits"));
        }
        let words_start = self.words.len() as u32;
        for _ in 0..w_cnt {
            let word = f.next("word")?;
            f.num("lex_id", 16)?;
            self.words.push(data_word(word));
        }
        let p_cnt = f.num("p_cnt", 10)?;
        if p_cnt > 999 {
            return Err(format!("p_cnt {p_cnt} exceeds three digits"));
        }
        let ptrs_start = self.ptrs.len() as u32;
        for _ in 0..p_cnt {
            let symbol = f.next("pointer_symbol")?;
            let target = f.num("pointer synset_offset", 10)?;
            let code = f.next("pointer pos")?;
            let target_pos =
                Pos::from_code(code).ok_or_else(|| format!("bad pointer pos {code:?}"))?;
            let st = f.next("pointer source/target")?;
            // Word numbers of lexical pointers: checked, not kept (no query needs them).
            let valid = match (st.len(), st.get(..2), st.get(2..)) {
                (4, Some(s), Some(t)) => {
                    u8::from_str_radix(s, 16).is_ok() && u8::from_str_radix(t, 16).is_ok()
                }
                _ => false,
            };
            if !valid {
                return Err(format!("bad pointer source/target {st:?}"));
            }
            let kind = match symbol {
                "@" | "@i" => PtrKind::Hypernym,
                "=" => PtrKind::Attribute,
                "&" => PtrKind::Similar,
                _ => continue,
            };
            self.ptrs.push(Ptr { target, kind });
            pending.push(PendingPtr {
                target_pos,
                source_pos: pos,
                line,
            });
        }
        offsets.push(offset);
        self.synsets.push(Synset {
            words_start,
            ptrs_start,
            ptrs_len: (self.ptrs.len() as u32 - ptrs_start) as u16,
            words_len: w_cnt as u8,
            lexfile: lexfile as u8,
            satellite: ss_type == "s",
        });
        Ok(())
    }

    /// Parses `lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt tagsense_cnt offset...`.
    fn parse_index_line(
        &mut self,
        record: &str,
        pos: Pos,
        resolve: &dyn Fn(u32) -> Option<u32>,
    ) -> Result<(Box<str>, IndexEntry), String> {
        let mut f = Fields::new(record);
        let lemma = normalize(f.next("lemma")?);
        let code = f.next("pos")?;
        if Pos::from_code(code) != Some(pos) {
            return Err(format!(
                "pos {code:?} does not belong in index.{}",
                pos.file_name()
            ));
        }
        let synset_cnt = f.num("synset_cnt", 10)?;
        let p_cnt = f.num("p_cnt", 10)?;
        for _ in 0..p_cnt {
            f.next("ptr_symbol")?;
        }
        f.num("sense_cnt", 10)?;
        let tagged = f.num("tagsense_cnt", 10)?;
        let start = self.index_synsets.len() as u32;
        for _ in 0..synset_cnt {
            let offset = f.num("synset_offset", 10)?;
            let id = resolve(offset).ok_or_else(|| {
                format!(
                    "synset_offset {offset:08} is not a synset of data.{}",
                    pos.file_name()
                )
            })?;
            self.index_synsets.push(id);
        }
        Ok((
            lemma.into_boxed_str(),
            IndexEntry {
                start,
                len: synset_cnt,
                tagged,
            },
        ))
    }

    fn entry(&self, normalized: &str, pos: Pos) -> Option<&IndexEntry> {
        self.index[pos.idx()].get(normalized)
    }

    /// Synset ids of `lemma` as `pos`, most frequent sense first.
    fn synsets_of(&self, lemma: &str, pos: Pos) -> &[u32] {
        match self.entry(&normalize(lemma), pos) {
            Some(e) => &self.index_synsets[e.start as usize..(e.start + e.len) as usize],
            None => &[],
        }
    }

    fn words_of(&self, id: u32) -> &[Box<str>] {
        let s = &self.synsets[id as usize];
        &self.words[s.words_start as usize..s.words_start as usize + s.words_len as usize]
    }

    fn ptrs_of(&self, id: u32, kind: PtrKind) -> impl Iterator<Item = &Ptr> {
        let s = &self.synsets[id as usize];
        self.ptrs[s.ptrs_start as usize..s.ptrs_start as usize + s.ptrs_len as usize]
            .iter()
            .filter(move |p| p.kind == kind)
    }

    /// Base forms of `word` (lowercase; spaces or underscores for collocations, answer
    /// uses spaces) as `pos`, by WordNet's morphy. Sorted, deduplicated; empty if none.
    ///
    /// Unlike WordNet's morphstr, which stops at the first exception hit, this returns
    /// the union of the word itself, its exceptions and every suffix rule, so callers
    /// see all readings ("axes" -> ax, axe, axis). A collocation that is not in the
    /// index as written is retried word by word ("attorneys general").
    pub fn morphy(&self, word: &str, pos: Pos) -> Vec<String> {
        let word = normalize(word);
        if word.is_empty() {
            return Vec::new();
        }
        let mut out = self.morphy_single(&word, pos);
        if out.is_empty() && word.contains(' ') {
            out = self.morphy_collocation(&word, pos);
        }
        out.sort();
        out.dedup();
        out
    }

    fn morphy_single(&self, word: &str, pos: Pos) -> Vec<String> {
        let mut candidates = vec![word.to_string()];
        if let Some(bases) = self.exceptions[pos.idx()].get(word) {
            candidates.extend(bases.iter().map(|b| b.to_string()));
        }
        // morph.c: nouns in -ss ("glass") and very short words have no suffix to detach.
        let no_rules = pos == Pos::Noun && (word.ends_with("ss") || word.len() <= 2);
        if !no_rules {
            for (suffix, replacement) in pos.suffix_rules() {
                if let Some(stem) = word.strip_suffix(suffix).filter(|s| !s.is_empty()) {
                    candidates.push(format!("{stem}{replacement}"));
                }
            }
        }
        candidates.retain(|c| self.entry(c, pos).is_some());
        candidates
    }

    /// Every combination of each word's own form and base forms, kept when the whole is
    /// in the index; capped because each word multiplies the combinations.
    fn morphy_collocation(&self, word: &str, pos: Pos) -> Vec<String> {
        const MAX_COMBINATIONS: usize = 256;
        let mut combos = vec![String::new()];
        for token in word.split(' ') {
            let mut alternatives = vec![token.to_string()];
            for base in self.morphy_single(token, pos) {
                if !alternatives.contains(&base) {
                    alternatives.push(base);
                }
            }
            let mut next = Vec::new();
            for prefix in &combos {
                for alt in &alternatives {
                    if next.len() < MAX_COMBINATIONS {
                        let sep = if prefix.is_empty() { "" } else { " " };
                        next.push(format!("{prefix}{sep}{alt}"));
                    }
                }
            }
            combos = next;
        }
        combos.retain(|c| self.entry(c, pos).is_some());
        combos
    }

    /// True when `lemma` (a base form) is in the index for `pos`.
    pub fn contains(&self, lemma: &str, pos: Pos) -> bool {
        self.entry(&normalize(lemma), pos).is_some()
    }

    /// Lexicographer file names of the synsets of `lemma` as `pos`, in sense order,
    /// deduplicated keeping the first occurrence.
    pub fn lexnames(&self, lemma: &str, pos: Pos) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for &id in self.synsets_of(lemma, pos) {
            let name = LEXNAMES[self.synsets[id as usize].lexfile as usize];
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// The index's tagsense_cnt: how often `lemma` was sense-tagged as `pos` (0 if absent).
    pub fn tagged_count(&self, lemma: &str, pos: Pos) -> u32 {
        self.entry(&normalize(lemma), pos).map_or(0, |e| e.tagged)
    }

    /// True when `a` and `b` have the same most frequent sense (index order): "photo" and
    /// "photograph", but not "bathroom" and "bath", whose shared synset is the room and
    /// not what a reader takes "bath" for.
    pub fn same_first_sense(&self, a: &str, b: &str, pos: Pos) -> bool {
        match (
            self.synsets_of(a, pos).first(),
            self.synsets_of(b, pos).first(),
        ) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    /// [`WordNet::related`] for the most frequent senses only: "dog" the animal is no kind
    /// of person, though a rare sense (the cad) is.
    pub fn first_senses_related(&self, a: &str, b: &str, pos: Pos, max_depth: usize) -> bool {
        let (Some(&x), Some(&y)) = (
            self.synsets_of(a, pos).first(),
            self.synsets_of(b, pos).first(),
        ) else {
            return false;
        };
        x == y || self.reaches(&[x], &[y], max_depth) || self.reaches(&[y], &[x], max_depth)
    }

    /// True when `a` and `b` share a synset, or a chain of at most `max_depth` hypernym
    /// (or instance hypernym) steps leads from a sense of one to a sense of the other.
    pub fn related(&self, a: &str, b: &str, pos: Pos, max_depth: usize) -> bool {
        let (sa, sb) = (self.synsets_of(a, pos), self.synsets_of(b, pos));
        if sa.is_empty() || sb.is_empty() {
            return false;
        }
        sa.iter().any(|s| sb.contains(s))
            || self.reaches(sa, sb, max_depth)
            || self.reaches(sb, sa, max_depth)
    }

    /// Breadth-first walk up the hypernyms of `from`; true when it meets `targets`
    /// within `max_depth` steps. The seen set keeps multiple inheritance from repeating.
    fn reaches(&self, from: &[u32], targets: &[u32], max_depth: usize) -> bool {
        // Hypernym chains are short: a list beats a hash set, allocated on every call.
        let mut seen: Vec<u32> = from.to_vec();
        let mut frontier = from.to_vec();
        for _ in 0..max_depth {
            let mut next = Vec::new();
            for &id in &frontier {
                for p in self.ptrs_of(id, PtrKind::Hypernym) {
                    if !seen.contains(&p.target) {
                        seen.push(p.target);
                        if targets.contains(&p.target) {
                            return true;
                        }
                        next.push(p.target);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            frontier = next;
        }
        false
    }

    /// True when adjectives `a` and `b` share a synset or one is a satellite of the
    /// other's head synset ("tiny" and "small", "huge" and "large"). Adjectives have no
    /// hypernyms; this is WordNet's notion of nearly the same meaning. Two satellites of
    /// one head are not enough: every colour is a satellite of "chromatic".
    pub fn similar_adjectives(&self, a: &str, b: &str) -> bool {
        let (sa, sb) = (self.synsets_of(a, Pos::Adj), self.synsets_of(b, Pos::Adj));
        let points_into = |from: &[u32], to: &[u32]| {
            from.iter().any(|&id| {
                self.ptrs_of(id, PtrKind::Similar)
                    .any(|p| to.contains(&p.target))
            })
        };
        sa.iter().any(|s| sb.contains(s)) || points_into(sa, sb) || points_into(sb, sa)
    }

    /// Nouns that some sense of adjective `lemma` is a value of (the `=` pointer, e.g.
    /// "large" -> "size"). A satellite without one borrows its head's through `&`,
    /// since WordNet records attributes on head synsets only. Sorted, deduplicated.
    pub fn attribute_nouns(&self, lemma: &str) -> Vec<String> {
        let mut out = Vec::new();
        for &id in self.synsets_of(lemma, Pos::Adj) {
            let mut found = self.push_attributes(id, &mut out);
            if !found && self.synsets[id as usize].satellite {
                for p in self.ptrs_of(id, PtrKind::Similar) {
                    found |= self.push_attributes(p.target, &mut out);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn push_attributes(&self, id: u32, out: &mut Vec<String>) -> bool {
        let mut found = false;
        for p in self.ptrs_of(id, PtrKind::Attribute) {
            found = true;
            out.extend(self.words_of(p.target).iter().map(|w| w.to_string()));
        }
        found
    }

    /// The senses of noun `lemma` (most frequent first) with their lexicographer files,
    /// each told whether it is, or descends from, a sense of noun `ancestor`.
    pub fn senses_under(&self, lemma: &str, ancestor: &str) -> Vec<(&'static str, bool)> {
        let targets = self.synsets_of(ancestor, Pos::Noun);
        self.synsets_of(lemma, Pos::Noun)
            .iter()
            .map(|&id| {
                let lexname = LEXNAMES[self.synsets[id as usize].lexfile as usize];
                let under = !targets.is_empty()
                    && (targets.contains(&id) || self.reaches(&[id], targets, usize::MAX));
                (lexname, under)
            })
            .collect()
    }

    /// True when some sense of noun `lemma` is, or has among its transitive hypernyms
    /// (instance hypernyms included), a sense of noun `ancestor`.
    pub fn is_a(&self, lemma: &str, ancestor: &str) -> bool {
        let (sl, sa) = (
            self.synsets_of(lemma, Pos::Noun),
            self.synsets_of(ancestor, Pos::Noun),
        );
        if sl.is_empty() || sa.is_empty() {
            return false;
        }
        sl.iter().any(|s| sa.contains(s)) || self.reaches(sl, sa, usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    const DIR: &str = "/usr/share/wordnet";

    /// The real WordNet that `make apt-deps` installs, loaded once for all tests.
    fn wn() -> &'static WordNet {
        static WN: OnceLock<WordNet> = OnceLock::new();
        WN.get_or_init(|| {
            WordNet::load(Path::new(DIR))
                .unwrap_or_else(|e| panic!("{e} (`make apt-deps` installs wordnet-base)"))
        })
    }

    #[test]
    fn morphy() {
        let wn = wn();
        assert_eq!(wn.morphy("dogs", Pos::Noun), ["dog"]);
        assert!(wn.morphy("mice", Pos::Noun).contains(&"mouse".to_string()));
        assert!(wn.morphy("running", Pos::Verb).contains(&"run".to_string()));
        assert!(wn.morphy("rode", Pos::Verb).contains(&"ride".to_string()));
        assert!(wn.morphy("bigger", Pos::Adj).contains(&"big".to_string()));
        assert!(wn.morphy("boxes", Pos::Noun).contains(&"box".to_string()));
        assert_eq!(wn.morphy("glass", Pos::Noun), ["glass"]);
        assert_eq!(wn.morphy("hot_dogs", Pos::Noun), ["hot dog"]);
        assert_eq!(wn.morphy("Looking At", Pos::Verb), ["look at"]);
        assert!(wn.morphy("xyzzyq", Pos::Noun).is_empty());
    }

    #[test]
    fn index_queries() {
        let wn = wn();
        assert!(wn.contains("dog", Pos::Noun) && wn.contains("hot_dog", Pos::Noun));
        assert!(!wn.contains("dogs", Pos::Noun));
        assert_eq!(wn.lexnames("dog", Pos::Noun)[0], "noun.animal");
        assert!(wn.lexnames("pizza", Pos::Noun).contains(&"noun.food"));
        assert_eq!(wn.lexnames("run", Pos::Verb)[0], "verb.motion");
        assert!(wn.tagged_count("run", Pos::Verb) > wn.tagged_count("run", Pos::Noun));
        assert_eq!(wn.tagged_count("dog", Pos::Noun), 1);
    }

    #[test]
    fn similar_adjective_clusters() {
        let wn = wn();
        assert!(wn.similar_adjectives("tiny", "small"));
        assert!(wn.similar_adjectives("small", "little"));
        assert!(wn.similar_adjectives("huge", "large"));
        assert!(!wn.similar_adjectives("small", "large"));
        assert!(!wn.similar_adjectives("red", "blue"));
    }

    #[test]
    fn relations() {
        let wn = wn();
        assert!(wn.related("dog", "puppy", Pos::Noun, 3));
        assert!(wn.related("dog", "animal", Pos::Noun, 3));
        assert!(wn.related("animal", "dog", Pos::Noun, 3));
        assert!(!wn.related("dog", "cat", Pos::Noun, 3));
        assert!(wn.related("big", "large", Pos::Adj, 3));
        assert!(!wn.related("red", "blue", Pos::Adj, 3));
        assert!(wn.is_a("red", "color"));
        assert!(wn.is_a("dog", "animal"));
        assert!(wn.is_a("einstein", "person"));
        assert!(!wn.is_a("table", "animal"));
        assert!(wn.attribute_nouns("large").contains(&"size".to_string()));
        assert!(wn
            .attribute_nouns("hot")
            .contains(&"temperature".to_string()));
    }

    /// A scratch database: empty files except those given.
    fn scratch(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wordnet-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        for pos in Pos::ALL {
            for file in [
                format!("index.{}", pos.file_name()),
                format!("data.{}", pos.file_name()),
                format!("{}.exc", pos.file_name()),
            ] {
                fs::write(dir.join(file), "").unwrap();
            }
        }
        for (file, text) in files {
            fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    #[test]
    fn malformed_lines_name_path_and_line() {
        let dir = scratch(
            "bad-index",
            &[(
                "index.noun",
                "  1 licence header\n  2 more header\ndog n x 0 1 0\n",
            )],
        );
        let err = WordNet::load(&dir).err().expect("a broken index must fail");
        match &err {
            WordNetError::Parse {
                path,
                line,
                message,
            } => {
                assert_eq!(path, &dir.join("index.noun"));
                assert_eq!(*line, 3);
                assert!(message.contains("synset_cnt"), "{message}");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert!(err.to_string().contains("index.noun:3: "), "{err}");

        let data = "00000001 05 n 01 dog 0 001 @ 00000099 n 0000 | a dog\n";
        let dir2 = scratch("bad-pointer", &[("data.noun", data)]);
        match WordNet::load(&dir2) {
            Err(WordNetError::Parse { path, line: 1, .. }) => {
                assert_eq!(path, dir2.join("data.noun"))
            }
            other => panic!("unexpected result {:?}", other.err()),
        }

        let dir3 = scratch("missing", &[]);
        fs::remove_file(dir3.join("verb.exc")).unwrap();
        match WordNet::load(&dir3) {
            Err(WordNetError::Io { path, .. }) => assert_eq!(path, dir3.join("verb.exc")),
            other => panic!("unexpected result {:?}", other.err()),
        }
        for d in [dir, dir2, dir3] {
            fs::remove_dir_all(d).unwrap();
        }
    }
}
