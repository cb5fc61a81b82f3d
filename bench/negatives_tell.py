"""Can a text-only model tell a run's negatives from the true captions? Two detectors.

1. A trigram language model (interpolated Kneser-Ney) trained on the Flickr8k captions,
   which no COCO run sees: per kind, the share of (caption, negative) items where it gives
   the true caption the higher mean log-probability per token. 50% means no tell; the
   target band is 42-58%.
2. A pairwise logistic regression on word 1-2-gram count differences: each item becomes
   x = f(a) - f(b) with the true caption as a or b at random (seeded), label "a is true";
   accuracy per kind from 5-fold cross-validation grouped by caption, so no caption is in
   both the training and the test folds. 50% means no tell; the target is at most 70%.

Usage: negatives_tell.py RUN_DIR --flickr8k TOKEN_FILE [--json OUT] [--max-per-kind N]
"""

import argparse
import collections
import json
import math
import random
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

SEED = 13


def tokens(text):
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


class KneserNey:
    """Interpolated Kneser-Ney trigram model with one discount per order."""

    def __init__(self, sentences, discount=0.75):
        self.d = discount
        self.tri = collections.Counter()
        self.bi_ctx = collections.Counter()  # count of (u, v) as a trigram context
        self.tri_types_after = collections.Counter()  # distinct w after (u, v)
        self.cont_bi = collections.Counter()  # distinct u before (v, w)
        self.cont_bi_ctx = collections.Counter()  # distinct (u, w) around v
        self.bi_types_after = collections.Counter()  # distinct w after v in cont_bi
        self.cont_uni = collections.Counter()  # distinct v before w
        for s in sentences:
            t = ["<s>", "<s>"] + tokens(s) + ["</s>"]
            for i in range(2, len(t)):
                self.tri[(t[i - 2], t[i - 1], t[i])] += 1
        for (u, v, w), n in self.tri.items():
            self.bi_ctx[(u, v)] += n
            self.tri_types_after[(u, v)] += 1
            self.cont_bi[(v, w)] += 1
        for (v, w) in self.cont_bi:
            self.cont_bi_ctx[v] += self.cont_bi[(v, w)]
            self.bi_types_after[v] += 1
            self.cont_uni[w] += 1
        self.uni_total = sum(self.cont_uni.values())
        self.vocab = len(self.cont_uni) + 1

    def prob(self, u, v, w):
        p_uni = (self.cont_uni[w] + 1) / (self.uni_total + self.vocab)
        c_v = self.cont_bi_ctx[v]
        if c_v:
            p_bi = max(self.cont_bi[(v, w)] - self.d, 0) / c_v + self.d * self.bi_types_after[v] / c_v * p_uni
        else:
            p_bi = p_uni
        c_uv = self.bi_ctx[(u, v)]
        if c_uv:
            return max(self.tri[(u, v, w)] - self.d, 0) / c_uv + self.d * self.tri_types_after[(u, v)] / c_uv * p_bi
        return p_bi

    def mean_log_prob(self, sentence):
        t = ["<s>", "<s>"] + tokens(sentence) + ["</s>"]
        logs = [math.log(self.prob(t[i - 2], t[i - 1], t[i])) for i in range(2, len(t))]
        return sum(logs) / len(logs)


def read_items(run, max_per_kind):
    items = []
    for shard in sorted(Path(run).glob("shard-*.arrow")):
        table = ipc.open_file(shard).read_all().select(["uid", "caption", "negatives"]).to_pylist()
        for row in table:
            for n in row["negatives"]:
                if n["text"]:
                    items.append((n["kind"], row["caption"], n["text"]))
    rng = random.Random(SEED)
    rng.shuffle(items)
    per_kind = collections.defaultdict(list)
    for kind, caption, negative in items:
        if len(per_kind[kind]) < max_per_kind:
            per_kind[kind].append((caption, negative))
    return dict(sorted(per_kind.items()))


def detector_accuracy(pairs, rng):
    if len(pairs) < 10:
        return None
    vec = CountVectorizer(ngram_range=(1, 2), token_pattern=r"[a-z0-9]+(?:'[a-z]+)?", lowercase=True)
    vec.fit([c for c, _ in pairs] + [n for _, n in pairs])
    caps = vec.transform([c for c, _ in pairs])
    negs = vec.transform([n for _, n in pairs])
    flip = np.array([rng.random() < 0.5 for _ in pairs])
    x = caps - negs
    x = x.multiply(np.where(flip, -1, 1)[:, None]).tocsr()
    y = (~flip).astype(int)  # 1 when a (the first) is the true caption
    groups = [c for c, _ in pairs]
    correct = 0
    for train, test in GroupKFold(n_splits=5).split(x, y, groups):
        model = LogisticRegression(max_iter=2000, C=1.0)
        model.fit(x[train], y[train])
        correct += int((model.predict(x[test]) == y[test]).sum())
    return correct / len(pairs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--flickr8k", required=True)
    ap.add_argument("--json")
    ap.add_argument("--max-per-kind", type=int, default=5000)
    args = ap.parse_args()
    flickr = [line.split("\t", 1)[1] for line in Path(args.flickr8k).read_text().splitlines() if "\t" in line]
    lm = KneserNey(flickr)
    per_kind = read_items(args.run, args.max_per_kind)
    if not per_kind:
        sys.exit(f"{args.run}: no text negatives")
    rng = random.Random(SEED)
    report = {"flickr8k_captions": len(flickr), "kinds": {}}
    print(f"{'kind':<20} {'items':>6} {'LM prefers true':>16} {'detector acc':>13}")
    for kind, pairs in per_kind.items():
        prefer = sum(lm.mean_log_prob(c) > lm.mean_log_prob(n) for c, n in pairs) / len(pairs)
        acc = detector_accuracy(pairs, rng)
        report["kinds"][kind] = {"items": len(pairs), "lm_prefers_true": prefer, "detector_accuracy": acc}
        acc_text = "n/a" if acc is None else f"{100 * acc:.1f}%"
        print(f"{kind:<20} {len(pairs):>6} {100 * prefer:>15.1f}% {acc_text:>13}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
