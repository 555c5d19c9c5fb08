# The two commands a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use: the CPU build of torch first (a plain `torch`
# would pull a multi-GB CUDA build), then gliotype with its dev extras at the versions of
# constraints.txt (those the tests and docs/results.md ran with).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gliotype-installed
DEMO   ?= demo
DEMO_PATIENTS ?= 200
DEMO_SEED ?= 0

.PHONY: demo ablations test install clean-demo bench mutation check-reports

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# `gliotype run` validates the manifest itself (run/validation.csv): no separate `cohort validate`.
# --overwrite: a demo/ cohort made with other arguments or by another generator version is replaced.
demo: $(STAMP)
	$(BIN)/gliotype synth --overwrite --out $(DEMO)/cohort --patients $(DEMO_PATIENTS) --seed $(DEMO_SEED)
	$(BIN)/gliotype cohort scan $(DEMO)/cohort --labels $(DEMO)/cohort/labels.csv --out $(DEMO)/manifest.csv
	$(BIN)/gliotype run --manifest $(DEMO)/manifest.csv --data $(DEMO)/cohort --out $(DEMO)/run --preset cpu --no-ablations

# Table 4 on the demo run: the same command with the ablations; every stage `make demo`
# computed is reused, only the eleven ablation encoders are trained (about 8 minutes).
ablations: demo
	$(BIN)/gliotype run --manifest $(DEMO)/manifest.csv --data $(DEMO)/cohort --out $(DEMO)/run --preset cpu

# Every benchmarks/bench_*.py; writes benchmarks/results.md with each figure, the machine and the
# date (commit it: a regression shows in its diff). Tens of minutes; not part of `make test`.
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py --out benchmarks/results.md

# Mutation testing of the modules where a wrong number is silent (losses, population
# graph, metrics and threshold, splits, normalisation, point cloud): scores per module
# and the surviving mutants in mutation.md. Minutes to an hour; not part of `make test`.
mutation: $(STAMP)
	$(BIN)/python -m pip install -q mutmut==3.8.1
	$(BIN)/python tools/mutation.py --out mutation.md

# The two HTML reports as a person sees them: the demo run's report.html and the report of a
# `gliotype predict` of one demo patient (into $(DEMO)/predict-check), rendered by headless Chromium
# at 1366x768 and 1280x800 into full-page PNGs ($(DEMO)/report-check). Fails, one line per problem,
# on a JavaScript error, an image that did not load, a network request, a page wider than the
# screen or a figure without a caption. Needs chromium (apt-get install chromium chromium-driver);
# runs `make demo` first when there is no demo run. Not part of `make test`.
check-reports: $(STAMP)
	test -f $(DEMO)/run/results/report.html || $(MAKE) demo
	$(BIN)/gliotype predict --model $(DEMO)/run/model --case "$$(ls -d $(DEMO)/cohort/*/ | head -n 1)" \
		--out $(DEMO)/predict-check
	$(BIN)/python tools/check_reports.py --out $(DEMO)/report-check \
		$(DEMO)/run/results/report.html $(DEMO)/predict-check/report.html

clean-demo:
	rm -rf $(DEMO)
