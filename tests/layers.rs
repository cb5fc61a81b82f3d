//! The layering of `src/`: each top folder imports only from folders below it (and from
//! itself), and a stage never imports a sibling stage. The order is the one in
//! ARCHITECTURE.md and `src/lib.rs`; `cli/` (the binary) sits on top.

use std::path::{Path, PathBuf};

/// Lowest first.
const LAYERS: &[&str] = &[
    "core", "text", "index", "embed", "store", "ingest", "synth", "stages", "train", "report",
    "run", "cli",
];

/// An import that breaks the layering, as "file: reason".
fn violations(file: &str, source: &str) -> Vec<String> {
    let module = module_path(file);
    let Some(own) = module.first().map(String::as_str) else {
        return Vec::new();
    };
    let Some(own_rank) = rank(own) else {
        return vec![format!("{file}: folder {own} is not in the layer list")];
    };
    let mut found = Vec::new();
    for target in imports(&module, source) {
        let Some(top) = target.first().map(String::as_str) else {
            continue;
        };
        if top == own {
            // A stage's folder never reaches into a sibling stage's.
            if own == "stages" && module.len() > 2 && target.len() > 1 {
                let sibling = &target[1];
                if *sibling != module[1] && is_stage_folder(sibling) {
                    found.push(format!(
                        "{file}: stage {} imports stage {sibling}",
                        module[1]
                    ));
                }
            }
            continue;
        }
        match rank(top) {
            Some(r) if r < own_rank => {}
            Some(_) => found.push(format!(
                "{file}: {own} imports {} from a layer above or beside it",
                target.join("::")
            )),
            // Crate-root items (`crate::Error`, `crate::test_data_dir`).
            None => {}
        }
    }
    found
}

fn rank(folder: &str) -> Option<usize> {
    LAYERS.iter().position(|l| *l == folder)
}

fn is_stage_folder(name: &str) -> bool {
    src().join("stages").join(name).is_dir()
}

/// `src/stages/tfidf/bm25.rs` -> [stages, tfidf, bm25]; the binary's files are `cli`.
fn module_path(file: &str) -> Vec<String> {
    let rel = file.trim_start_matches("src/").trim_end_matches(".rs");
    if rel == "main" {
        return vec!["cli".into()];
    }
    if rel == "lib" {
        return Vec::new();
    }
    rel.split('/')
        .filter(|p| *p != "mod")
        .map(str::to_string)
        .collect()
}

/// Every module path the code names through `crate::`, `super::` or (in the binary)
/// `cmcl::`, resolved from the crate root. Comments are left out.
fn imports(module: &[String], source: &str) -> Vec<Vec<String>> {
    let code: String = source
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for head in ["crate", "super", "cmcl"] {
        for (at, _) in code.match_indices(&format!("{head}::")) {
            // Only where a path starts, not inside one (`x::super::`, `my_crate::`).
            if code[..at].ends_with(|c: char| ident(c) || c == ':') {
                continue;
            }
            let rest: String = code[at + head.len() + 2..]
                .chars()
                .take_while(|c| ident(*c) || *c == ':')
                .collect();
            let mut segments: Vec<String> = rest
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let resolved = match head {
                "super" => {
                    let mut base = module[..module.len().saturating_sub(1)].to_vec();
                    while segments.first().is_some_and(|s| s == "super") {
                        segments.remove(0);
                        base.pop();
                    }
                    base.extend(segments);
                    base
                }
                _ => segments,
            };
            out.push(resolved);
        }
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for path in &files {
        let file = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        found.extend(violations(&file, &std::fs::read_to_string(path).unwrap()));
    }
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
    assert!(files.len() > 40, "only {} files found", files.len());
}

#[test]
fn every_layer_is_a_folder_that_says_what_it_is() {
    for layer in LAYERS {
        let mod_file = src().join(layer).join("mod.rs");
        let text = std::fs::read_to_string(&mod_file).unwrap_or_default();
        assert!(
            text.starts_with("//!"),
            "{} should open with a //! comment saying what the layer is",
            mod_file.display()
        );
    }
}

#[test]
fn the_checker_catches_upward_sideways_and_sibling_imports() {
    let upward = "use crate::stages::Stage;\nfn f() { crate::core::fs::hex(&[]); }";
    assert_eq!(violations("src/store/shard.rs", upward).len(), 1);
    assert!(violations("src/stages/tfidf/mod.rs", upward).is_empty());
    // The trainer sits below the report.
    assert_eq!(
        violations("src/train/mod.rs", "use crate::report::x;").len(),
        1
    );
    // A super:: chain that climbs out of the folder counts as a path from the root.
    assert_eq!(
        violations("src/core/fs.rs", "use super::super::run::x;").len(),
        1
    );
    // Sibling stages.
    let sibling = "use crate::stages::backtranslate::filter::x;";
    assert_eq!(
        violations("src/stages/retrieval/index.rs", sibling).len(),
        1
    );
    assert!(violations("src/stages/mod.rs", sibling).is_empty());
    assert!(violations("src/stages/backtranslate/mod.rs", "use super::filter::x;").is_empty());
    // Comments are not imports.
    assert!(violations("src/core/fs.rs", "// see crate::run::augment").is_empty());
}
