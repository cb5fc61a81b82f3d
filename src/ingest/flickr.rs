//! Flickr8k token files: `IMAGE.jpg#N<TAB>caption` per line.

use super::{for_each_line, RawRow, RejectReason};
use crate::core::error::Result;
use crate::ingest::config::Source;

pub(super) fn read(source: &Source, sink: &mut dyn FnMut(RawRow)) -> Result<()> {
    for_each_line(&source.path, sink, &mut |location, line| {
        if line.trim().is_empty() {
            return None;
        }
        let Some((key, caption)) = line.split_once('\t') else {
            return Some(RawRow::broken(
                location,
                RejectReason::MalformedRecord,
                "expected IMAGE#N<TAB>caption",
            ));
        };
        let image = key.split_once('#').map_or(key, |(image, _)| image);
        Some(RawRow {
            location,
            problem: None,
            id: Some(Ok(key.to_string())),
            image_id: Some(Ok(image.to_string())),
            text: Some(Ok(caption.to_string())),
            image_path: source.images_dir.as_ref().map(|_| Ok(image.to_string())),
            image_vector: None,
            objects: None,
        })
    })
}
