"""Scene-graph negatives of a finished run, checked from the outside.

For the scene_graph stage of a run folder this prints:
- the share of captions with at least one scene-graph negative;
- candidates kept and rejected per edit kind and reason (from the manifest);
- the share of captions with a negative of each kind, and of the captions whose parse
  names two objects of different single colours, the share with a swap_attributes one;
- an independent check of "one node changed": every negative and its original are parsed
  again with `cmcl parse`; a negative passes when every triple that differs between the
  two graphs mentions the replaced (or swapped) words, and its recorded edit applied to
  the original reproduces it.

Usage: negatives_report.py RUN_DIR CMCL_BINARY [--json OUT]
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.ipc as ipc


def apply(original, replacements):
    # Byte offsets, applied back to front.
    data = original.encode()
    for r in sorted(replacements, key=lambda r: r["start"], reverse=True):
        assert data[r["start"]:r["end"]].decode() == r["from"], (original, r)
        data = data[: r["start"]] + r["to"].encode() + data[r["end"]:]
    return data.decode()


COLOURS = {
    "white", "black", "red", "blue", "green", "yellow", "orange", "brown", "gray", "grey",
    "pink", "purple", "silver", "gold", "tan", "beige",
}


# The parser writes counts as digits ("two dogs" -> dog is 2).
NUMBERS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6"}


def two_colours(graph):
    """Whether two objects of the graph each have one colour, and the colours differ."""
    colours = {}
    for s, p, o in (t for t in graph if len(t) == 3):
        if p == "is" and o in COLOURS:
            colours.setdefault(s, set()).add(o)
    single = [next(iter(c)) for c in colours.values() if len(c) == 1]
    return len(set(single)) >= 2


def same_word(a, b):
    # Lemma against surface form ("ride" / "riding", "dog" / "dogs"): a shared stem.
    n = min(len(a), len(b), 4)
    return a[:n] == b[:n] and n >= min(len(a), len(b), 3)


def parse_all(cmcl, texts):
    # One caption per line: a caption's own line breaks become spaces.
    lines = "\n".join(" ".join(t.split()) for t in texts) + "\n"
    out = subprocess.run(
        [cmcl, "parse"], input=lines, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(out) == len(texts), (len(out), len(texts))
    graphs = []
    for line in out:
        _, _, triples = line.partition("\t")
        graphs.append(
            {tuple(x.strip() for x in t.strip(" ()").split(" , ")) for t in triples.split(") , (") if t}
        )
    return graphs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("cmcl")
    ap.add_argument("--json")
    args = ap.parse_args()
    run = Path(args.run)
    manifest = json.loads((run / "manifest.json").read_text())
    stats = manifest["stages"].get("scene_graph")
    if stats is None:
        sys.exit(f"{run}: no scene_graph stage in the manifest")
    originals, negatives = [], []
    captions = with_negative = 0
    all_captions, kinds_of = [], []
    for shard in sorted(run.glob("shard-*.arrow")):
        table = ipc.open_file(shard).read_all().select(["caption", "negatives"]).to_pylist()
        for row in table:
            captions += 1
            mine = [n for n in row["negatives"] if n["generator"] == "scene_graph"]
            with_negative += bool(mine)
            all_captions.append(row["caption"])
            kinds_of.append({n["kind"] for n in mine})
            for n in mine:
                originals.append(row["caption"])
                negatives.append(n)
    reproduced = sum(
        apply(o, json.loads(n["params"])["edit"]) == n["text"] for o, n in zip(originals, negatives)
    )
    unique = sorted(set(originals))
    graph_of = dict(zip(unique, parse_all(args.cmcl, unique)))
    negative_graphs = parse_all(args.cmcl, [n["text"] for n in negatives])
    per_kind = {}
    for original, negative, after in zip(originals, negatives, negative_graphs):
        before = graph_of[original]
        edit = [r for r in json.loads(negative["params"])["edit"] if r["node"]]
        words = {w.lower() for r in edit for w in (r["from"] + " " + r["to"]).split()}
        words |= {NUMBERS[w] for w in words if w in NUMBERS}
        changed = before ^ after
        one_node = all(
            any(same_word(w, x) for w in words for x in " ".join(t).split()) for t in changed
        )
        k = per_kind.setdefault(negative["kind"], [0, 0])
        k[0] += 1
        k[1] += one_node
    caption_graphs = parse_all(args.cmcl, all_captions)
    eligible = [i for i, g in enumerate(caption_graphs) if two_colours(g)]
    swapped = sum("swap_attributes" in kinds_of[i] for i in eligible)
    total = sum(k[0] for k in per_kind.values())
    single = sum(k[1] for k in per_kind.values())
    report = {
        "captions": captions,
        "captions_with_negative": with_negative,
        "share_with_negative": with_negative / max(captions, 1),
        "negatives": total,
        "coverage_per_kind": {
            kind: sum(kind in k for k in kinds_of) / max(captions, 1) for kind in sorted(per_kind)
        },
        "two_colour_captions": len(eligible),
        "two_colour_captions_with_swap_attributes": swapped,
        "edit_reproduces_negative": reproduced / max(total, 1),
        "one_node_change_by_reparse": single / max(total, 1),
        "per_kind": {
            kind: {
                "emitted": n,
                "rejected": {
                    reason.split(".")[0]: count
                    for reason, count in stats["rejected"].items()
                    if reason.endswith("." + kind)
                },
                "one_node_change_by_reparse": ok / max(n, 1),
            }
            for kind, (n, ok) in sorted(per_kind.items())
        },
        "rejected": stats["rejected"],
    }
    print(
        f"scene_graph negatives: {with_negative}/{captions} captions "
        f"({100 * report['share_with_negative']:.1f}%) have at least one; {total} negatives"
    )
    for kind, share in report["coverage_per_kind"].items():
        print(f"  captions with {kind}: {100 * share:.1f}%")
    print(
        f"  swap_attributes on {swapped}/{len(eligible)} captions naming two objects of "
        f"different single colours ({100 * swapped / max(len(eligible), 1):.1f}%)"
    )
    print(f"  recorded edit reproduces the negative: {100 * report['edit_reproduces_negative']:.2f}%")
    print(f"  one node changed (re-parsed graphs): {100 * report['one_node_change_by_reparse']:.1f}%")
    print(f"  {'kind':<18} {'emitted':>8} {'not fluent':>11} {'paraphrase':>11} {'pass rate':>10} {'one node':>9}")
    for kind, k in report["per_kind"].items():
        rejected = k["rejected"]
        tried = k["emitted"] + sum(rejected.values())
        print(
            f"  {kind:<18} {k['emitted']:>8} {rejected.get('not_fluent', 0):>11} "
            f"{rejected.get('paraphrase', 0):>11} {100 * k['emitted'] / max(tried, 1):>9.1f}% "
            f"{100 * k['one_node_change_by_reparse']:>8.1f}%"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
