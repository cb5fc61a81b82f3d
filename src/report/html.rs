//! The report's two pages as HTML text. Numbers the browser test reads back carry a
//! `data-check` attribute; the sample page's rows are drawn by `samples.js` from JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Column, Histogram, KindTally, ShownPair};
use crate::core::error::{Error, Result};
use crate::store::manifest::Manifest;

const STYLE: &str = include_str!("report.css");
const SCRIPT: &str = include_str!("samples.js");

/// Text made safe for HTML element content and quoted attributes.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn page(title: &str, current: &str, body: &str, script: &str) -> String {
    let link = |href: &str, label: &str| {
        if href == current {
            format!("<a href=\"{href}\" aria-current=\"page\">{label}</a>")
        } else {
            format!("<a href=\"{href}\">{label}</a>")
        }
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n\
<header><h1>{title}</h1><nav>{} {}</nav></header>\n<main>\n{body}</main>\n{script}</body>\n</html>\n",
        link("index.html", "Summary"),
        link("samples.html", "Samples"),
        title = esc(title),
    )
}

/// What a kind's score means, for the histogram's axis.
fn score_meaning(column: Column, kind: &str) -> &'static str {
    match (column, kind) {
        (_, "tfidf") => "TF-IDF cosine similarity to the caption",
        (_, "bm25") => "BM25 score relative to the caption's own",
        (_, "backtranslation") => "paraphrase similarity (MiniLM cosine)",
        (_, "image_neighbour") | (_, "text_neighbour") => "distance (1 - cosine)",
        (Column::Negatives, _) => "fluency delta (caption language model)",
        _ => "score",
    }
}

/// A bar chart of `histogram`, as inline SVG.
fn histogram_svg(histogram: &Histogram, axis: &str) -> String {
    const W: f64 = 360.0;
    const H: f64 = 150.0;
    const PAD: f64 = 28.0;
    let (bars, below, above) = histogram.bars(30);
    let mut svg = format!(
        "<svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
        esc(axis)
    );
    let Some(peak) = bars.iter().map(|b| b.2).max().filter(|&p| p > 0) else {
        svg.push_str("<text x=\"10\" y=\"20\">no scores in range</text></svg>");
        return svg;
    };
    let (lo, hi) = (bars[0].0, bars[bars.len() - 1].1);
    let x = |v: f64| PAD + (v - lo) / (hi - lo) * (W - 2.0 * PAD);
    let plot_h = H - 2.0 * PAD;
    for (from, to, count) in &bars {
        let h = *count as f64 / peak as f64 * plot_h;
        let _ = write!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{from:.3} to {to:.3}: {count}</title></rect>",
            x(*from),
            H - PAD - h,
            (x(*to) - x(*from) - 1.0).max(0.5),
        );
    }
    let _ = write!(
        svg,
        "<line x1=\"{PAD}\" y1=\"{y}\" x2=\"{x2}\" y2=\"{y}\"/>\
<text x=\"{PAD}\" y=\"{ty}\" text-anchor=\"start\">{lo:.2}</text>\
<text x=\"{x2}\" y=\"{ty}\" text-anchor=\"end\">{hi:.2}</text>\
<text x=\"{PAD}\" y=\"{top}\" text-anchor=\"start\">{peak} max</text>\
<text x=\"{mid}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>",
        esc(axis),
        y = H - PAD,
        x2 = W - PAD,
        ty = H - PAD + 16.0,
        top = PAD - 8.0,
        mid = W / 2.0,
    );
    if below + above > 0 {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{below} below, {above} above range</text>",
            W - PAD,
            PAD - 8.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn reasons(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(reason, n)| format!("{}: {n}", esc(reason)))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The summary page.
pub fn summary(
    manifest: &Manifest,
    rows: usize,
    tallies: &BTreeMap<(Column, String), KindTally>,
    unreadable: &[String],
) -> String {
    let m = manifest;
    let mut body = String::new();
    let state = if m.complete { "complete" } else { "incomplete" };
    let _ = writeln!(
        body,
        "<section><h2>Run</h2><table class=\"facts\">\
<tr><th>pipeline</th><td data-check=\"pipeline\">{}</td></tr>\
<tr><th>tool</th><td>{} {} (schema {})</td></tr>\
<tr><th>seed</th><td data-check=\"seed\">{}</td></tr>\
<tr><th>config hash</th><td><code>{}</code></td></tr>\
<tr><th>shards</th><td><span data-check=\"shards\">{}</span> of <span data-check=\"num_shards\">{}</span> ({state})</td></tr>\
<tr><th>pairs</th><td><span data-check=\"rows\">{rows}</span> in shards, <span data-check=\"total_rows\">{}</span> planned</td></tr>\
</table></section>",
        esc(&m.pipeline),
        esc(&m.tool),
        esc(&m.version),
        esc(&m.schema_version),
        m.seed,
        esc(&m.config_hash),
        m.shards.len(),
        m.num_shards,
        m.total_rows,
    );

    let i = &m.ingest;
    let _ = write!(
        body,
        "<section><h2>Ingest</h2><table class=\"facts\">\
<tr><th>records read</th><td data-check=\"ingest.read\">{}</td></tr>\
<tr><th>pairs</th><td data-check=\"ingest.pairs\">{}</td></tr>\
<tr><th>corpus images</th><td data-check=\"ingest.corpus_images\">{}</td></tr>\
<tr><th>corpus texts</th><td data-check=\"ingest.corpus_texts\">{}</td></tr>\
<tr><th>rejected</th><td>{} (in {})</td></tr></table>\n<table><tr><th>input</th><th>path</th><th>bytes</th><th>SHA-256</th></tr>",
        i.read,
        i.pairs,
        i.corpus_images,
        i.corpus_texts,
        reasons(&i.rejected),
        esc(&i.rejects_file),
    );
    for input in &m.inputs {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td><code>{}</code></td></tr>",
            esc(&input.role),
            esc(&input.path),
            input.bytes,
            esc(input.sha256.get(..12).unwrap_or(&input.sha256)),
        );
    }
    body.push_str("</table></section>\n");

    body.push_str(
        "<section><h2>Stages</h2><table><tr><th>stage</th><th>produced</th><th>per pair</th>\
<th>seconds</th><th>rejected, by reason</th><th>counters</th></tr>",
    );
    for (name, s) in &m.stages {
        let per_pair = if rows > 0 {
            s.produced as f64 / rows as f64
        } else {
            0.0
        };
        let counters = s
            .counters
            .iter()
            .map(|(k, v)| format!("{}: {v}", esc(k)))
            .collect::<Vec<_>>()
            .join("<br>");
        let _ = write!(
            body,
            "<tr><td>{name}</td><td class=\"num\" data-check=\"stage.{name}.produced\">{}</td>\
<td class=\"num\">{per_pair:.2}</td><td class=\"num\">{:.1}</td><td>{}</td><td>{counters}</td></tr>",
            s.produced,
            s.seconds,
            reasons(&s.rejected),
            name = esc(name),
        );
    }
    body.push_str("</table></section>\n");

    body.push_str(
        "<section><h2>Items by kind</h2><p>Counted over every shard.</p><table>\
<tr><th>column</th><th>kind</th><th>stage</th><th>items</th><th>pairs with one</th><th>mean score</th></tr>",
    );
    for ((column, kind), t) in tallies {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{kind}</td><td>{}</td><td class=\"num\" data-check=\"kind.{kind}\">{}</td>\
<td class=\"num\">{} ({:.1}%)</td><td class=\"num\">{:.3}</td></tr>",
            column.name(),
            esc(&t.generator),
            t.items,
            t.pairs,
            100.0 * t.pairs as f64 / rows.max(1) as f64,
            t.score_sum / t.items.max(1) as f64,
            kind = esc(kind),
        );
    }
    body.push_str("</table></section>\n<section><h2>Scores</h2><div class=\"plots\">");
    for ((column, kind), t) in tallies {
        let _ = write!(
            body,
            "<figure><figcaption>{} · {}</figcaption>{}</figure>",
            column.name(),
            esc(kind),
            histogram_svg(&t.histogram, score_meaning(*column, kind)),
        );
    }
    body.push_str("</div></section>\n");
    if !unreadable.is_empty() {
        let _ = write!(
            body,
            "<section><h2>Images not shown</h2><p>{} could not be read:</p><ul>",
            unreadable.len()
        );
        for line in unreadable {
            let _ = write!(body, "<li>{}</li>", esc(line));
        }
        body.push_str("</ul></section>\n");
    }
    page(
        &format!("cmcl report: {}", m.pipeline),
        "index.html",
        &body,
        "",
    )
}

