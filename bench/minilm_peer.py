"""MiniLM peer for `make bench`: sentence-transformers on PyTorch (CPU) over the captions
benches/minilm.rs encoded, at 1 and 2 threads, then the comparison with cmcl's run.

Each thread count runs in a fresh process (PyTorch keeps its pool), batch 64, the
library's own length sort. Prints sentences/s and peak RSS for both, cmcl's speed as a
ratio of sentence-transformers', and the largest absolute difference and the minimum and
mean cosine between the two sets of vectors.

Usage: minilm_peer.py --work OUT/minilm --model models/all-MiniLM-L6-v2 [--json OUT]
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def encode(work, model, threads):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    captions = json.loads((work / "captions.json").read_text())
    encoder = SentenceTransformer(str(model), device="cpu")
    encoder.encode(captions[:64], batch_size=64)
    started = time.perf_counter()
    vectors = encoder.encode(captions, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    seconds = time.perf_counter() - started
    np.save(work / f"st-{threads}.npy", vectors.astype(np.float32))
    result = {
        "threads": threads,
        "sentences": len(captions),
        "seconds": seconds,
        "sentences_per_s": len(captions) / seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
    }
    (work / f"st-{threads}.json").write_text(json.dumps(result, indent=2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--json")
    args = ap.parse_args()
    work = Path(args.work)
    if args.threads:
        encode(work, Path(args.model), args.threads)
        return
    for threads in (1, 2):
        subprocess.run(
            [sys.executable, __file__, "--work", str(work), "--model", args.model, "--threads", str(threads)],
            check=True,
        )
    report = {}
    print(f"{'encoder':<24} {'threads':>7} {'sentences/s':>12} {'peak RSS MiB':>13} {'cmcl / peer':>12}")
    for threads in (1, 2):
        cmcl = json.loads((work / f"cmcl-{threads}.json").read_text())
        peer = json.loads((work / f"st-{threads}.json").read_text())
        ratio = cmcl["sentences_per_s"] / peer["sentences_per_s"]
        print(f"{'sentence-transformers':<24} {threads:>7} {peer['sentences_per_s']:>12.0f} {peer['peak_rss_mib']:>13.0f}")
        print(f"{'cmcl (candle)':<24} {threads:>7} {cmcl['sentences_per_s']:>12.0f} {cmcl['peak_rss_mib']:>13.0f} {ratio:>11.2f}x")
        report[f"{threads}_threads"] = {"cmcl": cmcl, "sentence_transformers": peer, "ratio": ratio}
    a = np.load(work / "cmcl-2.npy")
    b = np.load(work / "st-2.npy")
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    report["max_abs_diff"] = float(np.abs(a - b).max())
    report["min_cosine"] = float(cos.min())
    report["mean_cosine"] = float(cos.mean())
    print(
        f"vectors: max |difference| {report['max_abs_diff']:.2e}, cosine min {report['min_cosine']:.6f}, "
        f"mean {report['mean_cosine']:.6f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
