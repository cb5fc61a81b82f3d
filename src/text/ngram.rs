//! Word n-gram language model with interpolated modified Kneser-Ney smoothing (Chen &
//! Goodman 1998), trained on a caption corpus. It is the fluency check for generated hard
//! negatives: a negative must not score much below the caption it was edited from.
//!
//! Besides `std` it uses only the checksum of `core::binfile`.
//!
//! Model. A sentence is scored as `<s> w1 .. wn </s>`, with a single `<s>` (as KenLM), so
//! the first word sees a bigram context. Words seen fewer than `min_count` times in
//! training become `<unk>`, which is an ordinary token with its own counts. The highest
//! order, and lower-order n-grams starting with `<s>` (they cannot be extended to the
//! left), use raw counts; other lower orders use continuation counts (the number of
//! distinct words seen before them). For order m and context h:
//!
//! `p_m(w|h) = max(c(hw) - D_m(c(hw)), 0) / c(h.) + gamma(h) * p_{m-1}(w|h')`, with
//! `gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / c(h.)`, `h'` = `h` without its first
//! word, an unseen context falling through to `p_{m-1}`, and `p_0` uniform over the
//! predicted tokens (known words, `</s>`, `<unk>`). Because every discount lies in
//! `(0, c]`, each `p_m(.|h)` sums to 1.
//!
//! File format (version 1), integers little-endian:
//! ```text
//! cmcl-ngram 1 order=3 min_count=2 body_bytes=<n> fnv1a64=<16 hex digits of FNV-1a over body>\n
//! body: u32 word count W, then W x (u32 byte length, UTF-8 bytes), sorted, ids 3.. in order
//!       (ids 0, 1, 2 are <unk>, <s>, </s>);
//!       then for m = 1..=order: u64 entry count E, then E x (m x u32 word ids, u32 count),
//!       sorted by ids; counts are the adjusted counts the model uses at order m.
//! ```
//! Context statistics and discounts are recomputed on load, so a loaded model scores
//! bit-for-bit like the one that was saved.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::core::binfile::fnv1a64;

const MAGIC: &str = "cmcl-ngram";
pub const VERSION: u32 = 1;
/// Word ids are packed `ID_BITS` each into a `u128` key, so n-grams hold at most 5 words.
pub const MAX_ORDER: usize = 5;
const ID_BITS: usize = 24;
const MAX_VOCAB: usize = 1 << ID_BITS;
const UNK: u32 = 0;
const BOS: u32 = 1;
const EOS: u32 = 2;
const SPECIALS: [&str; 3] = ["<unk>", "<s>", "</s>"];

#[derive(Debug)]
pub enum NgramError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    Format {
        path: PathBuf,
        message: String,
    },
}

impl fmt::Display for NgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NgramError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            NgramError::Format { path, message } => {
                write!(f, "{}: invalid n-gram model: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for NgramError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NgramError::Io { source, .. } => Some(source),
            NgramError::Format { .. } => None,
        }
    }
}

/// Splits a caption into lowercase words. A word is a maximal run of alphanumeric
/// characters (Unicode), which may contain apostrophes (`'` or `’`, stored as `'`) and
/// hyphens between two alphanumerics: "man's", "t-shirt". Everything else separates
/// words and is dropped, so "A man's T-shirt, (red)!" gives `a man's t-shirt red`.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |t| out.push(t.to_string()));
    out
}

/// `tokens` without an allocation per word: the hot path of training and scoring.
fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let mut word = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if matches!(c, '\'' | '\u{2019}' | '-')
            && !word.is_empty()
            && chars.peek().is_some_and(|n| n.is_alphanumeric())
        {
            word.push(if c == '-' { '-' } else { '\'' });
        } else if !word.is_empty() {
            f(&word);
            word.clear();
        }
    }
    if !word.is_empty() {
        f(&word);
    }
}

