# cmcl: `make augment` and `make test` are all a fresh machine needs (see README.md).

CARGO    ?= cargo
PYTHON   ?= python3
PIPELINE ?= pipelines/default.toml
# Real data for pipelines/coco.toml and friends, tests and benchmarks.
DATA     ?= $(abspath ../shared/data)
OUT      ?=
SYNTH    := data/synth
VENV     := .cache/venv
CMCL     := target/debug/cmcl
BENCH_OUT := .cache/bench

export CMCL_DATA := $(DATA)

.PHONY: all build augment synth test test-deps bench lint clean

all: augment

build:
	$(CARGO) build --bin cmcl

# The embedded default dataset: generated, never committed.
$(SYNTH)/pairs.jsonl: | build
	$(CMCL) synth --out $(SYNTH)

synth: $(SYNTH)/pairs.jsonl

augment: build $(SYNTH)/pairs.jsonl
	$(CMCL) augment --pipeline $(PIPELINE) $(if $(OUT),--out $(OUT))
	@$(CMCL) stats $(or $(OUT),out/$(shell sed -n 's/^name *= *"\(.*\)"/\1/p' $(PIPELINE)))
	@echo "shards are in $(or $(OUT),out/$(shell sed -n 's/^name *= *"\(.*\)"/\1/p' $(PIPELINE))) (cmcl inspect DIR shows them)"

# Python peers the tests read shards with (pyarrow, polars), in an ignored venv.
$(VENV)/.test-deps: tools/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-test.txt
	touch $@

test-deps: $(VENV)/.test-deps

test: test-deps
	CMCL_TEST_PYTHON=$(abspath $(VENV))/bin/python $(CARGO) test

$(VENV)/.bench-deps: tools/requirements-bench.txt $(VENV)/.test-deps
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements-bench.txt
	touch $@

bench: $(VENV)/.bench-deps
	mkdir -p $(BENCH_OUT)
	$(CARGO) bench --bench tfidf -- --data $(DATA) --out $(BENCH_OUT)
	$(VENV)/bin/python bench/tfidf_sklearn.py --data $(DATA) --out $(BENCH_OUT)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	rm -rf target out $(SYNTH) .cache
