//! Ingest: reads every input source into a [`Corpus`], streaming record by record.
//!
//! A bad record (invalid UTF-8, empty or oversized caption, missing field, duplicate id,
//! unparsable line) never stops the run and is never dropped silently: it becomes a
//! [`Reject`] naming its file and line, written to `rejects.jsonl` and counted. A file
//! that cannot be read at all (missing, truncated JSON, missing required column) is an
//! [`Error`] naming the file.

mod coco;
pub mod config;
mod flickr;
mod table;
pub mod webdataset;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::core::error::{Error, Result};
use crate::core::record::{pair_uid, Corpus, CorpusImage, CorpusText, Pair};
use crate::embed::image::ImageNeed;
use crate::ingest::config::{Format, IngestConfig, Inputs, Source};

/// Why a record was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    InvalidUtf8,
    EmptyCaption,
    OversizedCaption,
    MissingField,
    MalformedRecord,
    DuplicateId,
    BadVector,
    /// A tar archive with an unreadable header or cut off before a member's end.
    BadArchive,
    /// An image member whose header cannot be read.
    UnreadableImage,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::InvalidUtf8 => "invalid_utf8",
            RejectReason::EmptyCaption => "empty_caption",
            RejectReason::OversizedCaption => "oversized_caption",
            RejectReason::MissingField => "missing_field",
            RejectReason::MalformedRecord => "malformed_record",
            RejectReason::DuplicateId => "duplicate_id",
            RejectReason::BadVector => "bad_vector",
            RejectReason::BadArchive => "bad_archive",
            RejectReason::UnreadableImage => "unreadable_image",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Reject {
    /// `file:line` of the record.
    pub source: String,
    /// The record's id when it had a readable one.
    pub record: Option<String>,
    pub reason: RejectReason,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct IngestReport {
    pub read: u64,
    pub rejects: Vec<Reject>,
}

impl IngestReport {
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for r in &self.rejects {
            *counts.entry(r.reason.as_str().to_string()).or_insert(0) += 1;
        }
        counts
    }
}

/// A field as read: `None` when absent or null, `Err` (with why) when present but unusable.
pub(crate) type Field<T> = Option<std::result::Result<T, String>>;

/// One record as a reader saw it, before validation.
#[derive(Debug, Default)]
pub(crate) struct RawRow {
    pub location: String,
    /// A fault of the whole record (bad JSON line, line without a tab, ...).
    pub problem: Option<(RejectReason, String)>,
    pub id: Field<String>,
    pub image_id: Field<String>,
    pub text: Field<String>,
    pub image_path: Field<String>,
    pub image_vector: Field<Vec<f32>>,
    pub objects: Field<Vec<String>>,
}

impl RawRow {
    pub(crate) fn broken(
        location: String,
        reason: RejectReason,
        detail: impl Into<String>,
    ) -> Self {
        RawRow {
            location,
            problem: Some((reason, detail.into())),
            ..RawRow::default()
        }
    }
}

/// What a source's records are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Pairs,
    Images,
    Texts,
}

/// Reads all inputs. Fails on unreadable files and when rejects exceed the allowed share.
pub fn ingest(inputs: &Inputs, config: &IngestConfig) -> Result<(Corpus, IngestReport)> {
    let mut corpus = Corpus::default();
    let mut report = IngestReport::default();
    let (mut seen_pairs, mut seen_images, mut seen_texts) = Default::default();
    let pairs = &mut corpus.pairs;
    read_role(
        &inputs.pairs,
        Role::Pairs,
        &mut report,
        pairs,
        &mut |row, source| {
            validate_pair(row, &dataset_name(source), source, config, &mut seen_pairs)
        },
    )?;
    let images = &mut corpus.images;
    read_role(
        &inputs.image_corpus,
        Role::Images,
        &mut report,
        images,
        &mut |row, source| validate_image(row, source, &mut seen_images),
    )?;
    let texts = &mut corpus.texts;
    read_role(
        &inputs.text_corpus,
        Role::Texts,
        &mut report,
        texts,
        &mut |row, _| validate_text(row, config, &mut seen_texts),
    )?;
    Ok((corpus, report))
}

