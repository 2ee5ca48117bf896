# hotswap.deploy — every target installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := build/venv
PY          := $(CURDIR)/$(VENV)/bin/python
COLL_DIR    := $(CURDIR)/build/collections
COLL_INST   := $(COLL_DIR)/ansible_collections/hotswap/deploy
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(COLL_DIR)

# Only files that exist: a file deleted but not yet committed is still listed by git ls-files.
SOURCES := $(wildcard $(shell git ls-files 2>/dev/null; git ls-files --others --exclude-standard 2>/dev/null))

.PHONY: help deps venv image collection unit go-test lint sanity core-matrix core-unit core-sanity core-venvs static-checks lane-1 lane-2 changelog-lint docs-lint galaxy-import integration molecule test demo hosts-up \
        hosts-down clean bench-zero-downtime bench

help:
	@echo "make demo   - start 3 local test hosts, deploy v1 then v2 of the demo service under load"
	@echo "make test   - the whole test suite (unit, go, lint, sanity, changelog, integration and molecule scenarios)"
	@echo "make core-matrix - unit tests and sanity on ansible-core 2.16, 2.17 and 2.18 (2.19: make unit sanity)"
	@echo "make -j2 static-checks - the static checks of make test, in two lanes"
	@echo "make changelog-lint - changelog fragments, changelogs/changelog.yaml and CHANGELOG.md (docs/development.md)"
	@echo "make docs-lint - antsibull-docs lint-collection-docs: the docs of every module, plugin and role"
	@echo "make galaxy-import - galaxy-importer (what Galaxy runs on an upload) on the built tarball, offline"
	@echo "make molecule [MOLECULE_SCENARIOS=canary] - the molecule scenario of every role (molecule/README.md)"
	@echo "make clean  - remove build/ and this checkout's test containers"
	@echo "make hosts-up / hosts-down [PREFIX=hs-dev COUNT=3] - test hosts to try things by hand"
	@echo "make bench-zero-downtime [BENCH_ARGS=--quick] - every restart strategy under load (~15 min; docs/zero-downtime.md)"
	@echo "make bench [BENCH_HOSTS=\"1 5 10 20\" BENCH_REPS=3] - deploy.yml vs a baseline: time, no-op, transfer, round trips, rollback (docs/benchmarks.md)"
	@echo "make docs   - the HTML docs (modules, plugins, roles, the guides of docs/) into build/docsite/html (docs/development.md)"

deps: build/.deps
build/.deps: scripts/install-deps.sh
	@mkdir -p build
	scripts/install-deps.sh
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: requirements-dev.txt | build/.deps
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	@touch $@

image: venv
	$(PY) tests/hosts/testhosts.py image

# The collection as users get it: built tarball, installed.
collection: $(COLL_INST)/MANIFEST.json
$(COLL_INST)/MANIFEST.json: $(SOURCES) | $(VENV)/.installed
	rm -rf build/dist $(COLL_INST)
	ansible-galaxy collection build --force --output-path build/dist . >/dev/null
	ansible-galaxy collection install --force -p $(COLL_DIR) build/dist/hotswap-deploy-*.tar.gz >/dev/null
	@echo "collection: installed $$(ls build/dist) into $(COLL_DIR)"

unit: venv collection
	$(PY) -m pytest -q tests/unit

go-test: deps
	cd tests/app && go vet ./... && go test -count=1 ./...
	cd tests/load/probe && go vet ./... && go test -count=1 ./...

lint: venv collection
	ansible-lint --profile production playbooks/ roles/ 

sanity: venv
	scripts/sanity.sh

# The unit tests and sanity on every other ansible-core minor release meta/runtime.yml claims (a venv each).
core-matrix: core-unit core-sanity

core-unit: venv
	scripts/core-matrix.sh --unit

core-sanity: venv
	scripts/core-matrix.sh --sanity

core-sanity-%: venv
	scripts/core-matrix.sh --sanity $*

# The venvs of the matrix alone (the integration tests deploy with the oldest release's ansible-playbook).
core-venvs: core-venv-2.16 core-venv-2.17 core-venv-2.18

core-venv-%: venv
	scripts/core-matrix.sh --venvs $*

# The docs of every module, filter, the callback and every role entry point as antsibull-docs reads them: schema,
# markup, references to this collection's and ansible.builtin's plugins and options, the RST it would write.
docs-lint: venv
	antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs dependent --check-extra-docs-refs .
	@echo "docs-lint: ok"

# What Galaxy's importer says of the built tarball, offline and without ansible-test (scripts/galaxy-import.sh).
# galaxy-importer pins its own ansible-lint, so it has a venv of its own (requirements-importer.txt).
IMPORTER_VENV := build/importer-venv
galaxy-import: $(IMPORTER_VENV)/.installed
	scripts/galaxy-import.sh

$(IMPORTER_VENV)/.installed: requirements-importer.txt | build/.deps
	python3 -m venv $(IMPORTER_VENV)
	$(IMPORTER_VENV)/bin/pip install -q --upgrade pip
	$(IMPORTER_VENV)/bin/pip install -q -r requirements-importer.txt
	@touch $@

# The fragments and changelogs/changelog.yaml are valid, and CHANGELOG.md is what antsibull-changelog
# generates from changelog.yaml (generated into a temporary file: the tree is left as it is).
changelog-lint: venv
	antsibull-changelog lint
	antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	@out="$$(mktemp)"; trap 'rm -f "$$out"' EXIT; \
	antsibull-changelog generate --output "$$out" --output-format md || exit 1; \
	diff -u CHANGELOG.md "$$out" || { echo "changelog-lint: CHANGELOG.md is not what 'antsibull-changelog generate'" \
	  "makes of changelogs/changelog.yaml; run that and commit the result" >&2; exit 1; }

