//! Scoring scene graphs against gold ones (`cmcl eval-parser`).
//!
//! Matching rule, applied to gold and predicted triples alike, so any parser's output in
//! the same format is scored the same way:
//! 1. Lowercase, drop articles (a, an, the), collapse spaces.
//! 2. Subject and object: the last word becomes its singular noun lemma ("boats" -> "boat").
//! 3. Predicate: a leading verb becomes its lemma ("sitting on" -> "sit on"); spatial
//!    synonyms map to one form ([`SPATIAL_SYNONYMS`]: "beside" -> "next to").
//! 4. Attribute values (predicate "is"): count words become digits ("two" -> "2").
//! 5. Per caption, triples form a set; precision and recall are micro-averaged over all
//!    captions, for all triples and separately for attributes and relations. Set match
//!    is the share of captions whose predicted set equals the gold set exactly. Lone
//!    objects ("( pole )") carry no triple and are not scored.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::lexicon::{canonical_spatial, without_articles, Lexicon, WordClass};
use super::Parser;
use crate::core::error::{Error, Result};

pub type Triple = [String; 3];

/// One captioned gold graph.
#[derive(Debug, Clone)]
pub struct GoldCaption {
    /// Where it came from, for error messages ("dev.csv:12").
    pub line: u64,
    pub caption: String,
    pub triples: Vec<Triple>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub gold: u64,
    pub predicted: u64,
    pub correct: u64,
}

impl Prf {
    fn from_counts(correct: u64, predicted: u64, gold: u64) -> Prf {
        let precision = if predicted == 0 {
            0.0
        } else {
            correct as f64 / predicted as f64
        };
        let recall = if gold == 0 {
            0.0
        } else {
            correct as f64 / gold as f64
        };
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            precision,
            recall,
            f1,
            gold,
            predicted,
            correct,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub captions: usize,
    pub all: Prf,
    pub attributes: Prf,
    pub relations: Prf,
    pub set_match: f64,
    /// Parsing time, when this run parsed (absent when scoring given predictions).
    pub parse_seconds: Option<f64>,
    pub captions_per_second: Option<f64>,
}

/// Reads FACTUAL-format CSV (`image_id,region_id,caption,scene_graph`) or cmcl JSONL
/// (`caption` plus `scene_graph` with objects and relations, as `cmcl synth` writes).
pub fn read_gold(path: &Path) -> Result<Vec<GoldCaption>> {
    if path.extension().is_some_and(|e| e == "jsonl") {
        read_jsonl(path)
    } else {
        read_factual(path)
    }
}

fn read_factual(path: &Path) -> Result<Vec<GoldCaption>> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(path, e))?;
    let headers = reader.headers().map_err(|e| csv_error(path, e))?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::input(path, 1, format!("missing column '{name}'")))
    };
    let caption_at = column("caption")?;
    let graph_at = column("scene_graph")?;
    let mut out = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row as u64 + 2;
        let record = record.map_err(|e| Error::input(path, line, e.to_string()))?;
        let (Some(caption), Some(graph)) = (record.get(caption_at), record.get(graph_at)) else {
            return Err(Error::input(path, line, "row has too few fields"));
        };
        out.push(GoldCaption {
            line,
            caption: caption.to_string(),
            triples: parse_triples(graph).map_err(|m| Error::input(path, line, m))?,
        });
    }
    Ok(out)
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(0, |p| p.line());
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        _ => Error::input(path, line, message),
    }
}

/// `( a , b , c ) , ( d )`: triples; one-element groups are lone objects and skipped.
pub fn parse_triples(text: &str) -> std::result::Result<Vec<Triple>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ']);
        if rest.is_empty() {
            break;
        }
        let Some(body) = rest.strip_prefix('(') else {
            return Err(format!("expected '(' at {rest:?}"));
        };
        let Some(close) = body.find(')') else {
            return Err(format!("unclosed '(' in {text:?}"));
        };
        let parts: Vec<String> = body[..close]
            .split(',')
            .map(|p| p.trim().to_string())
            .collect();
        match parts.len() {
            1 => {}
            3 => out.push([parts[0].clone(), parts[1].clone(), parts[2].clone()]),
            n => return Err(format!("a group has {n} parts, expected 1 or 3: {text:?}")),
        }
        rest = &body[close + 1..];
    }
    Ok(out)
}