/// Reads every source of one role, keeping the records `validate` accepts and counting
/// the rest as rejects.
fn read_role<T>(
    sources: &[Source],
    role: Role,
    report: &mut IngestReport,
    kept: &mut Vec<T>,
    validate: &mut dyn FnMut(RawRow, &Source) -> std::result::Result<T, Reject>,
) -> Result<()> {
    for source in sources {
        read_source(source, role, &mut |row| {
            report.read += 1;
            match validate(row, source) {
                Ok(record) => kept.push(record),
                Err(reject) => report.rejects.push(reject),
            }
        })?;
    }
    Ok(())
}

/// Fails when the rejected share is above `max_reject_share`.
pub fn check_reject_share(
    report: &IngestReport,
    config: &IngestConfig,
    rejects_file: &Path,
) -> Result<()> {
    let rejected = report.rejects.len() as u64;
    let share = if report.read == 0 {
        0.0
    } else {
        rejected as f64 / report.read as f64
    };
    if share > config.max_reject_share {
        return Err(Error::TooManyRejects {
            rejected,
            total: report.read,
            share: share * 100.0,
            max_share: config.max_reject_share * 100.0,
            rejects_file: rejects_file.to_path_buf(),
        });
    }
    Ok(())
}

fn dataset_name(source: &Source) -> String {
    source.dataset.clone().unwrap_or_else(|| {
        source
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into())
    })
}

fn read_source(source: &Source, role: Role, sink: &mut dyn FnMut(RawRow)) -> Result<()> {
    match source.format {
        Format::Coco => coco::read(source, sink),
        Format::Flickr8k => flickr::read(source, sink),
        Format::Jsonl => table::read_jsonl(source, role, sink),
        Format::Csv => table::read_csv(source, role, sink),
        Format::Parquet => table::read_parquet(source, role, sink),
        Format::Webdataset => webdataset::read(source, role, sink),
    }
}

/// The files `source` reads: its path, or for webdataset every tar of its pattern and
/// the parquet listing beside each that is read.
pub fn source_files(source: &Source) -> Result<Vec<PathBuf>> {
    if source.format != Format::Webdataset {
        return Ok(vec![source.path.clone()]);
    }
    webdataset::files(source)
}

/// Whether the records of pair source `source` carry what `need` asks for, judged from
/// the file's header, schema or first record (no more is read); why not when they
/// do not. A file not there yet passes: reading it is ingest's to fail.
pub fn check_images(source: &Source, need: ImageNeed) -> Result<std::result::Result<(), String>> {
    let columns = &source.columns;
    let column = match need {
        ImageNeed::Pixels => columns.image_path.as_deref(),
        ImageNeed::Vectors => columns.image_vector.as_deref(),
    };
    let missing = |why: String| Ok(Err(why));
    let Some(column) = column else {
        let field = ["image_path", "image_vector"][usize::from(need == ImageNeed::Vectors)];
        return missing(format!("columns.{field} is not set"));
    };
    let path = &source.path;
    let peeked = matches!(source.format, Format::Jsonl | Format::Csv | Format::Parquet);
    if peeked && !path.exists() {
        // Not there yet (generated later, as `make augment` does): ingest names it.
        return Ok(Ok(()));
    }
    let present = match (source.format, need) {
        (Format::Coco | Format::Webdataset, ImageNeed::Pixels) => true,
        (Format::Coco | Format::Flickr8k, ImageNeed::Vectors) => false,
        (Format::Webdataset, ImageNeed::Vectors) => true,
        (Format::Flickr8k, ImageNeed::Pixels) => {
            return match source.images_dir {
                Some(_) => Ok(Ok(())),
                None => missing("a Flickr8k source gives pixels only with images_dir".into()),
            };
        }
        (Format::Jsonl, _) => {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let first = BufReader::new(file)
                .lines()
                .map_while(std::result::Result::ok)
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            serde_json::from_str::<serde_json::Value>(&first)
                .ok()
                .and_then(|v| v.get(column).map(|v| !v.is_null()))
                .unwrap_or(false)
        }
        (Format::Csv, _) => {
            let mut reader =
                csv::Reader::from_path(path).map_err(|e| Error::input(path, 1, e.to_string()))?;
            let headers = reader
                .headers()
                .map_err(|e| Error::input(path, 1, e.to_string()))?;
            headers.iter().any(|h| h.trim() == column)
        }
        (Format::Parquet, _) => {
            let file = File::open(path).map_err(|e| Error::io(path, e))?;
            let builder =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
                    .map_err(|e| Error::input(path, 0, e.to_string()))?;
            builder.schema().field_with_name(column).is_ok()
        }
    };
    match present {
        true => Ok(Ok(())),
        false => missing(format!("its records have no {column:?} field")),
    }
}

