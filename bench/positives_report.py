"""Summarises the generated positives of a run: share of captions with at least one
(back-translation, rewrite, either; siblings not counted, as issue 21 counts), back-
translations by pivot and their median MiniLM similarity, rejections by reason, and
rewrites by rule.

Usage: positives_report.py RUN_DIR
"""
import json
import statistics
import sys
from collections import Counter
from pathlib import Path

import pyarrow.ipc as ipc

run = Path(sys.argv[1])
manifest = json.loads((run / "manifest.json").read_text())
rows = 0
with_kind = Counter()
similarities = []
pivots = Counter()
for shard in manifest["shards"]:
    table = ipc.open_file(str(run / shard["file"])).read_all()
    for positives in table.column("positives").to_pylist():
        rows += 1
        kinds = {p["kind"] for p in positives}
        for kind in kinds & {"backtranslation", "rewrite"}:
            with_kind[kind] += 1
        with_kind["either"] += bool(kinds & {"backtranslation", "rewrite"})
        for p in positives:
            if p["kind"] == "backtranslation":
                similarities.append(p["score"])
                pivots[json.loads(p["params"])["pivot"]] += 1
for kind in ("backtranslation", "rewrite", "either"):
    n = with_kind[kind]
    print(f"captions with >= 1 {kind} positive: {n}/{rows} = {100 * n / max(rows, 1):.1f}%")
stages = manifest["stages"]
if "backtranslate" in stages:
    stats = stages["backtranslate"]
    if similarities:
        print(f"median MiniLM similarity of back-translations: {statistics.median(similarities):.3f}")
    print(f"back-translations: {len(similarities)} ({', '.join(f'{k}: {v}' for k, v in sorted(pivots.items()))})")
    candidates = len(similarities) + sum(stats["rejected"].values())
    print("back-translation rejections by reason (share of round trips):")
    for reason, n in sorted(stats["rejected"].items(), key=lambda x: -x[1]):
        print(f"  {reason}: {n} ({100 * n / candidates:.1f}%)")
    print(f"backtranslate stage time {stats['seconds']:.0f} s, counters {stats.get('counters', {})}")
if "rewrite" in stages:
    counters = stages["rewrite"].get("counters", {})
    emitted = {k.split(".", 1)[1]: v for k, v in counters.items() if k.startswith("emitted.")}
    print(f"rewrites by rule: {dict(sorted(emitted.items(), key=lambda x: -x[1]))}")
    print(f"rewrite rejections: {stages['rewrite']['rejected']}")