#[derive(Deserialize)]
struct JsonlGold {
    caption: String,
    scene_graph: JsonlGraph,
}

#[derive(Deserialize)]
struct JsonlGraph {
    objects: Vec<JsonlObject>,
    #[serde(default)]
    relations: Vec<JsonlRelation>,
}

#[derive(Deserialize)]
struct JsonlObject {
    name: String,
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default = "one")]
    count: usize,
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
struct JsonlRelation {
    subject: usize,
    predicate: String,
    object: usize,
}

fn read_jsonl(path: &Path) -> Result<Vec<GoldCaption>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let gold: JsonlGold = serde_json::from_str(line)
            .map_err(|e| Error::input(path, line_no, format!("not a gold scene graph: {e}")))?;
        let objects = &gold.scene_graph.objects;
        let mut triples = Vec::new();
        for o in objects {
            for a in &o.attributes {
                triples.push([o.name.clone(), "is".into(), a.clone()]);
            }
            if o.count > 1 {
                triples.push([o.name.clone(), "is".into(), o.count.to_string()]);
            }
        }
        for r in &gold.scene_graph.relations {
            let (Some(s), Some(o)) = (objects.get(r.subject), objects.get(r.object)) else {
                return Err(Error::input(
                    path,
                    line_no,
                    "relation names a missing object",
                ));
            };
            triples.push([s.name.clone(), r.predicate.clone(), o.name.clone()]);
        }
        out.push(GoldCaption {
            line: line_no,
            caption: gold.caption,
            triples,
        });
    }
    Ok(out)
}

