//! Webdataset tar shards as img2dataset writes them: per sample `KEY.jpg` (or `.png`),
//! `KEY.txt` (the caption) and `KEY.json` (anything else), one sample's members next to
//! each other, and beside each `NNNNN.tar` a `NNNNN.parquet` listing every sample.
//!
//! Images stay inside the tars: a record's `image_path` is `NNNNN.tar#KEY.jpg`, which
//! the image readers open in place. Each image's header is checked here, so a
//! stage that needs pixels meets no surprises; a damaged tar, a sample without an image
//! or caption and an image without a readable header are rejects naming the tar and
//! member.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::ArrayRef;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value};

use super::table::{
    arrow_labels, arrow_scalar, arrow_vector, json_labels, json_scalar, json_vector,
};
use super::{Field, RawRow, RejectReason, Role, NOT_UTF8};
use crate::core::error::{Error, Result};
use crate::core::tar::{cached_index, member_path, Member, TarIndex};
use crate::embed::image::probe_dimensions;
use crate::ingest::config::{Source, WebdatasetOptions};

/// Image members, by extension, in the order a sample's image is looked for.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];
/// Bytes read to check an image's header; enough for any JPEG or PNG header short of
/// huge embedded metadata, when the whole member is read instead.
const PROBE_BYTES: u64 = 64 * 1024;
/// Caption and JSON members above this are not read (they would be rejected anyway).
const MAX_TEXT_BYTES: u64 = 1 << 20;

/// The tars `source` names.
fn tars(source: &Source) -> Result<Vec<PathBuf>> {
    let pattern = source.path.to_string_lossy();
    let tars = expand_braces(&pattern).map_err(|m| Error::input(&source.path, 0, m))?;
    Ok(tars.into_iter().map(PathBuf::from).collect())
}

/// The parquet listing read beside `tar`, if there is one to read.
fn listing_of(tar: &Path, options: &WebdatasetOptions) -> Option<PathBuf> {
    let beside = tar.with_extension("parquet");
    (options.use_parquet && beside.exists()).then_some(beside)
}

/// Every tar of `source` and the parquet listing beside each that is read.
pub(super) fn files(source: &Source) -> Result<Vec<PathBuf>> {
    let options = source.webdataset.clone().unwrap_or_default();
    let mut files = Vec::new();
    for tar in tars(source)? {
        files.extend(listing_of(&tar, &options));
        files.push(tar);
    }
    Ok(files)
}

pub(super) fn read(source: &Source, role: Role, sink: &mut dyn FnMut(RawRow)) -> Result<()> {
    let options = source.webdataset.clone().unwrap_or_default();
    for tar in tars(source)? {
        let index = cached_index(&tar)?;
        if let Some(damage) = &index.damage {
            sink(RawRow::broken(
                tar.display().to_string(),
                RejectReason::BadArchive,
                damage.clone(),
            ));
        }
        let listing = listing_of(&tar, &options)
            .map(|path| read_listing(&path, source, &options))
            .transpose()?;
        read_tar(&index, listing, source, &options, role, sink)?;
    }
    Ok(())
}

/// One sample: its key and its members by extension (lower case).
struct Sample<'a> {
    key: &'a str,
    members: Vec<(String, &'a Member)>,
}

impl Sample<'_> {
    fn member(&self, extension: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|(e, _)| e == extension)
            .map(|(_, m)| *m)
    }
}

/// A sample's key and extension: the member name up to and after the first dot of its
/// file name (webdataset's rule, so `a/b.seg.png` is key `a/b`, extension `seg.png`).
fn key_and_extension(name: &str) -> (&str, String) {
    let start = name.rfind('/').map_or(0, |i| i + 1);
    match name[start..].find('.') {
        Some(dot) => (
            &name[..start + dot],
            name[start + dot + 1..].to_ascii_lowercase(),
        ),
        None => (name, String::new()),
    }
}

/// Consecutive members with one key, as webdataset writers lay them out.
fn samples(index: &TarIndex) -> Vec<Sample<'_>> {
    let mut samples: Vec<Sample> = Vec::new();
    for member in &index.members {
        let (key, extension) = key_and_extension(&member.name);
        match samples.last_mut() {
            Some(last) if last.key == key => last.members.push((extension, member)),
            _ => samples.push(Sample {
                key,
                members: vec![(extension, member)],
            }),
        }
    }
    samples
}

