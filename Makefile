# The two commands of the README: `make demo` (main job on a small default) and `make test`.
# Both run the idempotent set-up first (virtualenv + torch 2.11.0 + pretrained weights).
.PHONY: setup build demo test lint
CARGO ?= cargo

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release

demo: build
	./fpgan demo

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --all-targets -- -D warnings

test: lint
	$(CARGO) test --release
