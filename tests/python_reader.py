"""Checks the Python reader (python/cmcl_reader) on a finished run, without torch.

Usage: PYTHONPATH=python python_reader.py RUN_DIR. The run needs a row with at least two
negatives of one kind, so that sampling has something to choose. Prints
`python reader ok rows=N` last; exits non-zero on the first failed check.
"""
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from cmcl_reader import CmclDataset, RunError, open_run, read_shard


def check(condition: object, message: str) -> None:
    # Not `assert`: the checks must hold under `python -O` too.
    if not condition:
        raise SystemExit(f"python_reader.py: FAILED: {message}")


def items(dataset: CmclDataset, epoch: int) -> list:
    dataset.set_epoch(epoch)
    return list(dataset)


def by_uid(items_list: list) -> dict:
    return {item["uid"]: item for item in items_list}


def multiset(items_list: list) -> Counter:
    return Counter(json.dumps(item, sort_keys=True) for item in items_list)


run = open_run(sys.argv[1])
stored = {}  # uid -> row as read_shard gives it
shard_of = {}  # uid -> shard file name
for shard in run.shard_files:
    for row in read_shard(shard):
        check(row["uid"] not in stored, f"uid {row['uid'].hex()} twice in the run")
        stored[row["uid"]] = row
        shard_of[row["uid"]] = shard.name
check(len(stored) == run.total_rows, f"{len(stored)} rows in the shards, manifest says {run.total_rows}")
num_shards = len(run.shard_files)

# The kind with the most negatives on one row is the one sampling is checked on.
most = Counter()
for row in stored.values():
    for kind, count in Counter(item["kind"] for item in row["negatives"]).items():
        most[kind] = max(most[kind], count)
check(most and max(most.values()) >= 2, f"no row has two negatives of one kind ({dict(most)}): nothing to sample")
sampled_kind = max(most, key=lambda kind: (most[kind], kind))
K = 2 if most[sampled_kind] > 2 else 1
other_kinds = sorted(set(most) - {sampled_kind})
# With three kinds or more, ask for two so that both selecting and leaving out are seen.
kinds = [sampled_kind] + (other_kinds[:1] if len(other_kinds) >= 2 else [])
P = 1
# Seed 7 orders the shards differently in epochs 0 and 1 for every shard count up to 199.
SEED = 7


def dataset(**options) -> CmclDataset:
    settings = dict(negatives_per_kind=K, kinds=kinds, positives=P, seed=SEED, shuffle=True)
    settings.update(options)
    return CmclDataset(run, **settings)


# Every row exactly once per epoch across two workers, each reading whole shards.
for epoch in (0, 1):
    per_worker = [items(dataset(worker_id=w, num_workers=2), epoch) for w in (0, 1)]
    seen = [item["uid"] for part in per_worker for item in part]
    # As many items as rows and every uid among them: each uid exactly once.
    check(len(seen) == run.total_rows, f"epoch {epoch}: {len(seen)} items, manifest says {run.total_rows} rows")
    check(set(seen) == set(stored), f"epoch {epoch}: {len(set(seen))} of {len(stored)} uids seen")
    worker_shards = [{shard_of[item["uid"]] for item in part} for part in per_worker]
    check(not worker_shards[0] & worker_shards[1], f"epoch {epoch}: shards read by both workers: {worker_shards[0] & worker_shards[1]}")
    if num_shards > 1:
        check(all(worker_shards), f"epoch {epoch}: a worker got no shard of {num_shards}")

# Ranks compose with workers: 2 ranks x 2 workers still see every row once.
seen = [item["uid"] for rank in (0, 1) for worker in (0, 1)
        for item in items(dataset(rank=rank, world_size=2, worker_id=worker, num_workers=2), 0)]
check(len(seen) == run.total_rows and set(seen) == set(stored), "2 ranks x 2 workers do not see every row once")


def shard_order(items_list: list) -> list:
    order = []
    for item in items_list:
        if not order or order[-1] != shard_of[item["uid"]]:
            order.append(shard_of[item["uid"]])
    return order


