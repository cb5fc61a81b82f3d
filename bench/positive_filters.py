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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audit", required=True)
    ap.add_argument("--population", action="append", required=True, help="STRATUM=N candidates in the run")
    ap.add_argument("--filter", action="append", required=True, help="NAME=RUN_DIR")
    ap.add_argument("--json")
    args = ap.parse_args()
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