/// The normal form of a triple under the matching rule above.
pub fn normalise(lexicon: &Lexicon, triple: &Triple) -> Triple {
    let words = |s: &str| -> Vec<String> {
        without_articles(s)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let noun = |s: &str| {
        let mut words = words(s);
        if let Some(last) = words.last_mut() {
            *last = lexicon.noun_lemma(last);
        }
        words.join(" ")
    };
    let predicate = if lexicon.is_preposition_phrase(&triple[1]) {
        canonical_spatial(&triple[1])
    } else {
        let mut words = words(&triple[1]);
        if let Some(first) = words.first_mut() {
            if matches!(lexicon.class(first), WordClass::Open { verb: true, .. }) {
                *first = lexicon.verb_lemma(first);
            }
        }
        canonical_spatial(&words.join(" "))
    };
    let object = if predicate == "is" {
        words(&triple[2])
            .into_iter()
            .map(|w| lexicon.number_value(&w).map_or(w, |n| n.to_string()))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        noun(&triple[2])
    };
    [noun(&triple[0]), predicate, object]
}

/// Scores predicted triples (one list per gold caption, same order) against the gold.
pub fn score(lexicon: &Lexicon, gold: &[GoldCaption], predicted: &[Vec<Triple>]) -> EvalReport {
    let mut counts = [[0u64; 3]; 2]; // [attribute, relation] x [correct, predicted, gold]
    let mut set_matches = 0usize;
    for (g, p) in gold.iter().zip(predicted) {
        let g: BTreeSet<Triple> = g.triples.iter().map(|t| normalise(lexicon, t)).collect();
        let p: BTreeSet<Triple> = p.iter().map(|t| normalise(lexicon, t)).collect();
        if g == p {
            set_matches += 1;
        }
        let kind = |t: &Triple| usize::from(t[1] != "is");
        for t in &p {
            counts[kind(t)][1] += 1;
            if g.contains(t) {
                counts[kind(t)][0] += 1;
            }
        }
        for t in &g {
            counts[kind(t)][2] += 1;
        }
    }
    let prf = |c: [u64; 3]| Prf::from_counts(c[0], c[1], c[2]);
    let total = [0, 1, 2].map(|k| counts[0][k] + counts[1][k]);
    EvalReport {
        captions: gold.len(),
        all: prf(total),
        attributes: prf(counts[0]),
        relations: prf(counts[1]),
        set_match: if gold.is_empty() {
            0.0
        } else {
            set_matches as f64 / gold.len() as f64
        },
        parse_seconds: None,
        captions_per_second: None,
    }
}

/// Parses every gold caption and scores the result; parse time on one thread.
pub fn evaluate(parser: &Parser, gold: &[GoldCaption]) -> EvalReport {
    let started = Instant::now();
    let predicted: Vec<Vec<Triple>> = gold
        .iter()
        .map(|g| parser.parse(&g.caption).triples())
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let mut report = score(parser.lexicon(), gold, &predicted);
    report.parse_seconds = Some(seconds);
    report.captions_per_second = Some(gold.len() as f64 / seconds.max(1e-9));
    report
}

/// Reads another parser's predictions in FACTUAL format, row for row with `gold`.
pub fn read_predictions(path: &Path, gold: &[GoldCaption]) -> Result<Vec<Vec<Triple>>> {
    let rows = read_factual(path)?;
    if rows.len() != gold.len() {
        return Err(Error::input(
            path,
            0,
            format!(
                "{} predictions for {} gold captions",
                rows.len(),
                gold.len()
            ),
        ));
    }
    for (p, g) in rows.iter().zip(gold) {
        if p.caption != g.caption {
            return Err(Error::input(
                path,
                p.line,
                format!(
                    "caption {:?} does not match gold {:?}",
                    p.caption, g.caption
                ),
            ));
        }
    }
    Ok(rows.into_iter().map(|r| r.triples).collect())
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "captions: {}", self.captions)?;
        writeln!(
            f,
            "{:<11} {:>9} {:>9} {:>9} {:>7} {:>7}",
            "triples", "precision", "recall", "F1", "gold", "pred"
        )?;
        for (name, p) in [
            ("all", &self.all),
            ("attributes", &self.attributes),
            ("relations", &self.relations),
        ] {
            writeln!(
                f,
                "{name:<11} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>7}",
                p.precision, p.recall, p.f1, p.gold, p.predicted
            )?;
        }
        write!(f, "exact set match: {:.3}", self.set_match)?;
        if let Some(rate) = self.captions_per_second {
            write!(f, "\nparse speed: {rate:.0} captions/s (one thread)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(t: [&str; 3]) -> [String; 3] {
        let lexicon = crate::text::parse::tests::parser().lexicon();
        normalise(lexicon, &t.map(str::to_string))
    }

    #[test]
    fn the_matching_rule() {
        assert_eq!(
            norm(["Boats", "tied to", "the dock"]),
            ["boat", "tie to", "dock"]
        );
        assert_eq!(
            norm(["cat", "lying on", "bed"]),
            norm(["cat", "lay on", "bed"])
        );
        assert_eq!(norm(["boats", "is", "five"]), ["boat", "is", "5"]);
        assert_eq!(
            norm(["star", "beside", "disc"]),
            ["star", "next to", "disc"]
        );
        assert_eq!(
            norm(["star", "to the left of", "disc"]),
            ["star", "left of", "disc"]
        );
        assert_eq!(
            norm(["star", "left of", "disc"]),
            ["star", "left of", "disc"]
        );
        assert_eq!(
            norm(["potato chips", "on", "plate"]),
            ["potato chip", "on", "plate"]
        );
    }

    #[test]
    fn triples_text() {
        assert_eq!(
            parse_triples("( stove , is , white ) , ( pole ) , ( a , in , b )").unwrap(),
            [["stove", "is", "white"], ["a", "in", "b"]].map(|t| t.map(str::to_string))
        );
        assert!(parse_triples("( a , b )").is_err());
        assert!(parse_triples("( a , b , c").is_err());
        assert!(parse_triples("a , b , c").is_err());
    }

    #[test]
    fn scores_count_sets_per_caption() {
        let lexicon = crate::text::parse::tests::parser().lexicon();
        let t = |a: &str, b: &str, c: &str| [a.to_string(), b.to_string(), c.to_string()];
        let gold = vec![GoldCaption {
            line: 2,
            caption: "two dogs on a bed".into(),
            triples: vec![t("dogs", "on", "bed"), t("dogs", "is", "2")],
        }];
        let report = score(
            lexicon,
            &gold,
            &[vec![t("dog", "on", "bed"), t("bed", "is", "red")]],
        );
        assert_eq!(
            (report.relations.correct, report.relations.predicted),
            (1, 1)
        );
        assert_eq!((report.attributes.correct, report.attributes.gold), (0, 1));
        assert_eq!(report.all.precision, 0.5);
        assert_eq!(report.set_match, 0.0);
    }
}
