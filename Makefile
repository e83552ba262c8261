# dnh developer entry points. `make demo` and `make test` each work alone on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= runs/demo

.PHONY: setup system demo test lint clean

setup: $(VENV)/.installed

# torch first, pinned: a looser requirement with no torch installed pulls the newest
# CUDA build (several GB); constraints.txt keeps medmnist's torchvision from upgrading it.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -c "from dnhcli.index import chunks, ranking, search; search.warm_up(); ranking.warm_up(); chunks.warm_up()"  # numba, once
	touch $@

# Debian's Chromium (the browser test of `dnh serve`'s page), PostgreSQL 15 (the tests of the
# PostgreSQL store, which start their own servers) and Orthanc with its DICOMweb plugin (the PACS
# sources' tests and the demo's PACS step): installed with apt-get where missing when run
# as root (as CI is); elsewhere their tests, and the demo's PostgreSQL step, skip.
system:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql-15"; \
	command -v Orthanc >/dev/null 2>&1 || [ -x /usr/sbin/Orthanc ] || missing="$$missing orthanc"; \
	[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing="$$missing orthanc-dicomweb"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not installed:$$missing (their tests will be skipped)"; fi; fi

## The main job: the whole pipeline landed so far, offline, on the embedded synthetic set.
demo: setup system
	$(BIN)/dnh prepare-data --synthetic --out $(DEMO)/data --force
	$(BIN)/dnh train --data $(DEMO)/data --out $(DEMO)/model --threads 2 --force
	rm -rf $(DEMO)/hashdb
	$(BIN)/dnh hash --model $(DEMO)/model/best.pt --db $(DEMO)/hashdb --data $(DEMO)/data --split gallery
	# three queries: a copy of stored gallery image 0 re-saved as JPEG (quality 75), then two new images
	$(BIN)/python -c "import io, numpy as np; from PIL import Image; g = np.load('$(DEMO)/data/gallery_images.npy'); \
		out = io.BytesIO(); Image.fromarray(g[0]).save(out, 'JPEG', quality=75); \
		twin = np.asarray(Image.open(out)); \
		np.save('$(DEMO)/query.npy', np.concatenate([twin[None], np.load('$(DEMO)/data/query_images.npy')[:2]]))"
	$(BIN)/dnh search $(DEMO)/query.npy --model $(DEMO)/model/best.pt --db $(DEMO)/hashdb -k 5 --montage $(DEMO)/montage.png
	$(BIN)/dnh search $(DEMO)/query.npy --db $(DEMO)/hashdb -k 1 --json | $(BIN)/python -c "import json, sys; \
		hit = json.load(sys.stdin)['queries'][0]['results'][0]; \
		print(f'near-twin search: stored item {hit[\"id\"]} first (score {hit[\"score\"]:.3f}, distance {hit[\"distance\"]})'); \
		sys.exit(hit['id'] != 0)"
	$(BIN)/dnh evaluate --model $(DEMO)/model/best.pt --data $(DEMO)/data --db $(DEMO)/hashdb \
		--plot $(DEMO)/eval.png --dump $(DEMO)/eval-dump --force
	$(BIN)/dnh export --model $(DEMO)/model/best.pt --out $(DEMO)/export --data $(DEMO)/data --force
	$(BIN)/dnh search $(DEMO)/query.npy --model $(DEMO)/export/encoder.xml --db $(DEMO)/hashdb -k 5
	$(BIN)/dnh benchmark --model $(DEMO)/export/encoder.xml --data $(DEMO)/data --batch 1,1024 \
		--threads 1,2 --seconds 0.6 --engines openvino,pytorch,onnxruntime --e2e-queries 300
	$(BIN)/python examples/make_scans.py --data $(DEMO)/data --out $(DEMO)/scans
	$(BIN)/dnh prepare-data --images $(DEMO)/scans --out $(DEMO)/scans-data --force   # one's own images
	rm -rf $(DEMO)/scans-db
	$(BIN)/dnh hash --model $(DEMO)/model/best.pt --db $(DEMO)/scans-db $(DEMO)/scans
	$(BIN)/dnh hash --model $(DEMO)/model/best.pt --db $(DEMO)/scans-db $(DEMO)/scans   # skips all
	$(BIN)/dnh search $(DEMO)/scans/scan-000.png --db $(DEMO)/scans-db -k 3   # the stored encoder
	$(BIN)/dnh db delete $(DEMO)/scans-db --source $(DEMO)/scans/scan-003.dcm
	$(BIN)/dnh db compact $(DEMO)/scans-db
	$(BIN)/dnh db info $(DEMO)/scans-db
	$(BIN)/python examples/query_service.py --db $(DEMO)/hashdb $(DEMO)/scans/scan-000.png \
		$(DEMO)/scans/scan-003.dcm -k 5   # `dnh serve` on loopback, queried over HTTP
	$(BIN)/python examples/postgres_demo.py --db $(DEMO)/hashdb $(DEMO)/scans/scan-000.png \
		$(DEMO)/scans/scan-003.dcm -k 5   # the same database in PostgreSQL, one server and 3 shards
	$(BIN)/python examples/make_scans.py --data $(DEMO)/data --out $(DEMO)/pacs-scans --count 40
	$(BIN)/python examples/pacs_ingest.py --model $(DEMO)/export/encoder.onnx $(DEMO)/pacs-scans  # Orthanc -> Ray
	$(BIN)/dnh train --data $(DEMO)/data --out $(DEMO)/model-reference --preset reference --epochs 30 \
		--threads 2 --force
	$(BIN)/dnh evaluate --model $(DEMO)/model-reference/best.pt --data $(DEMO)/data -k 10,100

test: setup system
	$(BIN)/ruff check dnhcli tests
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check dnhcli tests
	$(BIN)/mypy dnhcli

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
