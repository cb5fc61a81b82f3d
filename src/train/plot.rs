//! Per-epoch metrics as CSV and as an SVG chart (loss on the left, recall and
//! hard-negative accuracy on the right), written by hand to keep plotting crates out.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::EpochMetrics;

fn kinds(history: &[EpochMetrics]) -> BTreeSet<String> {
    history
        .iter()
        .flat_map(|m| m.eval.hard_negatives.keys().cloned())
        .collect()
}

pub fn csv(history: &[EpochMetrics]) -> String {
    let kinds = kinds(history);
    let mut out = String::from(
        "epoch,steps,train_loss,learning_rate,temperature,seconds,pairs_per_second,\
         i2t_r1,i2t_r5,i2t_r10,t2i_r1,t2i_r5,t2i_r10",
    );
    for kind in &kinds {
        let _ = write!(out, ",acc_{kind}");
    }
    out.push('\n');
    for m in history {
        let e = &m.eval;
        let _ = write!(
            out,
            "{},{},{:.6},{:.6},{:.6},{:.3},{:.1}",
            m.epoch,
            m.steps,
            m.train_loss,
            m.learning_rate,
            m.temperature,
            m.seconds,
            m.pairs_per_second
        );
        for r in e.image_to_text.iter().chain(&e.text_to_image) {
            let _ = write!(out, ",{r:.4}");
        }
        for kind in &kinds {
            match e.accuracy(kind) {
                Some(a) => {
                    let _ = write!(out, ",{a:.4}");
                }
                None => out.push(','),
            }
        }
        out.push('\n');
    }
    out
}

const COLOURS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// One panel: series of (label, values per epoch) on a shared y range.
fn panel(out: &mut String, x0: f64, title: &str, series: &[(String, Vec<f64>)], y: (f64, f64)) {
    let (w, h, top, left) = (420.0, 300.0, 40.0, x0 + 50.0);
    let epochs = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(0)
        .max(2);
    let px = |i: usize| left + w * i as f64 / (epochs - 1) as f64;
    let span = (y.1 - y.0).max(1e-9);
    let py = |v: f64| top + h * (1.0 - (v - y.0) / span);
    let _ = write!(
        out,
        r##"<text x="{}" y="24" font-size="15">{title}</text><rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##,
        left
    );
    for tick in 0..=4 {
        let v = y.0 + span * tick as f64 / 4.0;
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{v:.2}</text>"##,
            left - 4.0,
            py(v) + 4.0
        );
    }
    let _ = write!(
        out,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="middle">epoch</text>"##,
        left + w / 2.0,
        top + h + 30.0
    );
    for i in 0..epochs {
        let _ = write!(
            out,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
            px(i),
            top + h + 14.0,
            i + 1
        );
    }
    for (n, (label, values)) in series.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", px(i), py(*v)))
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/><text x="{}" y="{}" font-size="11" fill="{colour}">{label}</text>"##,
            points.join(" "),
            left + w + 8.0,
            top + 14.0 * (n + 1) as f64
        );
    }
}

pub fn svg(history: &[EpochMetrics]) -> String {
    let losses: Vec<f64> = history.iter().map(|m| m.train_loss).collect();
    let max_loss = losses.iter().copied().fold(0.0, f64::max);
    let mut quality: Vec<(String, Vec<f64>)> = vec![
        (
            "image->text R@5".into(),
            history.iter().map(|m| m.eval.image_to_text[1]).collect(),
        ),
        (
            "text->image R@5".into(),
            history.iter().map(|m| m.eval.text_to_image[1]).collect(),
        ),
    ];
    for kind in kinds(history) {
        let values = history
            .iter()
            .map(|m| m.eval.accuracy(&kind).unwrap_or(0.0))
            .collect();
        quality.push((format!("acc {kind}"), values));
    }
    let mut out = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="1260" height="380" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"##,
    );
    panel(
        &mut out,
        0.0,
        "training loss",
        &[("loss".into(), losses)],
        (0.0, max_loss),
    );
    panel(
        &mut out,
        630.0,
        "held-out recall and hard-negative accuracy",
        &quality,
        (0.0, 1.0),
    );
    out.push_str("</svg>\n");
    out
}