# Without shuffle: the manifest's order. With it: whole shards, reordered per epoch.
plain = items(dataset(shuffle=False, worker_id=0, num_workers=1), 0)
check([item["uid"] for item in plain] == list(stored), "shuffle=False does not give the stored row order")
one_worker = {epoch: items(dataset(worker_id=0, num_workers=1), epoch) for epoch in (0, 1)}
orders = {epoch: shard_order(found) for epoch, found in one_worker.items()}
for epoch, order in orders.items():
    check(sorted(order) == sorted(s.name for s in run.shard_files), f"epoch {epoch}: shards not read whole, once: {order}")
if num_shards > 1:
    check(orders[0] != orders[1], f"the shard order is the same in epochs 0 and 1: {orders[0]}")


def rows_by_shard(items_list: list) -> dict:
    return {name: [i["uid"] for i in items_list if shard_of[i["uid"]] == name] for name in orders[0]}


if max(s["rows"] for s in run.manifest["shards"]) > 2:
    check(rows_by_shard(one_worker[0]) != rows_by_shard(plain), "shuffle=True left every shard's rows in their stored order")
    check(rows_by_shard(one_worker[0]) != rows_by_shard(one_worker[1]), "every shard's rows are in the same order in epochs 0 and 1")

# Seeded: the same seed and epoch repeat exactly; another seed or epoch samples differently.
check(items(dataset(worker_id=0, num_workers=1), 0) == one_worker[0], "the same seed and epoch gave other items")
for label, other in (("seed", items(dataset(seed=SEED + 1, worker_id=0, num_workers=1), 0)), ("epoch", one_worker[1])):
    mine, theirs = by_uid(one_worker[0]), by_uid(other)
    changed = sum(mine[uid]["negatives"] != theirs[uid]["negatives"] for uid in stored)
    check(changed > 0, f"another {label} sampled the same negatives for every row")

# No dependence on the number of workers: the same item per uid from one or two workers.
two_workers = by_uid(item for w in (0, 1) for item in items(dataset(worker_id=w, num_workers=2), 0))
check(two_workers == by_uid(one_worker[0]), "1 and 2 workers gave different items for some uid")

# The sample: requested kinds only, min(k, available) of each, taken from the row's own items.
for item in one_worker[0]:
    row = stored[item["uid"]]
    uid = item["uid"].hex()
    for column in row:
        if column not in ("negatives", "positives"):
            check(item[column] == row[column], f"{uid}: column {column} changed")
    got = Counter(n["kind"] for n in item["negatives"])
    check(set(got) <= set(kinds), f"{uid}: kinds {sorted(got)} not all requested ({kinds})")
    available = Counter(n["kind"] for n in row["negatives"])
    for kind in kinds:
        check(got[kind] == min(K, available[kind]), f"{uid}: {got[kind]} {kind} negatives of {available[kind]}, k={K}")
    for negative in item["negatives"]:
        check(isinstance(negative["text"], str) and negative["text"], f"{uid}: a negative without text: {negative}")
        check(isinstance(negative["score"], float), f"{uid}: a negative without a float score: {negative}")
        check(isinstance(negative["params"], dict), f"{uid}: params not parsed: {negative}")
    check(not multiset(item["negatives"]) - multiset(row["negatives"]), f"{uid}: negatives not from the row")
    check(len(item["positives"]) == min(P, len(row["positives"])), f"{uid}: {len(item['positives'])} positives, k={P}")
    check(not multiset(item["positives"]) - multiset(row["positives"]), f"{uid}: positives not from the row")
    check(all(p["kind"] and isinstance(p["text"], str) for p in item["positives"]), f"{uid}: a positive without kind or text")
check(any(item["negatives"] for item in one_worker[0]), "no item has a negative")

# The transform's result is what is yielded.
check(items(dataset(transform=lambda item: item["uid"], worker_id=0, num_workers=1), 0) == [i["uid"] for i in one_worker[0]],
      "the transform's results are not what is yielded")

# A run that is not finished is refused, naming its manifest.
with tempfile.TemporaryDirectory() as scratch:
    folder = Path(scratch)
    refusals = ((None, "missing manifest", "is missing"), ({**run.manifest, "complete": False}, "incomplete run", "incomplete"))
    for manifest, what, reason in refusals:
        if manifest is not None:
            (folder / "manifest.json").write_text(json.dumps(manifest))
        try:
            CmclDataset(folder)
        except RunError as error:
            message = str(error)
            check(str(folder / "manifest.json") in message and reason in message, f"{what}: the error does not say so: {message}")
        else:
            check(False, f"{what}: opened without an error")

print(f"python reader ok rows={len(stored)}")
