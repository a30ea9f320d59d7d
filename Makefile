# emrun: every target installs what it needs into .venv from the pinned lock file.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKERS ?= 2
SWEEP := $(BIN)/emrun sweep --workers $(WORKERS)
# Each group of configs, swept in order (a failing sweep stops the target).
sweep_all = for config in $(1); do $(SWEEP) configs/$$config.yaml || exit 1; done
THEORY := theory_closed_forms theory_one_cluster_gap theory_gmm_rotation theory_gmm_rotation_population theory_gd_trap \
	theory_bmm_escape
DIGITS := digits_bmm lecture_kmeans_vs_em
GRADEM := gradem_figure1_rates gradem_figure1_weights gradem_figure2_gradnorm gradem_figure2_statrate
SIMPLEX := simplex_rates simplex_radius simplex_samples simplex_samples_uniform simplex_lloyd
PAPER := bmm_table1 bmm_table2 bmm_table3 gmm_figure2 gmm_figure2_population $(THEORY) $(GRADEM) $(SIMPLEX)
EXTENDED := bmm_table1_many_truths bmm_table2_many_truths bmm_table1_as_published bmm_table3_50_truths \
	bmm_table1_em_in_place bmm_table1_em_ecm bmm_gd_sensitivity $(DIGITS) lecture_segmentation digits_bmm_large \
	gradem_figure1_rates_many_truths gradem_figure1_rates_paper_mc gradem_figure2_statrate_50_runs \
	gradem_figure2_statrate_gradient simplex_samples_uniform_50_runs

.PHONY: install test time-test test-slow check-committed check-openblas bench-compare lint heavy-ball jin2016 segmentation table1 table2 table3 figure2 theory digits gradem simplex report paper extended bench clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -c "from emrun.models.bernoulli import KERNEL; KERNEL.prepare(print)"  # compile once, into ~/.cache/emrun
	$(BIN)/python -c "from emrun.models import gaussian_kernels; gaussian_kernels.prepare(print)"
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .

# The test suite on every core (pytest-xdist), the slow end-to-end checks excluded: make test-slow;
# CI runs both.
test: install lint
	$(BIN)/python -m pytest -n auto

# make test, timed (wall and CPU), into results/bench/make_test.json, which README's "Times" shows.
time-test: install
	$(PYTHON) .ci/time_tests.py

test-slow: install
	$(BIN)/python -m pytest -n auto -m slow

# A fresh clone of HEAD re-writes the committed Tables 1 and 3, Figure 2 and theory reports unchanged,
# apart from timings and provenance (listed in .ci/may_differ.txt): once as the machine is, then again
# from no rows with numpy limited to its baseline instruction set (as on an older x86-64 CPU). CI runs it.
CHEAP := table1 table3 figure2 theory
check-committed:
	$(PYTHON) .ci/check_committed.py --then-numpy-baseline $(CHEAP)

# By hand only (tests and CI must not change the OpenBLAS variables): the same check with the
# OpenBLAS kernels another machine chose (an AMD EPYC with AVX-512 runs Haswell's), which once
# changed a theory report's step count.
check-openblas:
	$(PYTHON) .ci/check_committed.py --env OPENBLAS_CORETYPE=Haswell --env OPENBLAS_L2_SIZE=512 $(CHEAP)

# Paper-protocol reproductions, one config each, followed by its report: UAI 2019 Tables 1 and 2,
# Tables 3 and 4 (one config: truths drawn until 10 have a GD k-cluster point per (m, D)), and
# Figure 2 (escape from a one-cluster region, two Gaussians, 20 truths, traces recorded).
table1: CONFIG := bmm_table1
table2: CONFIG := bmm_table2
table3: CONFIG := bmm_table3
table1 table2 table3: install
	$(SWEEP) configs/$(CONFIG).yaml
	$(BIN)/emrun report results/$(CONFIG)

# Figure 2 as the paper drew it (10,000 samples) and its theory judged on the population.
figure2: install
	$(SWEEP) configs/gmm_figure2.yaml
	$(SWEEP) configs/gmm_figure2_population.yaml
	$(BIN)/emrun report results/gmm_figure2 results/gmm_figure2_population