/// Multiply-rotate hasher with a final avalanche: much faster than SipHash for the
/// integer keys scored per token, and the maps are never exposed to untrusted keys.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.write_u64(u64::from(b)));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_u128(&mut self, x: u128) {
        self.write_u64(x as u64);
        self.write_u64((x >> 64) as u64);
    }
    fn finish(&self) -> u64 {
        // fmix64 from MurmurHash3: the table indexes by low bits, which the multiply alone
        // leaves weak.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Key of an n-gram: ids packed first word highest, so key order is lexicographic id
/// order and `key >> ID_BITS` is the n-gram's context.
fn push_front(key: u128, id: u32, len: usize) -> u128 {
    key | (u128::from(id) << (ID_BITS * len))
}

fn low_mask(words: usize) -> u128 {
    (1u128 << (ID_BITS * words)) - 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NgramConfig {
    /// Longest n-gram, 1..=`MAX_ORDER`.
    pub order: usize,
    /// Words seen fewer times than this in training become `<unk>`.
    pub min_count: u32,
}

impl Default for NgramConfig {
    fn default() -> Self {
        NgramConfig {
            order: 3,
            min_count: 2,
        }
    }
}

/// One n-gram: its adjusted count at its own order, and its statistics as the context
/// of the next order (sum of following counts, and how many followers had 1, 2, 3+).
#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    count: u32,
    total: u64,
    n: [u32; 3],
}

#[derive(Debug, Clone)]
pub struct NgramModel {
    order: usize,
    min_count: u32,
    /// Id -> word; ids 0..3 are the special tokens, the rest sorted.
    words: Vec<String>,
    ids: FastMap<String, u32>,
    /// `levels[m - 1]` holds the m-grams.
    levels: Vec<FastMap<u128, Entry>>,
    /// Context statistics of the empty context (order 1).
    root: Entry,
    /// `[0, D1, D2, D3+]` per order, indexed by min(count, 3).
    discounts: Vec<[f64; 4]>,
}

impl NgramModel {
    /// Trains on `sentences` (one caption each).
    ///
    /// # Panics
    /// If `config.order` is not in `1..=MAX_ORDER`.
    pub fn train<'a>(
        sentences: impl IntoIterator<Item = &'a str>,
        config: &NgramConfig,
    ) -> NgramModel {
        let order = config.order;
        assert!(
            (1..=MAX_ORDER).contains(&order),
            "n-gram order {order} not in 1..={MAX_ORDER}"
        );

        // Pass 1: intern with provisional ids (first-seen order), keeping the corpus as ids
        // so the text is tokenised once.
        let mut prov: FastMap<String, u32> = FastMap::default();
        let mut prov_words: Vec<String> = Vec::new();
        let mut freq: Vec<u64> = Vec::new();
        let mut flat: Vec<u32> = Vec::new();
        let mut ends: Vec<usize> = Vec::new();
        for sentence in sentences {
            for_each_token(sentence, |t| {
                let id = match prov.get(t) {
                    Some(&id) => id,
                    None => {
                        let id = prov_words.len() as u32;
                        prov.insert(t.to_string(), id);
                        prov_words.push(t.to_string());
                        freq.push(0);
                        id
                    }
                };
                freq[id as usize] += 1;
                flat.push(id);
            });
            ends.push(flat.len());
        }

        // Final ids: kept words sorted, so ids do not depend on the input order of words.
        let mut kept: Vec<u32> = (0..prov_words.len() as u32)
            .filter(|&p| freq[p as usize] >= u64::from(config.min_count.max(1)))
            .collect();
        // Beyond the id space only the most frequent words are kept; the rest are <unk>.
        kept.sort_by_key(|&p| (std::cmp::Reverse(freq[p as usize]), &prov_words[p as usize]));
        kept.truncate(MAX_VOCAB - SPECIALS.len());
        kept.sort_by(|&a, &b| prov_words[a as usize].cmp(&prov_words[b as usize]));
        let mut remap = vec![UNK; prov_words.len()];
        let mut words: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        for p in kept {
            remap[p as usize] = words.len() as u32;
            words.push(std::mem::take(&mut prov_words[p as usize]));
        }

        // Pass 2: raw counts of every m-gram of `<s> w1 .. wn </s>`.
        let mut counts: Vec<FastMap<u128, u32>> = vec![FastMap::default(); order];
        let mut seq: Vec<u32> = Vec::new();
        let mut start = 0;
        for &end in &ends {
            seq.clear();
            seq.push(BOS);
            seq.extend(flat[start..end].iter().map(|&p| remap[p as usize]));
            seq.push(EOS);
            start = end;
            for i in 0..seq.len() {
                let mut key = 0u128;
                for m in 1..=order.min(i + 1) {
                    key = push_front(key, seq[i + 1 - m], m - 1);
                    *counts[m - 1].entry(key).or_insert(0) += 1;
                }
            }
        }

        // Lower orders: continuation counts, except n-grams starting with <s>. Ascending m
        // reads `counts[m]` before it is itself replaced.
        for m in 1..order {
            let mut adjusted: FastMap<u128, u32> = FastMap::default();
            adjusted.reserve(counts[m - 1].len());
            for &key in counts[m].keys() {
                *adjusted.entry(key & low_mask(m)).or_insert(0) += 1;
            }
            for (&key, &c) in &counts[m - 1] {
                if (key >> (ID_BITS * (m - 1))) as u32 == BOS {
                    adjusted.insert(key, c);
                }
            }
            counts[m - 1] = adjusted;
        }
        Self::from_counts(order, config.min_count, words, counts)
    }

    /// Builds the model from its vocabulary and adjusted counts: context statistics and
    /// discounts. Shared by `train` and `load` so both score identically.
    fn from_counts(
        order: usize,
        min_count: u32,
        words: Vec<String>,
        counts: Vec<FastMap<u128, u32>>,
    ) -> NgramModel {
        let entry = |(&key, &count): (&u128, &u32)| {
            (
                key,
                Entry {
                    count,
                    ..Entry::default()
                },
            )
        };
        let mut levels: Vec<FastMap<u128, Entry>> = counts
            .iter()
            .map(|level| level.iter().map(entry).collect())
            .collect();
        let mut root = Entry::default();
        let mut discounts = Vec::with_capacity(order);
        for m in 1..=order {
            let mut count_of_counts = [0u64; 4];
            // Integer sums only, so the HashMap's visiting order cannot change the result.
            for (&key, &c) in &counts[m - 1] {
                if c == 0 || (m == 1 && key == u128::from(BOS)) {
                    continue; // <s> is never predicted
                }
                if c <= 4 {
                    count_of_counts[c as usize - 1] += 1;
                }
                let ctx = if m == 1 {
                    &mut root
                } else {
                    levels[m - 2].entry(key >> ID_BITS).or_default()
                };
                ctx.total += u64::from(c);
                ctx.n[c.min(3) as usize - 1] += 1;
            }
            discounts.push(estimate_discounts(count_of_counts));
        }
        let ids = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        NgramModel {
            order,
            min_count,
            words,
            ids,
            levels,
            root,
            discounts,
        }
    }

    /// Number of tokens the model predicts: known words plus `</s>` and `<unk>`.
    pub fn vocab_size(&self) -> usize {
        self.words.len() - 1
    }

    fn id(&self, word: &str) -> u32 {
        self.ids.get(word).copied().unwrap_or(UNK)
    }

    /// P(w | ctx); `ctx` holds the preceding ids, most recent last (only the last
    /// `order - 1` are used).
    fn prob(&self, ctx: &[u32], w: u32) -> f64 {
        let ctx = &ctx[ctx.len().saturating_sub(self.order - 1)..];
        let mut p = 1.0 / self.vocab_size() as f64;
        let mut ctx_key = 0u128;
        for m in 1..=ctx.len() + 1 {
            let stats = if m == 1 {
                &self.root
            } else {
                ctx_key = push_front(ctx_key, ctx[ctx.len() + 1 - m], m - 2);
                match self.levels[m - 2].get(&ctx_key) {
                    Some(e) => e,
                    None => break, // unseen context: so is every longer one
                }
            };
            if stats.total == 0 {
                break;
            }
            let c = self.levels[m - 1]
                .get(&((ctx_key << ID_BITS) | u128::from(w)))
                .map_or(0, |e| e.count);
            let d = &self.discounts[m - 1];
            let total = stats.total as f64;
            let n = stats.n.map(f64::from);
            let gamma = (d[1] * n[0] + d[2] * n[1] + d[3] * n[2]) / total;
            p = (f64::from(c) - d[c.min(3) as usize]).max(0.0) / total + gamma * p;
        }
        p
    }

    /// Natural log of P(token | history) for each token of `sentence`, then for `</s>`.
    pub fn token_log_probs(&self, sentence: &str) -> Vec<f64> {
        let mut ids = vec![BOS];
        for_each_token(sentence, |t| ids.push(self.id(t)));
        ids.push(EOS);
        (1..ids.len())
            .map(|i| self.prob(&ids[..i], ids[i]).ln())
            .collect()
    }

    /// Natural log of P(tokens + `</s>`).
    pub fn log_prob(&self, sentence: &str) -> f64 {
        self.token_log_probs(sentence).iter().sum()
    }

    /// `log_prob` divided by (token count + 1), comparable across lengths.
    pub fn mean_log_prob(&self, sentence: &str) -> f64 {
        let lps = self.token_log_probs(sentence);
        lps.iter().sum::<f64>() / lps.len() as f64
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        let regular = &self.words[SPECIALS.len()..];
        body.extend_from_slice(&(regular.len() as u32).to_le_bytes());
        for w in regular {
            body.extend_from_slice(&(w.len() as u32).to_le_bytes());
            body.extend_from_slice(w.as_bytes());
        }
        for (m, level) in (1..).zip(&self.levels) {
            // Sorted: HashMap order must never reach the file.
            let mut entries: Vec<(u128, u32)> = level.iter().map(|(&k, e)| (k, e.count)).collect();
            entries.sort_unstable_by_key(|&(k, _)| k);
            body.extend_from_slice(&(entries.len() as u64).to_le_bytes());
            for (key, count) in entries {
                for i in (0..m).rev() {
                    let id = ((key >> (ID_BITS * i)) & low_mask(1)) as u32;
                    body.extend_from_slice(&id.to_le_bytes());
                }
                body.extend_from_slice(&count.to_le_bytes());
            }
        }
        let header = format!(
            "{MAGIC} {VERSION} order={} min_count={} body_bytes={} fnv1a64={:016x}\n",
            self.order,
            self.min_count,
            body.len(),
            fnv1a64(&body)
        );
        let mut out = header.into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Writes the model atomically: temp file in the same directory, fsync, rename.
    pub fn save(&self, path: &Path) -> Result<(), NgramError> {
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| NgramError::Io { path: p, source }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let bytes = self.to_bytes();
        let result = (|| {
            let mut file = File::create(&tmp).map_err(io(&tmp))?;
            file.write_all(&bytes).map_err(io(&tmp))?;
            file.sync_all().map_err(io(&tmp))?;
            fs::rename(&tmp, path).map_err(io(path))
        })();
        if result.is_err() {
            // Leave nothing a later run could mistake for a model.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Reads a model written by `save`; a truncated, corrupt or foreign file is a
    /// `Format` error naming `path`.
    pub fn load(path: &Path) -> Result<NgramModel, NgramError> {
        let bytes = fs::read(path).map_err(|source| NgramError::Io {
            path: path.into(),
            source,
        })?;
        Self::parse(&bytes).map_err(|message| NgramError::Format {
            path: path.into(),
            message,
        })
    }

    fn parse(bytes: &[u8]) -> Result<NgramModel, String> {
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("no header line")?;
        let header = String::from_utf8_lossy(&bytes[..nl]);
        let f: Vec<&str> = header.split(' ').collect();
        if f[0] != MAGIC || f.get(1).and_then(|v| v.parse().ok()) != Some(VERSION) {
            return Err(format!("not a {MAGIC} version {VERSION} file: {header:?}"));
        }
        let num = |i: usize, name: &str, radix: u32| {
            let value = f.get(i)?.strip_prefix(name)?.strip_prefix('=')?;
            u64::from_str_radix(value, radix).ok()
        };
        let (6, Some(order), Some(min_count), Some(body_len), Some(sum)) = (
            f.len(),
            num(2, "order", 10),
            num(3, "min_count", 10),
            num(4, "body_bytes", 10),
            num(5, "fnv1a64", 16),
        ) else {
            return Err(format!("malformed header {header:?}"));
        };
        let mut body = &bytes[nl + 1..];
        if body.len() as u64 != body_len {
            let n = body.len();
            return Err(format!(
                "body is {n} bytes, header says {body_len} (truncated?)"
            ));
        }
        if fnv1a64(body) != sum {
            return Err("checksum mismatch (corrupt file)".into());
        }
        let order = order as usize;
        let min_count = u32::try_from(min_count).map_err(|_| "min_count out of range")?;
        if !(1..=MAX_ORDER).contains(&order) {
            return Err(format!("order {order} not in 1..={MAX_ORDER}"));
        }

        let n_words = read_u32(&mut body)? as usize;
        if n_words > MAX_VOCAB - SPECIALS.len() {
            return Err(format!("{n_words} words exceed the limit"));
        }
        let mut words: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
        for _ in 0..n_words {
            let len = read_u32(&mut body)? as usize;
            let w = std::str::from_utf8(take(&mut body, len)?).map_err(|e| e.to_string())?;
            // Sorted and unique, as `train` writes them, so ids are unambiguous.
            if words.len() > SPECIALS.len() && words.last().is_some_and(|p| p.as_str() >= w) {
                return Err(format!("words not sorted at id {}", words.len()));
            }
            words.push(w.to_string());
        }
        let mut counts = Vec::with_capacity(order);
        for m in 1..=order {
            let n = read_u64(&mut body)?;
            // Checked before reserving, so a bad count cannot exhaust memory.
            if n > (body.len() / (4 * (m + 1))) as u64 {
                return Err(format!("order {m}: {n} entries do not fit the file"));
            }
            let mut level: FastMap<u128, u32> = FastMap::default();
            level.reserve(n as usize);
            for _ in 0..n {
                let mut key = 0u128;
                for _ in 0..m {
                    let id = read_u32(&mut body)?;
                    if id as usize >= words.len() {
                        return Err(format!("order {m}: word id {id} out of range"));
                    }
                    key = (key << ID_BITS) | u128::from(id);
                }
                level.insert(key, read_u32(&mut body)?);
            }
            counts.push(level);
        }
        if !body.is_empty() {
            return Err(format!("{} trailing bytes", body.len()));
        }
        Ok(Self::from_counts(order, min_count, words, counts))
    }
}

/// Modified Kneser-Ney discounts from the counts-of-counts n1..n4 (Chen & Goodman).
/// When that estimate is degenerate (a zero count-of-count, or a discount outside
/// `(0, c]`, which would break normalisation), falls back to the single Kneser-Ney
/// discount `n1 / (n1 + 2 n2)`, and to 0.5 when even that is undefined.
fn estimate_discounts(n: [u64; 4]) -> [f64; 4] {
    let [n1, n2, n3, n4] = n.map(|x| x as f64);
    if n1 == 0.0 || n2 == 0.0 {
        return [0.0, 0.5, 0.5, 0.5];
    }
    let y = n1 / (n1 + 2.0 * n2);
    if n3 > 0.0 && n4 > 0.0 {
        let d = [0.0, y, 2.0 - 3.0 * y * n3 / n2, 3.0 - 4.0 * y * n4 / n3]; // D1 = y exactly
        if (1..4).all(|c| d[c] > 0.0 && d[c] <= c as f64) {
            return d;
        }
    }
    [0.0, y, y, y]
}

fn take<'a>(body: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if body.len() < n {
        return Err("body ends early".into());
    }
    let (head, rest) = body.split_at(n);
    *body = rest;
    Ok(head)
}

fn read_u32(body: &mut &[u8]) -> Result<u32, String> {
    Ok(u32::from_le_bytes(take(body, 4)?.try_into().unwrap()))
}

fn read_u64(body: &mut &[u8]) -> Result<u64, String> {
    Ok(u64::from_le_bytes(take(body, 8)?.try_into().unwrap()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &[&str] = &[
        "A man riding a horse on the beach.",
        "A man riding a bike down the street.",
        "A woman riding a horse in a field.",
        "Two dogs playing on the beach.",
        "A dog playing with a frisbee in the park.",
        "A man's T-shirt hanging on a line.",
        "A woman holding an umbrella in the rain.",
        "A cat sitting on a wooden bench.",
        "A man sitting on a bench in the park.",
        "Two men riding horses on the beach.",
        "A zebra standing in a field.",
    ];

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cmcl-ngram-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn shuffled(sentence: &str, state: &mut u64) -> String {
        let mut words = tokens(sentence);
        for i in (1..words.len()).rev() {
            words.swap(i, (xorshift(state) % (i as u64 + 1)) as usize);
        }
        words.join(" ")
    }

    /// The captions of a COCO captions file.
    fn coco_captions(path: &Path) -> Option<Vec<String>> {
        let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(path).ok()?).ok()?;
        json["annotations"]
            .as_array()?
            .iter()
            .map(|a| a["caption"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn tokenisation() {
        assert_eq!(
            tokens("A man's T-shirt, (red)! 'quoted' a--b x- 2 cats’ toys"),
            ["a", "man's", "t-shirt", "red", "quoted", "a", "b", "x", "2", "cats", "toys"]
        );
        assert_eq!(tokens("Don’t"), ["don't"]);
        assert!(tokens(" ,.! ").is_empty());
    }

    #[test]
    fn empty_corpus_is_uniform() {
        let model = NgramModel::train([], &NgramConfig::default());
        assert_eq!(model.vocab_size(), 2); // <unk>, </s>
        assert!((model.log_prob("anything") - 2.0 * 0.5f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn probabilities_sum_to_one() {
        for order in 1..=4 {
            for min_count in [1, 2] {
                let model =
                    NgramModel::train(SMALL.iter().copied(), &NgramConfig { order, min_count });
                let id = |w: &str| model.id(w);
                assert_eq!(id("zzz"), UNK);
                let contexts: Vec<Vec<u32>> = vec![
                    vec![],
                    vec![BOS],
                    vec![BOS, id("a")],
                    vec![id("a"), id("man")],
                    vec![id("riding"), id("a"), id("horse")],
                    vec![id("horse"), id("a")], // seen words, unseen pair
                    vec![UNK, UNK],             // <unk> context
                    vec![id("beach"), id("zebra")], // unseen context
                    vec![BOS, id("zebra"), id("the")],
                ];
                for ctx in &contexts {
                    let sum: f64 = (0..model.words.len() as u32)
                        .filter(|&w| w != BOS)
                        .map(|w| model.prob(ctx, w))
                        .sum();
                    assert!(
                        (sum - 1.0).abs() < 1e-9,
                        "order {order} min {min_count} ctx {ctx:?}: {sum}"
                    );
                }
            }
        }
    }

    #[test]
    fn fluent_beats_shuffled_and_unknown_words_score() {
        let model = NgramModel::train(SMALL.iter().copied(), &NgramConfig::default());
        let fluent = model.mean_log_prob("a man riding a horse on the beach");
        let scrambled = model.mean_log_prob("beach the on horse a riding man a");
        assert!(fluent > scrambled, "{fluent} vs {scrambled}");
        assert_eq!(model.token_log_probs("a man riding").len(), 4);
        // Unseen words become <unk>: finite and below the known word.
        let unseen = model.log_prob("a giraffe riding a horse");
        let known = model.log_prob("a man riding a horse");
        assert!(unseen.is_finite() && unseen < known, "{unseen} vs {known}");
        assert!(model.log_prob("").is_finite());
        assert!(model.log_prob("qwerty asdf").is_finite());
    }

    #[test]
    fn save_load_round_trip_and_determinism() {
        let dir = temp_dir("roundtrip");
        let config = NgramConfig {
            order: 3,
            min_count: 1,
        };
        let model = NgramModel::train(SMALL.iter().copied(), &config);
        let (a, b, c) = (dir.join("a.lm"), dir.join("b.lm"), dir.join("c.lm"));
        model.save(&a).unwrap();
        // Training again (even on reversed input) gives the same bytes.
        NgramModel::train(SMALL.iter().rev().copied(), &config)
            .save(&b)
            .unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
        let loaded = NgramModel::load(&a).unwrap();
        assert_eq!(loaded.vocab_size(), model.vocab_size());
        for s in SMALL
            .iter()
            .copied()
            .chain(["a giraffe eating", "", "the the the"])
        {
            assert_eq!(model.token_log_probs(s), loaded.token_log_probs(s), "{s}");
        }
        loaded.save(&c).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&c).unwrap());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 3, "temp files left behind: {names:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_and_truncated_files_are_errors() {
        let dir = temp_dir("corrupt");
        let path = dir.join("m.lm");
        NgramModel::train(SMALL.iter().copied(), &NgramConfig::default())
            .save(&path)
            .unwrap();
        let good = fs::read(&path).unwrap();
        let header_len = good.iter().position(|&b| b == b'\n').unwrap() + 1;
        let mut flipped = good.clone();
        flipped[header_len + 20] ^= 0x40;
        let mut bad_magic = good.clone();
        bad_magic[0] = b'x';
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", good[..good.len() - 3].to_vec()),
            ("header only", good[..header_len].to_vec()),
            ("half header", good[..header_len / 2].to_vec()),
            ("flipped", flipped),
            ("magic", bad_magic),
            ("empty", Vec::new()),
        ];
        for (what, bytes) in cases {
            fs::write(&path, &bytes).unwrap();
            let err = NgramModel::load(&path).unwrap_err();
            assert!(matches!(err, NgramError::Format { .. }), "{what}: {err}");
            assert!(err.to_string().contains("m.lm"), "{what}: {err}");
        }
        let missing = NgramModel::load(&dir.join("missing.lm")).unwrap_err();
        assert!(
            matches!(missing, NgramError::Io { .. }) && missing.to_string().contains("missing.lm")
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn coco_held_out_beats_shuffled() {
        let path = crate::test_data_dir().join("coco/annotations/captions_val2017.json");
        let captions = coco_captions(&path).unwrap_or_else(|| {
            panic!(
                "{} not readable (tests read ../shared/data)",
                path.display()
            )
        });
        assert!(
            captions.len() > 5_000,
            "only {} captions parsed",
            captions.len()
        );
        let (train, held) = captions.split_at(captions.len() - 1_000);
        let model = NgramModel::train(train.iter().map(String::as_str), &NgramConfig::default());
        let mut state = 0x9e37_79b9_7f4a_7c15;
        let shuffled: Vec<String> = held.iter().map(|c| shuffled(c, &mut state)).collect();
        let mean = |set: &[String]| {
            set.iter().map(|c| model.mean_log_prob(c)).sum::<f64>() / set.len() as f64
        };
        let (real, shuf) = (mean(held), mean(&shuffled));
        assert!(real > shuf + 0.5, "real {real} vs shuffled {shuf}");
    }
}
