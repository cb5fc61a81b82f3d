"""Precision and recall of the back-translation filters on a labelled set (issue 21).

The labelled set is a blind audit (bench/audit.py's protocol) of back-translation
candidates drawn in two strata from one caption sample: candidates the same-graph filter
keeps (`sg`) and candidates it rejects (`raw`); the key names each item's stratum. A
filter's decision on an item is whether a run with that filter on still emits the item
(runs with `max_positives` high enough that no cap turns one away).

For each filter: the share of the run's candidates it rejects, and on the labelled items,
weighted back to the population by stratum, the precision (rejected items that a reader
labelled bad) and recall (bad items it rejects), for "bad" = any label but valid and for
its target label; then the valid share of what survives.

Usage:
  positive_filters.py --audit DIR --population sg=N --population raw=M \\
      --filter same_graph=RUN --filter well_formed=RUN --filter both=RUN [--json OUT]
  positive_filters.py --audit DIR --reproduce --cmcl CMCL --data DATA --work DIR [--json OUT]

--reproduce rebuilds the labelled set's caption sample from DATA (2,000 COCO val
captions outside the 600 of the 2026-12-04 audits), runs the backtranslate stage of
pipelines/coco.toml on it four times (no filter, each filter alone, both; the COCO val
captions as text corpus, so the word pairs are the full run's) and measures those runs.
"""

import argparse
import json
from pathlib import Path

import pyarrow.ipc as ipc

TARGET = {"same_graph": "meaning_changed", "well_formed": "ungrammatical"}


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def emitted(run):
    out = set()
    for shard in sorted(Path(run).glob("shard-*.arrow")):
        for row in ipc.open_file(shard).read_all().select(["caption", "positives"]).to_pylist():
            for p in row["positives"]:
                if p["kind"] == "backtranslation" and p["text"]:
                    out.add((row["caption"], p["text"]))
    return out


def measure(items, weight, kept, target):
    def total(pred):
        return sum(weight[i["stratum"]] for i in items if pred(i))

    rejected = lambda i: (i["caption"], i["candidate"]) not in kept
    bad = lambda i: i["label"] != "valid"
    row = {"rejected_share": total(rejected) / total(lambda i: True)}
    for name, is_bad in [("not_valid", bad), (target, lambda i: i["label"] == target)]:
        if name is None:
            continue
        flagged_bad = total(lambda i: rejected(i) and is_bad(i))
        row[name] = {
            "precision": flagged_bad / max(total(rejected), 1e-9),
            "recall": flagged_bad / max(total(is_bad), 1e-9),
        }
    row["valid_lost"] = total(lambda i: rejected(i) and not bad(i)) / max(total(lambda i: not bad(i)), 1e-9)
    survivors = [i for i in items if not rejected(i)]
    row["survivors_in_sample"] = len(survivors)
    row["survivor_valid_share"] = total(lambda i: not rejected(i) and not bad(i)) / max(total(lambda i: not rejected(i)), 1e-9)
    return row


FILTER_VARIANTS = {
    "raw": "same_graph = false, well_formed = false",
    "same_graph": "same_graph = true, well_formed = false",
    "well_formed": "same_graph = false, well_formed = true",
    "both": "same_graph = true, well_formed = true",
}


def reproduce(cmcl, data, work):
    """Runs the four filter variants; returns {variant: run dir}."""
    import random
    import subprocess

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    captions = Path(data) / "coco/annotations/captions_val2017.json"
    annotations = json.loads(captions.read_text())["annotations"]
    random.seed(21)
    used = {a["id"] for a in random.sample(annotations, 600)}
    rest = [a for a in annotations if a["id"] not in used]
    random.seed(55)
    sample = work / "coco2000.jsonl"
    with open(sample, "w") as f:
        for a in random.sample(rest, 2000):
            f.write(json.dumps({"image_id": a["image_id"], "caption": a["caption"], "id": a["id"]}) + "\n")
    root = Path(__file__).resolve().parent.parent
    runs = {}
    for name, switches in FILTER_VARIANTS.items():
        pipeline = work / f"{name}.toml"
        pipeline.write_text(
            f'name = "filters-{name}"\nseed = 42\n\n'
            f'[[inputs.pairs]]\nformat = "jsonl"\npath = "{sample}"\n'
            'columns = { image_id = "image_id", caption = "caption", id = "id" }\n\n'
            f'[[inputs.text_corpus]]\nformat = "coco"\npath = "{captions}"\n\n'
            '[[stages]]\ntype = "backtranslate"\nbackend = "auto"\npivots = ["spa", "cat", "eo"]\n'
            f'max_positives = 3\nencoder = "{root / "models/all-MiniLM-L6-v2"}"\n'
            'filter = { min_similarity = 0.8, min_edit_ratio = 0.1, max_dropped_content_words = 2, '
            'wordnet_dir = "/usr/share/wordnet", min_length_ratio = 0.6, max_length_ratio = 1.6, '
            f"{switches} }}\n"
        )
        out = work / name
        subprocess.run(
            [cmcl, "augment", "--pipeline", str(pipeline), "--out", str(out), "--force",
             "--cache-dir", str(work / "cache"), "--no-progress"],
            check=True,
        )
        runs[name] = out
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audit", required=True)
    ap.add_argument("--population", action="append", default=[], help="STRATUM=N candidates in the run")
    ap.add_argument("--filter", action="append", default=[], help="NAME=RUN_DIR")
    ap.add_argument("--reproduce", action="store_true")
    ap.add_argument("--cmcl")
    ap.add_argument("--data")
    ap.add_argument("--work")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.reproduce:
        runs = reproduce(args.cmcl, args.data, args.work)
        # The strata were drawn from the run of the same-graph filter as it stood then:
        # 278 round trips kept, 2,993 rejected (filters/README.md).
        args.population = ["sg=278", "raw=2993"]
        args.filter = [f"{name}={runs[name]}" for name in ("same_graph", "well_formed", "both")]
    audit = Path(args.audit)
    items = {i["id"]: i for i in read_jsonl(audit / "items.jsonl")}
    for k in read_jsonl(audit / "key.jsonl"):
        items[k["id"]]["stratum"] = k["stratum"]
    for label in read_jsonl(audit / "labels.jsonl"):
        items[label["id"]]["label"] = label["label"]
    items = list(items.values())
    sampled = {}
    for i in items:
        sampled[i["stratum"]] = sampled.get(i["stratum"], 0) + 1
    population = {s: int(n) for s, _, n in (p.partition("=") for p in args.population)}
    weight = {s: population[s] / sampled[s] for s in sampled}
    report = {"items": len(items), "labels": {}, "filters": {}}
    for i in items:
        report["labels"][i["label"]] = report["labels"].get(i["label"], 0) + 1
    for spec in args.filter:
        name, _, run = spec.partition("=")
        report["filters"][name] = measure(items, weight, emitted(run), TARGET.get(name))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