/// Where relative image paths of `source` point: its `images_dir`, else its own folder.
fn image_base(source: &Source) -> PathBuf {
    source.images_dir.clone().unwrap_or_else(|| {
        source
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    })
}

fn resolve_image_path(source: &Source, path: String) -> String {
    if Path::new(&path).is_absolute() {
        path
    } else {
        image_base(source).join(path).to_string_lossy().into_owned()
    }
}

struct Rejecter<'a> {
    location: &'a str,
    record: Option<String>,
}

impl Rejecter<'_> {
    fn reject(&self, reason: RejectReason, detail: impl Into<String>) -> Reject {
        Reject {
            source: self.location.to_string(),
            record: self.record.clone(),
            reason,
            detail: detail.into(),
        }
    }

    /// Unwraps a required field or names what is wrong with it.
    fn required(&self, field: Field<String>, name: &str) -> std::result::Result<String, Reject> {
        match field {
            None => Err(self.reject(RejectReason::MissingField, format!("no {name}"))),
            Some(Err(why)) => Err(self.reject(field_reason(&why), format!("{name}: {why}"))),
            Some(Ok(v)) if v.trim().is_empty() && name != "caption" && name != "text" => {
                Err(self.reject(RejectReason::MissingField, format!("{name} is empty")))
            }
            Some(Ok(v)) => Ok(v),
        }
    }

    fn optional<T>(
        &self,
        field: Field<T>,
        name: &str,
        reason: RejectReason,
    ) -> std::result::Result<Option<T>, Reject> {
        match field {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(why)) => Err(self.reject(reason, format!("{name}: {why}"))),
        }
    }

    fn text(
        &self,
        field: Field<String>,
        name: &str,
        config: &IngestConfig,
    ) -> std::result::Result<String, Reject> {
        let text = self.required(field, name)?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(self.reject(RejectReason::EmptyCaption, format!("{name} is empty")));
        }
        let chars = trimmed.chars().count();
        if chars > config.max_caption_chars {
            return Err(self.reject(
                RejectReason::OversizedCaption,
                format!(
                    "{name} has {chars} characters, above max_caption_chars {}",
                    config.max_caption_chars
                ),
            ));
        }
        Ok(trimmed.to_string())
    }
}

/// Readers report undecodable bytes with this prefix so they are counted as such.
pub(crate) const NOT_UTF8: &str = "not valid UTF-8";

