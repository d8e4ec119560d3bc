# Two commands for students and maintainers: `make lab` and `make test`.
# Both run `make setup` first, which is idempotent: it only reinstalls when
# requirements.txt or pyproject.toml changed since the last run. Students get the course
# (requirements.txt); `make test`, `make test-fast` and `make lint` add the maintainers' tools
# (requirements-dev.txt: pytest, ruff, playwright, dask).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.setup-done
DEV_STAMP := $(VENV)/.dev-done
KERNEL := cnn-course
# nbgrader calls `alembic` by name: the venv's bin folder must come first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)
# OpenMP threads that spin while waiting make torch many times slower when two notebooks
# share the cores (tests, parallel grading): let waiting threads sleep instead.
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup dev system-deps lab test test-fast lint bench bench-grading student-notebooks formgrader grade-demo grade report clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) \
		--display-name "Python 3 (CNN course)" --env OMP_WAIT_POLICY PASSIVE >/dev/null
	@touch $(STAMP)
	@echo "Setup done: $(VENV) with torch, JupyterLab, nbgrader and course_utils; kernel '$(KERNEL)'."

lab: setup
	$(BIN)/python -m course_utils.lab

# The maintainers' tools, on top of the course.
dev: setup $(DEV_STAMP)

$(DEV_STAMP): requirements-dev.txt $(STAMP)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(DEV_STAMP)

# Every tier (tests/conftest.py: unit, notebooks, grading, ui). CI runs this (.ci/run).
# Two pytest processes, one test file each at a time: the suite alone keeps about one core
# busy (it waits on kernels, nbgrader and servers), so on 2 cores this halves its time
# (14 min -> 7 min 20 s-8 min 12 s; each process gets one torch thread, tests/conftest.py).
# More processes than cores only add contention (3 processes: 7 min 40 s).
TEST_PROCESSES ?= 2
test: setup dev system-deps
	$(BIN)/python -m pytest tests -n $(TEST_PROCESSES) --dist loadfile

# The unit tier only: no lesson notebooks, nbgrader runs, servers or browser (about 45 s;
# in one process: two would each import torch and collect the suite, 90 s).
test-fast: setup dev
	$(BIN)/python -m pytest tests -m unit

# Debian packages the test suite uses: bubblewrap (grading sandbox) and Chromium (the browser
# test drives it through playwright; no WebDriver). Installed when missing and we may (root);
# otherwise the tests that need them say why they are skipped.
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian packages:$$missing"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) \
				|| echo "WARNING: could not install$$missing; tests that need them will be skipped"; \
		else \
			echo "NOTE: missing$$missing (install with: sudo apt-get install$$missing);" \
			     "tests that need them will be skipped"; \
		fi; \
	fi

lint: setup dev
	$(BIN)/ruff check .

# Benchmarks (benchmarks/README.md): FLOP counts against torchvision's, training speed of
# fit() against the textbook loop, run time of every notebook and check against its budget.
bench: setup
	$(BIN)/python -m benchmarks.flops
	$(BIN)/python -m benchmarks.train_speed
	$(BIN)/python -m benchmarks.notebooks

# Autograding speed (README, "For maintainers"): needs bubblewrap like `make grade`.
bench-grading: setup system-deps
	$(BIN)/python -m benchmarks.grading --students 20

# Regenerate the student copies in notebooks/ from the instructor sources in solutions/.
student-notebooks: setup
	$(BIN)/nbgrader generate_assignment "*" --force --log-level=WARN \
		--CourseDirectory.db_url=sqlite:///$$(mktemp -d)/gradebook.db

# Autograding and manual grading (see README, "For instructors").
formgrader: setup
	$(BIN)/python -m course_utils.lab --instructor

grade-demo: setup system-deps
	$(BIN)/python -m course_utils.grading demo --out grade-demo

grade: setup system-deps
	$(BIN)/python -m course_utils.grading grade .

# The class report (reports/index.html) and the LMS exports (exports/canvas.csv, moodle.csv),
# from the gradebook and the autograded notebooks; REPORT_COURSE=grade-demo for the demo class.
REPORT_COURSE ?= .
report: setup
	$(BIN)/python -m course_utils.grading report $(REPORT_COURSE)
	$(BIN)/python -m course_utils.grading export $(REPORT_COURSE)

clean:
	rm -rf $(VENV) gradebook.db .pytest_cache grade-demo
