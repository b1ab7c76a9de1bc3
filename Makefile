# Setup is part of every target: a fresh machine needs only `make quickstart` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data quickstart test test-fast lint dashboard device-profiles clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: an unpinned torch drags in several GB of CUDA wheels
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,tflite,postgres]'
	touch $(STAMP)

setup: $(STAMP)

# Fashion-MNIST from Debian's dataset-fashion-mnist when apt can install it; otherwise hwnas
# downloads the official files (MD5-checked) on first use, as searches/quickstart.yaml allows.
data:
	@if [ -d $(FASHION_MNIST) ]; then echo "Fashion-MNIST: $(FASHION_MNIST)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) \
	    || echo "apt could not install dataset-fashion-mnist; hwnas will download Fashion-MNIST"; \
	else echo "no apt as root: hwnas will download Fashion-MNIST on first use"; fi

quickstart: setup data
	$(BIN)/hwnas search quickstart

# the layer contract and the type checker first: both fail fast and name the offending line
# one test process per core (pytest-xdist), idle ones stealing queued tests; the slowest listed at the end
PYTEST := $(BIN)/python -m pytest -q -n auto --dist worksteal --durations=15
test: setup
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

lint: setup
	$(BIN)/lint-imports
	$(BIN)/mypy

# Refit the device profiles to the published whole-network latencies (each run writes a new
# version of each file); the mapped rows come from benchmarks/device_latency.py.
NETWORKS := benchmarks/results/device_calibration_networks.csv
CALIBRATE := $(BIN)/hwnas profile calibrate
device-profiles: setup
	$(CALIBRATE) edgetpu --networks $(NETWORKS) --precision int8
	$(CALIBRATE) edgetpu-devboard --networks $(NETWORKS) --precision int8
	$(CALIBRATE) zynq-zcu102-dpu --networks $(NETWORKS) --precision int8
	$(CALIBRATE) jetson-nano --networks $(NETWORKS) --precision fp16
	$(CALIBRATE) jetson-nano --networks $(NETWORKS) --precision fp32 --runtime tensorrt-kentaroy47 \
	  --scale-from fp16 --scale-from-runtime tensorrt-fp16
	$(CALIBRATE) raspberry-pi4 --networks $(NETWORKS) --precision fp32
	$(CALIBRATE) raspberry-pi4 --networks $(NETWORKS) --precision int8 --scale-from fp32

dashboard: setup
	$(BIN)/hwnas dashboard runs/quickstart

clean:
	rm -rf runs .pytest_cache