/// Reads a text file a line at a time: `each` turns a line (its end stripped) into a
/// row, or nothing for a line to pass over; a line that is not UTF-8 becomes a rejected
/// row. `location` is `path:line`.
fn for_each_line(
    path: &Path,
    sink: &mut dyn FnMut(RawRow),
    each: &mut dyn FnMut(String, &str) -> Option<RawRow>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(path, e))?
            == 0
        {
            return Ok(());
        }
        line_no += 1;
        let location = format!("{}:{line_no}", path.display());
        let row = match std::str::from_utf8(&buf) {
            Ok(line) => each(location, line.trim_end_matches(['\n', '\r'])),
            Err(e) => Some(RawRow::broken(
                location,
                RejectReason::InvalidUtf8,
                format!("{NOT_UTF8}: {e}"),
            )),
        };
        if let Some(row) = row {
            sink(row);
        }
    }
}

fn field_reason(why: &str) -> RejectReason {
    if why.starts_with(NOT_UTF8) {
        RejectReason::InvalidUtf8
    } else {
        RejectReason::MalformedRecord
    }
}

fn first_id(row: &RawRow) -> Option<String> {
    [&row.id, &row.image_id]
        .into_iter()
        .find_map(|f| f.as_ref().and_then(|r| r.as_ref().ok()).cloned())
}

fn validate_pair(
    row: RawRow,
    dataset: &str,
    source: &Source,
    config: &IngestConfig,
    seen: &mut HashSet<String>,
) -> std::result::Result<Pair, Reject> {
    let r = Rejecter {
        location: &row.location,
        record: first_id(&row),
    };
    if let Some((reason, detail)) = &row.problem {
        return Err(r.reject(*reason, detail.clone()));
    }
    let image_id = r.required(row.image_id, "image_id")?;
    let caption = r.text(row.text, "caption", config)?;
    let caption_id = r.optional(row.id, "id", RejectReason::MalformedRecord)?;
    let image_path = r.optional(row.image_path, "image_path", RejectReason::MalformedRecord)?;
    let image_vector = r.optional(row.image_vector, "image_vector", RejectReason::BadVector)?;
    let objects = r.optional(row.objects, "objects", RejectReason::MalformedRecord)?;
    let uid = pair_uid(dataset, &image_id, &caption);
    let key = match &caption_id {
        Some(id) => format!("id:{id}"),
        None => format!("uid:{}", crate::core::fs::hex(&uid)),
    };
    if !seen.insert(key) {
        let what = caption_id
            .as_deref()
            .map(|id| format!("id {id} seen before"))
            .unwrap_or_else(|| format!("the same caption of image {image_id} seen before"));
        return Err(r.reject(RejectReason::DuplicateId, what));
    }
    Ok(Pair {
        uid,
        dataset: dataset.to_string(),
        image_id,
        caption_id,
        caption,
        image_path: image_path.map(|p| resolve_image_path(source, p)),
        image_vector,
        objects,
        source: row.location,
    })
}

fn validate_image(
    row: RawRow,
    source: &Source,
    seen: &mut HashSet<String>,
) -> std::result::Result<CorpusImage, Reject> {
    let r = Rejecter {
        location: &row.location,
        record: first_id(&row),
    };
    if let Some((reason, detail)) = &row.problem {
        return Err(r.reject(*reason, detail.clone()));
    }
    let image_id = r.required(row.image_id, "image_id")?;
    let image_path = r.optional(row.image_path, "image_path", RejectReason::MalformedRecord)?;
    let image_vector = r.optional(row.image_vector, "image_vector", RejectReason::BadVector)?;
    let objects = r.optional(row.objects, "objects", RejectReason::MalformedRecord)?;
    if image_path.is_none() && image_vector.is_none() {
        return Err(r.reject(
            RejectReason::MissingField,
            "neither image_path nor image_vector",
        ));
    }
    if !seen.insert(image_id.clone()) {
        return Err(r.reject(
            RejectReason::DuplicateId,
            format!("image id {image_id} seen before"),
        ));
    }
    Ok(CorpusImage {
        image_id,
        image_path: image_path.map(|p| resolve_image_path(source, p)),
        image_vector,
        objects,
    })
}

