# edgecnn: the user's entry points. `make test` and `make demo` set up .venv themselves.
PYTHON   ?= $(shell command -v python3.11 || command -v python3)
VENV     := .venv
BIN      := $(VENV)/bin
EDGECNN  := $(BIN)/edgecnn
STAMP    := $(VENV)/.installed
PIPELINE ?= pipelines/demo.yaml
DEVICE   ?= rpi5
VARIANT  := $(if $(FAST),variant=fast,)
# MODEL=… and PRECISION=… narrow the export stages; extra key=value overrides go in ARGS.
OVERRIDES := $(VARIANT) $(if $(MODEL),train.model=$(MODEL),) $(if $(PRECISION),tflite.precision=$(PRECISION),) $(ARGS)

.PHONY: install lint test test-all demo train prune qat export-onnx export-tflite val bench track bundle deploy bench-device check-device clean

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements/constraints.txt -e '.[train,device,dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not heavy"

# The whole suite, the heavy tier included (CI runs it).
test-all: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(EDGECNN) pipeline $(PIPELINE) $(OVERRIDES)

train prune qat val bench track: $(STAMP)
	$(EDGECNN) pipeline $(PIPELINE) --to $@ $(OVERRIDES)

export-onnx: $(STAMP)
	$(EDGECNN) pipeline $(PIPELINE) --to onnx $(OVERRIDES)

export-tflite: $(STAMP)
	$(EDGECNN) pipeline $(PIPELINE) --to tflite $(OVERRIDES)

bundle: $(STAMP)
	$(EDGECNN) pipeline $(PIPELINE) --to bundle vars.device=$(DEVICE) $(OVERRIDES)

deploy: bundle
	$(EDGECNN) deploy device=$(DEVICE) host=$(HOST) $(if $(SERVICE),service=true,) $(if $(DRY_RUN),dry_run=true,)

# The bundle in an emulated arm64 Debian bookworm root (root, qemu-user-static, debootstrap; HOST=user@pi: a real
# device) against this host: mAP, output agreement, FPS. Defaults: the demo's bundle, val data and test video.
DATA  ?= runs/demo/data/data.yaml
VIDEO ?= $(firstword $(wildcard runs/demo/videos/test/*/*.mp4))
check-device: $(STAMP)
	$(EDGECNN) check-device device=$(DEVICE) data=$(DATA) $(if $(BUNDLE),bundle=$(BUNDLE),) \
	  $(if $(VIDEO),video=$(VIDEO),) $(if $(HOST),host=$(HOST),) $(ARGS)

bench-device:
	$(BIN)/python -m edgecnn.runtime.bench $(ARGS)

clean:
	rm -rf runs dist