/// The sample page: controls, an empty list, the sample as JSON and the script that
/// draws and filters it.
pub fn samples(manifest: &Manifest, rows: usize, seed: u64, pairs: &[ShownPair]) -> Result<String> {
    let json = serde_json::to_string(pairs).map_err(|e| Error::Stage {
        stage: "report".into(),
        message: format!("serialising the sample: {e}"),
    })?;
    // Inside <script>, "</" could close the element early.
    let json = json.replace("</", "<\\/");
    let body = format!(
        "<p>A random sample of <span data-check=\"sampled\">{}</span> of {rows} pairs (seed {seed}), \
in shard order. A pair is shown when it has an item of the chosen kind with a score in range, \
and the words are in its caption, items or image id.</p>\n\
<form id=\"filters\" onsubmit=\"return false\">\
<label>kind <select id=\"kind\"><option value=\"\">any</option></select></label> \
<label>score from <input id=\"min\" type=\"number\" step=\"any\" size=\"6\"></label> \
<label>to <input id=\"max\" type=\"number\" step=\"any\" size=\"6\"></label> \
<label>words <input id=\"words\" type=\"search\" placeholder=\"dog, img-00012, ...\"></label> \
<output id=\"shown\" data-check=\"visible\"></output></form>\n\
<div id=\"pairs\"></div>\n",
        pairs.len()
    );
    let script = format!(
        "<script id=\"sample-data\" type=\"application/json\">{json}</script>\n<script>\n{SCRIPT}</script>\n"
    );
    Ok(page(
        &format!("cmcl report: {} samples", manifest.pipeline),
        "samples.html",
        &body,
        &script,
    ))
}