fn read_tar(
    index: &TarIndex,
    mut listing: Option<Listing>,
    source: &Source,
    options: &WebdatasetOptions,
    role: Role,
    sink: &mut dyn FnMut(RawRow),
) -> Result<()> {
    for sample in samples(index) {
        let location = member_path(&index.path, sample.key);
        let row = match &mut listing {
            Some(listing) => match listing.rows.remove(sample.key) {
                Some(listed) => sample_row(index, &sample, Some(listed), source, options, role),
                None => Err((
                    RejectReason::MissingField,
                    format!("not listed in {}", listing.path.display()),
                )),
            },
            None => sample_row(index, &sample, None, source, options, role),
        };
        sink(row.unwrap_or_else(|(reason, why)| RawRow {
            id: Some(Ok(sample.key.to_string())),
            ..RawRow::broken(location, reason, why)
        }));
    }
    if let Some(listing) = listing {
        // Downloads the parquet says succeeded but whose members the tar lacks.
        for (key, listed) in listing.rows {
            sink(RawRow::broken(
                format!("{}:{}", listing.path.display(), listed.row),
                RejectReason::MissingField,
                format!("sample {key} is not in {}", index.path.display()),
            ));
        }
    }
    Ok(())
}

type Problem = (RejectReason, String);

/// The record of one sample, or why it is rejected.
fn sample_row(
    index: &TarIndex,
    sample: &Sample,
    listed: Option<Listed>,
    source: &Source,
    options: &WebdatasetOptions,
    role: Role,
) -> std::result::Result<RawRow, Problem> {
    let wants_json = listed.is_none()
        && (options.caption_field.is_some()
            || source.columns.objects.is_some()
            || source.columns.image_vector.is_some());
    let json = match sample.member("json").filter(|_| wants_json) {
        Some(member) => json_object(index, member)?,
        None => Map::new(),
    };
    let field = |name: &Option<String>| name.as_ref().and_then(|n| json.get(n));
    let mut row = RawRow {
        location: member_path(&index.path, sample.key),
        problem: None,
        id: Some(Ok(sample.key.to_string())),
        image_id: Some(Ok(sample.key.to_string())),
        ..RawRow::default()
    };
    if role != Role::Images {
        row.text = match (&listed, &options.caption_field) {
            (Some(listed), _) => listed.caption.clone(),
            (None, Some(name)) => json.get(name).map(json_scalar),
            (None, None) => match sample.member("txt") {
                Some(member) => text_member(index, member)?,
                None => None,
            },
        };
        if row.text.is_none() {
            let wanted = match &options.caption_field {
                Some(name) => format!("caption field {name:?}"),
                None => format!("{}.txt", sample.key),
            };
            return Err((RejectReason::MissingField, format!("no {wanted}")));
        }
    }
    if role != Role::Texts {
        let (name, member) = IMAGE_EXTENSIONS
            .iter()
            .find_map(|e| sample.member(e).map(|m| (format!("{}.{e}", sample.key), m)))
            .ok_or_else(|| {
                let tried = IMAGE_EXTENSIONS.map(|e| format!(".{e}")).join(", ");
                (
                    RejectReason::MissingField,
                    format!("no image member ({tried}) for sample {}", sample.key),
                )
            })?;
        check_image(index, member).map_err(|why| {
            (
                RejectReason::UnreadableImage,
                format!("image member {name}: {why}"),
            )
        })?;
        row.image_path = Some(Ok(member_path(&index.path, &name)));
        match listed {
            Some(listed) => (row.objects, row.image_vector) = (listed.objects, listed.image_vector),
            None => {
                row.objects = field(&source.columns.objects).map(json_labels);
                row.image_vector = field(&source.columns.image_vector).map(json_vector);
            }
        }
    }
    Ok(row)
}

fn read_member(
    index: &TarIndex,
    member: &Member,
    limit: u64,
) -> std::result::Result<Vec<u8>, Problem> {
    index
        .read(member, limit)
        .map_err(|e| (RejectReason::BadArchive, e.to_string()))
}

fn text_member(index: &TarIndex, member: &Member) -> std::result::Result<Field<String>, Problem> {
    let bytes = read_member(index, member, MAX_TEXT_BYTES)?;
    Ok(Some(
        String::from_utf8(bytes).map_err(|e| format!("{}: {NOT_UTF8}: {e}", member.name)),
    ))
}

fn json_object(
    index: &TarIndex,
    member: &Member,
) -> std::result::Result<Map<String, Value>, Problem> {
    let bytes = read_member(index, member, MAX_TEXT_BYTES)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err((
            RejectReason::MalformedRecord,
            format!("{}: not a JSON object", member.name),
        )),
        Err(e) => Err((
            RejectReason::MalformedRecord,
            format!("{}: invalid JSON: {e}", member.name),
        )),
    }
}

/// The image's header is readable (from its first bytes, else from all of them).
fn check_image(index: &TarIndex, member: &Member) -> std::result::Result<(), String> {
    let head = index.read(member, PROBE_BYTES).map_err(|e| e.to_string())?;
    match probe_dimensions(&head) {
        Ok(_) => Ok(()),
        Err(why) if member.size <= PROBE_BYTES => Err(why),
        Err(_) => {
            let all = index.read(member, u64::MAX).map_err(|e| e.to_string())?;
            probe_dimensions(&all).map(drop)
        }
    }
}