integration: venv collection image core-venvs
	$(PY) -m pytest -q tests/integration

# One molecule scenario per role (molecule/README.md), each against its own test hosts. Every scenario
# runs even if one fails; each gets a fresh ephemeral directory, so parallel runs in one checkout
# don't share molecule state; no colours in a log. MOLECULE_SCENARIOS=canary limits the run.
MOLECULE_SCENARIOS ?= $(notdir $(patsubst %/,%,$(dir $(wildcard molecule/*/molecule.yml))))
molecule: venv collection image
	@run="$$(mktemp -d /tmp/hotswap-molecule.XXXXXX)"; trap 'rm -rf "$$run"' EXIT; \
	[ -t 1 ] || export NO_COLOR=1 ANSIBLE_NOCOLOR=1; \
	eval "$$(molecule/shared/artifacts.sh "$$run/app")"; failed=""; summary=""; \
	for s in $(MOLECULE_SCENARIOS); do \
	  t0=$$(date +%s); \
	  if MOLECULE_GLOB='molecule/*/molecule.yml' MOLECULE_EPHEMERAL_DIRECTORY="$$run/$$s" \
	     molecule test -s "$$s"; then r=ok; else r=FAILED; failed="$$failed $$s"; fi; \
	  summary="$$summary $$s=$$r($$(( $$(date +%s) - t0 ))s)"; \
	done; \
	echo "molecule:$$summary"; \
	if [ -n "$$failed" ]; then echo "molecule: failed scenarios:$$failed" >&2; exit 1; fi

# Order: the set-up (venvs, collection, test image: two at a time), the Go tests, the static checks, then pytest;
# the last line is pytest's summary of all Python tests, molecule scenarios included (tests/integration/test_molecule.py).
# The static checks run in two lanes at once, of about the same length, each check after the other within its lane
# (-k: each reports). They run before pytest, not beside it: beside it, even at nice 19, they starved the load tests
# (a load probe reported client overload during a rollback behind HAProxy; the disk has no I/O priorities). Three
# pytest workers keep both cores busy (a fourth made the suite slower: docs/development.md); loadscope keeps each test
# module (or class: one per restart strategy and molecule scenario) on one worker, with its own test hosts.
LANE_1 := sanity core-sanity-2.16 core-sanity-2.17 changelog-lint docs-lint
LANE_2 := lint galaxy-import core-unit core-sanity-2.18
STATIC_CHECKS := $(LANE_1) $(LANE_2)
PYTEST_WORKERS ?= 3
test:
	$(MAKE) -j2 --output-sync=target --no-print-directory venv collection image docs-venv core-venvs
	$(MAKE) --no-print-directory go-test
	$(MAKE) -k -j2 --output-sync=recurse --no-print-directory static-checks
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadscope --durations=60 tests/unit tests/integration

# The static checks of make test in its two lanes (make -j2 static-checks); each lane's output comes when it ends.
# A lane runs its checks one after the other, each in a make of its own, and fails if any failed.
static-checks: lane-1 lane-2

lane-1 lane-2:
	@failed=; for check in $(if $(filter lane-1,$@),$(LANE_1),$(LANE_2)); do \
	  $(MAKE) --no-print-directory "$$check" || failed="$$failed $$check"; \
	done; \
	if [ -n "$$failed" ]; then echo "$@: failed:$$failed" >&2; exit 1; fi

demo: venv collection image
	$(PY) scripts/demo.py

# Test hosts by hand: make hosts-up [PREFIX=hs-dev COUNT=3]; inventory in build/testhosts/<PREFIX>/.
PREFIX ?= hs-dev
COUNT  ?= 3
hosts-up: venv image
	$(PY) tests/hosts/testhosts.py up --prefix $(PREFIX) --count $(COUNT)

hosts-down:
	python3 tests/hosts/testhosts.py down --prefix $(PREFIX)

# Not part of `make test`. run.py builds its own collection copy (build/bench-collections) and hosts;
# matplotlib lives in its own venv so the dev venv stays as requirements-dev.txt says.
BENCH_VENV := build/bench-venv
bench-zero-downtime: venv image $(BENCH_VENV)/.installed
	$(PY) benchmarks/zero_downtime/run.py $(BENCH_ARGS)

# Not part of `make test` either: deploy.yml against benchmarks/baseline on hsb-bench-* hosts (docs/benchmarks.md).
BENCH_HOSTS ?= 1 5 10 20
BENCH_REPS  ?= 3
bench: venv image $(BENCH_VENV)/.installed
	$(PY) benchmarks/deploy/run.py --hosts "$(BENCH_HOSTS)" --reps $(BENCH_REPS) $(BENCH_ARGS)

$(BENCH_VENV)/.installed: benchmarks/requirements.txt | build/.deps
	python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q -r benchmarks/requirements.txt
	@touch $@

# The HTML docs site: antsibull-docs and Sphinx (with myst-parser for the guides) in their own venv, which
# pins its own dependencies (docs/requirements.txt); build/docsite/html, no network (scripts/build-docs.sh).
.PHONY: docs docs-venv
DOCS_VENV := build/docs-venv
docs: collection docs-venv
	scripts/build-docs.sh

docs-venv: $(DOCS_VENV)/.installed
$(DOCS_VENV)/.installed: docs/requirements.txt | build/.deps
	python3 -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install -q --upgrade pip
	$(DOCS_VENV)/bin/pip install -q -r docs/requirements.txt
	@touch $@

clean:
	-python3 tests/hosts/testhosts.py down --all-mine
	rm -rf build
