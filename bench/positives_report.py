"""Summarises the back-translation positives of a run: share of captions with at least
one accepted positive, median MiniLM similarity, acceptance by pivot, rejections by reason.

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
rows = with_positive = 0
similarities = []
pivots = Counter()
for shard in manifest["shards"]:
    table = ipc.open_file(str(run / shard["file"])).read_all()
    for positives in table.column("positives").to_pylist():
        rows += 1
        kept = [p for p in positives if p["kind"] == "backtranslation"]
        with_positive += bool(kept)
        for p in kept:
            similarities.append(p["score"])
            pivots[json.loads(p["params"])["pivot"]] += 1
stats = manifest["stages"]["backtranslate"]
print(f"captions with >= 1 accepted positive: {with_positive}/{rows} = {100 * with_positive / rows:.1f}% (target >= 80%)")
print(f"median MiniLM similarity of accepted positives: {statistics.median(similarities):.3f} (target >= 0.85)")
print(f"accepted: {len(similarities)} ({', '.join(f'{k}: {v}' for k, v in sorted(pivots.items()))})")
candidates = len(similarities) + sum(stats["rejected"].values())
print("rejected by reason (share of round trips):")
for reason, n in sorted(stats["rejected"].items(), key=lambda x: -x[1]):
    print(f"  {reason}: {n} ({100 * n / candidates:.1f}%)")
print(f"stage time {stats['seconds']:.0f} s, counters {stats.get('counters', {})}")
