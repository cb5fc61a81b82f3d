// Draws the sampled pairs from the JSON above and filters them; no network, no libraries.
"use strict";
const pairs = JSON.parse(document.getElementById("sample-data").textContent);
const list = document.getElementById("pairs");
const controls = {
  kind: document.getElementById("kind"),
  min: document.getElementById("min"),
  max: document.getElementById("max"),
  words: document.getElementById("words"),
};
const shown = document.getElementById("shown");

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// The item's text with the words it changed: deleted caption words struck, new ones marked.
function diffText(item) {
  if (!item.diff.length) return item.text || item.ref_id || "";
  const span = el("span");
  item.diff.forEach(([op, word], i) => {
    if (i > 0) span.append(" ");
    span.append(op === "=" ? word : el(op === "+" ? "ins" : "del", {}, word));
  });
  return span;
}

function itemLine(item) {
  const via = item.via ? el("span", { class: "via" }, `via ${item.pivot || "?"}: ${item.via}`) : null;
  return el("li", { "data-kind": item.kind },
    el("span", { class: "kind" }, item.kind),
    el("span", { class: "score" }, item.score.toFixed(3)),
    diffText(item), via);
}

function section(title, items) {
  if (!items.length) return null;
  return [el("h3", {}, `${title} (${items.length})`), el("ul", { class: "items" }, ...items.map(itemLine))];
}

function neighbours(items) {
  const images = items.filter((n) => n.kind === "image_neighbour");
  const texts = items.filter((n) => n.kind !== "image_neighbour");
  const out = [];
  if (images.length) {
    out.push(el("h3", {}, `image neighbours (${images.length})`));
    out.push(el("div", { class: "neighbours" }, ...images.map((n) => el("figure", { "data-kind": n.kind },
      n.thumb ? el("img", { src: n.thumb, alt: n.ref_id || "" }) : el("div", { class: "nothumb" }, "no image"),
      el("figcaption", {}, `${n.ref_id || "?"} · ${n.score.toFixed(3)}`)))));
  }
  if (texts.length) {
    out.push(el("h3", {}, `text neighbours (${texts.length})`));
    out.push(el("ul", { class: "items" }, ...texts.map((n) => el("li", { "data-kind": n.kind },
      el("span", { class: "kind" }, n.kind), el("span", { class: "score" }, n.score.toFixed(3)), n.text || n.ref_id || ""))));
  }
  return out;
}

function card(pair) {
  const image = pair.thumb
    ? el("img", { class: "thumb", src: pair.thumb, alt: pair.image_id })
    : el("div", { class: "nothumb" }, "no image");
  const objects = pair.objects.length ? ` · objects: ${pair.objects.join(", ")}` : "";
  return el("article", { "data-row": pair.row },
    image,
    el("div", {},
      el("div", { class: "caption" }, pair.caption),
      el("div", { class: "meta" }, `${pair.image_id} · row ${pair.row} in ${pair.shard} · uid ${pair.uid}${objects}`),
      ...(section("positives", pair.positives) || []),
      ...(section("negatives", pair.negatives) || []),
      ...neighbours(pair.neighbours)));
}

const cards = pairs.map(card);
list.append(...cards);

const kinds = [...new Set(pairs.flatMap((p) => [...p.positives, ...p.negatives, ...p.neighbours].map((i) => i.kind)))].sort();
for (const kind of kinds) controls.kind.append(el("option", { value: kind }, kind));

function visible(pair) {
  const kind = controls.kind.value;
  const min = controls.min.value === "" ? -Infinity : Number(controls.min.value);
  const max = controls.max.value === "" ? Infinity : Number(controls.max.value);
  const items = [...pair.positives, ...pair.negatives, ...pair.neighbours];
  const filtered = kind !== "" || controls.min.value !== "" || controls.max.value !== "";
  if (filtered && !items.some((i) => (kind === "" || i.kind === kind) && i.score >= min && i.score <= max)) {
    return false;
  }
  const words = controls.words.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
  const haystack = [pair.caption, pair.image_id, ...items.map((i) => i.text || i.ref_id || "")].join(" ").toLowerCase();
  return words.every((w) => haystack.includes(w));
}

function update() {
  let count = 0;
  pairs.forEach((pair, i) => {
    const show = visible(pair);
    cards[i].hidden = !show;
    if (show) count += 1;
  });
  shown.value = `${count} of ${pairs.length} shown`;
  shown.dataset.count = String(count);
}

for (const control of Object.values(controls)) control.addEventListener("input", update);
update();