# The paper's theory checked numerically (closed forms, GD traps and EM escapes, Theorem 5.2's gap, eq. 4.7).
theory: install
	$(call sweep_all,$(THEORY))
	$(BIN)/emrun report

# Real data: Bernoulli mixtures on scikit-learn's binarised 8x8 digits (no download), and the
# lecture's k-means vs EM centres on two synthetic sets.
digits: install
	$(call sweep_all,$(DIGITS))
	$(BIN)/emrun report results/digits_bmm results/lecture_kmeans_vs_em

# The lecture's image segmentation: full-covariance Gaussian mixtures by EM against k-means on RGB pixels
# (two synthetic images with known regions, 10 seeds each; scikit-learn's china.jpg).
segmentation: install
	$(SWEEP) configs/lecture_segmentation.yaml
	$(BIN)/emrun report results/lecture_segmentation

# Paper B (gradient EM on over-parameterised GMMs): Figure 1 (rates; weights) and Figure 2
# (gradient norm at Theorem 7's initialisation; statistical rate of sample EM).
gradem: install
	$(call sweep_all,$(GRADEM))
	$(BIN)/emrun report $(addprefix results/,$(GRADEM))

# Paper C (EM with means on a simplex): ln KL linear vs sub-linear, initial radius, sample EM, Lloyd.
simplex: install
	$(call sweep_all,$(SIMPLEX))
	$(BIN)/emrun report $(addprefix results/,$(SIMPLEX))

# A plug-in example (examples/heavy_ball/): projected heavy-ball GD against GD and EM on Table 1's
# protocol, with claims fixed in the config before the sweep. Its report
# runs the plug-in kept in results/heavy_ball/plugins/: a report runs a folder's code only when asked.
heavy-ball: install
	$(SWEEP) examples/heavy_ball/heavy_ball.yaml
	$(BIN)/emrun report --run-plugins results/heavy_ball

# Another plug-in example (examples/jin2016/): Jin et al. (NeurIPS 2016), EM from centres drawn
# from the mixture on equally weighted, separated Gaussians, 10 truths x 20 runs per M = 3..8; its
# truths come from the config's truth options, its init reads the batch's truth, its claims are in a
# file of their own (claim_plugins) that uses emrun.stats.
jin2016: install
	$(SWEEP) examples/jin2016/jin2016.yaml
	$(BIN)/emrun report --run-plugins results/jin2016

report: install
	$(BIN)/emrun report

# Every paper-protocol reproduction (UAI 2019 Tables 1-4, Figure 2 and theory; papers B and C), then the reports.
paper: install
	$(call sweep_all,$(PAPER))
	$(BIN)/emrun report

# Longer studies beyond the paper's protocol: 20 random truths per cell (Tables 1-2), 50 kept truths
# (Tables 3-4), the authors' GD boundary term and in-place EM, GD's step size and iteration cap, digits,
# the lecture's image segmentation;
# paper B with 10 Dirichlet draws, with the paper's 350,000-sample Monte Carlo, and 50 runs per N.
extended: paper
	$(call sweep_all,$(EXTENDED))
	$(SWEEP) examples/heavy_ball/heavy_ball.yaml
	$(SWEEP) examples/jin2016/jin2016.yaml
	$(BIN)/emrun report
	$(BIN)/emrun report --run-plugins results/heavy_ball results/jin2016

# The engine against its own numpy loop, the plain implementation and a matmul, three cells, one core,
# each timing repeated 3 times; cold and warm sweeps; a worker's peak memory.
bench: install
	$(BIN)/python -m emrun.bench --out results/bench/bench.json

# This checkout against an earlier commit (BASE=<commit>, a worktree beside this one), same machine and
# session, interleaved, median of 3: Table 1 sweep, the batch tail at (6, 10), papers B and C's
# dynamics; with WITH_PAPER=1 also make paper's wall time once per tree. Writes results/bench/compare.json
# (OUT=<file>: elsewhere, e.g. one file per base).
bench-compare: install
	$(BIN)/python -m emrun.bench_compare $(BASE) $(if $(WITH_PAPER),--paper,) $(if $(OUT),--out $(OUT),)

# Removes trial rows (regenerated by the sweeps); reports, figures and manifests stay.
clean:
	rm -rf results/*/batches results/*/traces results/*/set_aside .pytest_cache .ruff_cache .hypothesis