fn validate_text(
    row: RawRow,
    config: &IngestConfig,
    seen: &mut HashSet<String>,
) -> std::result::Result<CorpusText, Reject> {
    let r = Rejecter {
        location: &row.location,
        record: first_id(&row),
    };
    if let Some((reason, detail)) = &row.problem {
        return Err(r.reject(*reason, detail.clone()));
    }
    let text = r.text(row.text, "text", config)?;
    let text_id = match r.optional(row.id, "id", RejectReason::MalformedRecord)? {
        Some(id) => id,
        None => row.location.clone(),
    };
    if !seen.insert(text_id.clone()) {
        return Err(r.reject(
            RejectReason::DuplicateId,
            format!("text id {text_id} seen before"),
        ));
    }
    Ok(CorpusText { text_id, text })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::config::Columns;

    fn jsonl_source(dir: &Path, body: &[u8]) -> Source {
        let path = dir.join("pairs.jsonl");
        std::fs::write(&path, body).unwrap();
        Source {
            format: Format::Jsonl,
            path,
            dataset: Some("t".into()),
            images_dir: None,
            instances: None,
            columns: Columns::default(),
            webdataset: None,
        }
    }

    fn run(source: Source) -> (Corpus, IngestReport) {
        let inputs = Inputs {
            pairs: vec![source],
            image_corpus: vec![],
            text_corpus: vec![],
        };
        ingest(&inputs, &IngestConfig::default()).unwrap()
    }

    #[test]
    fn every_bad_record_is_rejected_with_its_line_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(100_000);
        let mut body = Vec::new();
        body.extend_from_slice(b"{\"image_id\": 1, \"caption\": \"a dog\"}\n");
        body.extend_from_slice(b"{\"image_id\": 2, \"caption\": \"bad \xff bytes\"}\n");
        body.extend_from_slice(b"{\"image_id\": 3, \"caption\": \"   \"}\n");
        body.extend_from_slice(
            format!("{{\"image_id\": 4, \"caption\": \"{long}\"}}\n").as_bytes(),
        );
        body.extend_from_slice(b"{\"image_id\": 1, \"caption\": \"a dog\"}\n");
        body.extend_from_slice(b"{\"caption\": \"no image\"}\n");
        body.extend_from_slice(b"{\"image_id\": 5, \"caption\": \"trunc\n");
        body.extend_from_slice(b"[1, 2]\n");
        body.extend_from_slice(b"{\"image_id\": 6, \"caption\": \"ok\", \"objects\": \"dog\"}\n");
        let (corpus, report) = run(jsonl_source(dir.path(), &body));
        assert_eq!(corpus.pairs.len(), 1);
        assert_eq!(corpus.pairs[0].caption, "a dog");
        let got: Vec<(String, RejectReason)> = report
            .rejects
            .iter()
            .map(|r| (r.source.rsplit(':').next().unwrap().to_string(), r.reason))
            .collect();
        use RejectReason::*;
        let expected: Vec<(String, RejectReason)> = [
            (2, InvalidUtf8),
            (3, EmptyCaption),
            (4, OversizedCaption),
            (5, DuplicateId),
            (6, MissingField),
            (7, MalformedRecord),
            (8, MalformedRecord),
            (9, MalformedRecord),
        ]
        .into_iter()
        .map(|(l, r)| (l.to_string(), r))
        .collect();
        assert_eq!(got, expected);
        assert_eq!(report.read, 9);
    }

    #[test]
    fn reject_share_is_enforced() {
        let report = IngestReport {
            read: 10,
            rejects: vec![Reject {
                source: "f:1".into(),
                record: None,
                reason: RejectReason::EmptyCaption,
                detail: String::new(),
            }],
        };
        let mut config = IngestConfig::default();
        let err = check_reject_share(&report, &config, Path::new("rejects.jsonl")).unwrap_err();
        assert!(err.to_string().contains("1 of 10"), "{err}");
        config.max_reject_share = 0.1;
        check_reject_share(&report, &config, Path::new("rejects.jsonl")).unwrap();
    }
}
