# il_ros: two commands for a newcomer.
#   make demo   set up .venv and run the main job
#   make test   set up .venv and run the test suite
# Setup is re-done only when requirements.txt or setup.py change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.il_ros-installed
# Debian packages MuJoCo needs to render offscreen through EGL (Mesa's software renderer).
APT_PKGS := libegl1 libegl-mesa0 libgl1-mesa-dri libgles2

# The headless GL backend (MUJOCO_GL) is chosen in one place, il_ros/render.py.
export RMW_IMPLEMENTATION ?= rmw_fastrtps_cpp
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST

.PHONY: setup test demo bench clean sysdeps

setup: $(STAMP)

sysdeps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): requirements.txt setup.py
	@$(MAKE) --no-print-directory sysdeps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Test workers (pytest-xdist): one per core, at most 4; TEST_WORKERS=0 runs in this process.
# --dist loadgroup keeps the real-time graph tests and the CPU-bound ones (test/conftest.py
# REALTIME, CPU_BOUND) on one worker, one at a time.
TEST_WORKERS ?= auto

test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadgroup test

demo: $(STAMP)
	$(VENV)/bin/il-ros demo --out runs/demo

bench: $(STAMP)
	$(PY) bench/record.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
