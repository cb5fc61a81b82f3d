"""Blind audit files for a run's negatives or positives (protocol:
../shared/audit/README.md).

sample: draws N random items per kind (fixed seed) of one column (--column negatives,
  the default, or positives) from each run given as VERSION=RUN_DIR, mixes them into one
  shuffled items file the annotator reads (id, caption, candidate, and for negatives
  intended_edit) and writes the key (id -> version, kind, generator, params) to a
  separate file the annotator never opens.
tabulate: joins the key with a labels file (JSON lines: id, label, fluency) and prints,
  per version and kind, the count of each label, the valid share, the mean fluency and up
  to five examples of each failure label; --json writes the same.

Usage:
  audit.py sample --run before=RUN_A --run after=RUN_B --per-kind 60 --seed 7 --out DIR
  audit.py tabulate --key DIR/key.jsonl --labels DIR/labels.jsonl [--items DIR/items.jsonl] [--json OUT]
"""

import argparse
import collections
import json
import random
from pathlib import Path

import pyarrow.ipc as ipc

LABELS = {
    "negatives": ["valid", "still_true", "ungrammatical", "implausible", "wrong_edit"],
    "positives": ["valid", "meaning_changed", "ungrammatical", "trivial"],
}
INTENDED = {
    "replace_object": "replace one object with a different object",
    "replace_attribute": "replace one attribute (colour, size, material, ...) with a different one",
    "replace_relation": "replace one relation (verb or preposition) with a different one",
    "swap_objects": "swap two objects",
    "swap_attributes": "swap the attributes of two objects",
    "tfidf": "a caption of a different image (should be false for this image)",
    "bm25": "a caption of a different image (should be false for this image)",
}


def column_items(run, column):
    out = collections.defaultdict(list)
    for shard in sorted(Path(run).glob("shard-*.arrow")):
        rows = ipc.open_file(shard).read_all().select(["caption", column]).to_pylist()
        for row in rows:
            for n in row[column]:
                if n["text"]:
                    out[n["kind"]].append((row["caption"], n))
    return out


def sample(args):
    rng = random.Random(args.seed)
    items, key = [], []
    for spec in args.run:
        version, _, run = spec.partition("=")
        by_kind = column_items(run, args.column)
        for kind in sorted(by_kind):
            if args.kinds and kind not in args.kinds:
                continue
            pool = by_kind[kind]
            for caption, n in rng.sample(pool, min(args.per_kind, len(pool))):
                item = {"caption": caption, "candidate": n["text"]}
                if args.column == "negatives":
                    item["intended_edit"] = INTENDED.get(kind, kind)
                items.append(item)
                key.append({"version": version, "kind": kind, "generator": n["generator"], "params": n["params"]})
    order = list(range(len(items)))
    rng.shuffle(order)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "items.jsonl", "w") as f_items, open(out / "key.jsonl", "w") as f_key:
        for new_id, i in enumerate(order):
            f_items.write(json.dumps({"id": new_id, **items[i]}) + "\n")
            f_key.write(json.dumps({"id": new_id, **key[i]}) + "\n")
    print(f"{len(items)} items in {out / 'items.jsonl'}, key in {out / 'key.jsonl'}")


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def tabulate(args):
    key = {k["id"]: k for k in read_jsonl(args.key)}
    items = {i["id"]: i for i in read_jsonl(args.items)} if args.items else {}
    table = collections.defaultdict(lambda: {"labels": collections.Counter(), "fluency": [], "examples": collections.defaultdict(list)})
    for label in read_jsonl(args.labels):
        k = key[label["id"]]
        cell = table[(k["version"], k["kind"])]
        cell["labels"][label["label"]] += 1
        if label.get("fluency") is not None:
            cell["fluency"].append(float(label["fluency"]))
        if label["label"] != "valid" and label["id"] in items and len(cell["examples"][label["label"]]) < 5:
            item = items[label["id"]]
            cell["examples"][label["label"]].append(f"{item['caption']} -> {item['candidate']}")
    report = {}
    labels = LABELS[args.column]
    print(f"{'version':<10} {'kind':<18} {'n':>4} " + " ".join(f"{lab[:12]:>12}" for lab in labels) + f" {'valid %':>8} {'fluency':>8}")
    for (version, kind), cell in sorted(table.items()):
        n = sum(cell["labels"].values())
        valid = cell["labels"]["valid"] / max(n, 1)
        fluency = sum(cell["fluency"]) / max(len(cell["fluency"]), 1)
        print(f"{version:<10} {kind:<18} {n:>4} " + " ".join(f"{cell['labels'][lab]:>12}" for lab in labels) + f" {100 * valid:>7.1f}% {fluency:>8.2f}")
        report.setdefault(version, {})[kind] = {
            "n": n,
            "labels": dict(cell["labels"]),
            "valid_share": valid,
            "mean_fluency": fluency,
            "examples": dict(cell["examples"]),
        }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--run", action="append", required=True, help="VERSION=RUN_DIR")
    s.add_argument("--column", choices=sorted(LABELS), default="negatives")
    s.add_argument("--per-kind", type=int, default=60)
    s.add_argument("--kinds", nargs="*")
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--out", required=True)
    t = sub.add_parser("tabulate")
    t.add_argument("--key", required=True)
    t.add_argument("--labels", required=True)
    t.add_argument("--items")
    t.add_argument("--column", choices=sorted(LABELS), default="negatives")
    t.add_argument("--json")
    args = ap.parse_args()
    sample(args) if args.command == "sample" else tabulate(args)


if __name__ == "__main__":
    main()