/// What img2dataset's parquet says of one successful download.
struct Listed {
    /// 1-based data row, for rejects.
    row: u64,
    caption: Field<String>,
    objects: Field<Vec<String>>,
    image_vector: Field<Vec<f32>>,
}

/// The successful downloads of a parquet listing, by key.
struct Listing {
    path: PathBuf,
    rows: HashMap<String, Listed>,
}

fn read_listing(path: &Path, source: &Source, options: &WebdatasetOptions) -> Result<Listing> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(8192).build())
        .map_err(|e| Error::input(path, 0, e.to_string()))?;
    let caption_column = options.caption_field.as_deref().unwrap_or("caption");
    let mut rows = HashMap::new();
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::input(path, row + 1, e.to_string()))?;
        let column =
            |name: Option<&str>| -> Option<ArrayRef> { batch.column_by_name(name?).cloned() };
        let keys =
            column(Some("key")).ok_or_else(|| Error::input(path, 0, "no column named \"key\""))?;
        let caption = column(Some(caption_column));
        let status = column(Some("status"));
        let objects = column(source.columns.objects.as_deref());
        let vector = column(source.columns.image_vector.as_deref());
        for i in 0..batch.num_rows() {
            row += 1;
            let succeeded = status
                .as_ref()
                .and_then(|s| arrow_scalar(s, i))
                .is_none_or(|s| s.is_ok_and(|s| s == "success"));
            // Failed downloads are listed too but were never written to the tar.
            if !succeeded {
                continue;
            }
            let Some(Ok(key)) = arrow_scalar(&keys, i) else {
                return Err(Error::input(path, row, "key is null or not a string"));
            };
            let listed = Listed {
                row,
                caption: caption.as_ref().and_then(|a| arrow_scalar(a, i)),
                objects: objects.as_ref().and_then(|a| arrow_labels(a, i)),
                image_vector: vector.as_ref().and_then(|a| arrow_vector(a, i)),
            };
            rows.insert(key, listed);
        }
    }
    Ok(Listing {
        path: path.to_path_buf(),
        rows,
    })
}

/// The paths a pattern names: each `{A..B}` (integers; zero-padded to the width of `A`
/// when `A` has a leading zero) or `{x,y,...}` is replaced by each of its values.
pub fn expand_braces(pattern: &str) -> std::result::Result<Vec<String>, String> {
    let Some(open) = pattern.find('{') else {
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find('}')
        .map(|i| open + i)
        .ok_or_else(|| format!("unclosed '{{' in {pattern:?}"))?;
    let (head, body, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let values: Vec<String> = match body.split_once("..") {
        Some((from, to)) => {
            let parse = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| format!("{{{body}}} in {pattern:?}: {s:?} is not a number"))
            };
            let (first, last) = (parse(from)?, parse(to)?);
            if first > last {
                return Err(format!("{{{body}}} in {pattern:?} counts down"));
            }
            let width = if from.starts_with('0') { from.len() } else { 0 };
            (first..=last).map(|n| format!("{n:0width$}")).collect()
        }
        None => body.split(',').map(str::to_string).collect(),
    };
    let rest = expand_braces(tail)?;
    Ok(values
        .iter()
        .flat_map(|v| rest.iter().map(move |r| format!("{head}{v}{r}")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn brace_patterns_expand_like_a_shell() {
        assert_eq!(expand_braces("a.tar").unwrap(), ["a.tar"]);
        assert_eq!(
            expand_braces("s/{00008..00010}.tar").unwrap(),
            ["s/00008.tar", "s/00009.tar", "s/00010.tar"]
        );
        assert_eq!(
            expand_braces("{a,b}/{1..2}.tar").unwrap(),
            ["a/1.tar", "a/2.tar", "b/1.tar", "b/2.tar"]
        );
        for bad in ["s/{1..x}.tar", "s/{3..1}.tar", "s/{1..2.tar"] {
            assert!(expand_braces(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// A range expands to what counting and padding by hand gives.
        #[test]
        fn ranges_count_and_pad(first in 0u64..2000, span in 0u64..50, width in 1usize..7) {
            let last = first + span;
            let from = format!("{first:0width$}");
            let pattern = format!("x/{{{from}..{last}}}.tar");
            let expected: Vec<String> = (first..=last)
                .map(|n| if from.starts_with('0') && from.len() > 1 {
                    format!("x/{n:0w$}.tar", w = from.len())
                } else {
                    format!("x/{n}.tar")
                })
                .collect();
            prop_assert_eq!(expand_braces(&pattern).unwrap(), expected);
        }
    }

    #[test]
    fn keys_end_at_the_first_dot_of_the_file_name() {
        assert_eq!(key_and_extension("000001.jpg"), ("000001", "jpg".into()));
        assert_eq!(
            key_and_extension("d.x/a.seg.PNG"),
            ("d.x/a", "seg.png".into())
        );
        assert_eq!(key_and_extension("noext"), ("noext", String::new()));
    }
}
