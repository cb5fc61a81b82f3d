//! COCO captions JSON (`images`, `annotations` with `image_id` and `caption`), with
//! object labels optionally taken from a COCO instances JSON.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::table::json_scalar;
use super::{RawRow, RejectReason};
use crate::core::error::{Error, Result};
use crate::ingest::config::Source;

#[derive(Deserialize)]
struct Captions {
    #[serde(default)]
    images: Vec<Value>,
    annotations: Vec<Value>,
}

#[derive(Deserialize)]
struct Instances {
    annotations: Vec<InstanceAnnotation>,
    categories: Vec<Category>,
}

#[derive(Deserialize)]
struct InstanceAnnotation {
    image_id: Value,
    category_id: u64,
}

#[derive(Deserialize)]
struct Category {
    id: u64,
    name: String,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_reader(BufReader::with_capacity(1 << 20, file)).map_err(|e| {
        let line = e.line() as u64;
        let what = if e.is_eof() {
            "truncated JSON"
        } else {
            "invalid COCO JSON"
        };
        Error::input(path, line, format!("{what}: {e}"))
    })
}

pub(super) fn read(source: &Source, sink: &mut dyn FnMut(RawRow)) -> Result<()> {
    let path = &source.path;
    let captions: Captions = read_json(path)?;
    let file_names: HashMap<String, String> = captions
        .images
        .iter()
        .filter_map(|img| {
            let id = json_scalar(img.get("id")?).ok()?;
            let name = img.get("file_name")?.as_str()?.to_string();
            Some((id, name))
        })
        .collect();
    let objects = match &source.instances {
        Some(instances) => Some(read_objects(instances)?),
        None => None,
    };
    for (i, ann) in captions.annotations.iter().enumerate() {
        let location = format!("{}#annotations[{i}]", path.display());
        let Some(ann) = ann.as_object() else {
            sink(RawRow::broken(
                location,
                RejectReason::MalformedRecord,
                "annotation is not a JSON object",
            ));
            continue;
        };
        let field = |name: &str| ann.get(name).filter(|v| !v.is_null()).map(json_scalar);
        let image_id = field("image_id");
        let known_id = image_id.as_ref().and_then(|r| r.as_ref().ok());
        let image_path = known_id
            .and_then(|id| file_names.get(id))
            .filter(|_| source.images_dir.is_some())
            .map(|name| Ok(name.clone()));
        let labels = objects
            .as_ref()
            .and_then(|o| known_id.map(|id| Ok(o.get(id).cloned().unwrap_or_default())));
        sink(RawRow {
            location,
            problem: None,
            id: field("id"),
            image_id,
            text: field("caption"),
            image_path,
            image_vector: None,
            objects: labels,
        });
    }
    Ok(())
}

/// Image id -> sorted distinct category names.
fn read_objects(path: &Path) -> Result<HashMap<String, Vec<String>>> {
    let instances: Instances = read_json(path)?;
    let names: HashMap<u64, &str> = instances
        .categories
        .iter()
        .map(|c| (c.id, c.name.as_str()))
        .collect();
    let mut labels: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (i, ann) in instances.annotations.iter().enumerate() {
        let id = json_scalar(&ann.image_id)
            .map_err(|e| Error::input(path, 0, format!("annotations[{i}].image_id: {e}")))?;
        let name = names.get(&ann.category_id).ok_or_else(|| {
            Error::input(
                path,
                0,
                format!("annotations[{i}]: unknown category_id {}", ann.category_id),
            )
        })?;
        labels.entry(id).or_default().insert(name.to_string());
    }
    Ok(labels
        .into_iter()
        .map(|(k, v)| (k, v.into_iter().collect()))
        .collect())
}
