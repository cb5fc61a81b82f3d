//! Flickr8k token files: `IMAGE.jpg#N<TAB>caption` per line.

use std::fs::File;
use std::io::{BufRead, BufReader};

use super::{RawRow, RejectReason, NOT_UTF8};
use crate::config::Source;
use crate::error::{Error, Result};

pub(super) fn read(source: &Source, sink: &mut dyn FnMut(RawRow)) -> Result<()> {
    let path = &source.path;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
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
        let line = match std::str::from_utf8(&buf) {
            Ok(line) => line.trim_end_matches(['\n', '\r']),
            Err(e) => {
                sink(RawRow::broken(
                    location,
                    RejectReason::InvalidUtf8,
                    format!("{NOT_UTF8}: {e}"),
                ));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, caption)) = line.split_once('\t') else {
            sink(RawRow::broken(
                location,
                RejectReason::MalformedRecord,
                "expected IMAGE#N<TAB>caption",
            ));
            continue;
        };
        let image = key.split_once('#').map_or(key, |(image, _)| image);
        sink(RawRow {
            location,
            problem: None,
            id: Some(Ok(key.to_string())),
            image_id: Some(Ok(image.to_string())),
            text: Some(Ok(caption.to_string())),
            image_path: source.images_dir.as_ref().map(|_| Ok(image.to_string())),
            image_vector: None,
            objects: None,
        });
    }
}
