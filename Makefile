# sea-tf: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_OUT ?= demo_out
# Extra `sea-tf demo` arguments, e.g. DEMO_ARGS="--config demo/ci" (the small run .ci/run makes).
DEMO_ARGS ?=
# Extra pytest arguments for `make test`, e.g. PYTEST_ARGS='-m cluster --durations=10' (as .ci/run runs it).
PYTEST_ARGS ?=

.PHONY: demo test test-fast install clean test-arm64 sshd audio slurm strace chromium

$(STAMP): requirements.txt setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sea-tf demo --out $(DEMO_OUT) $(DEMO_ARGS)

test: $(STAMP) sshd audio slurm strace chromium
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The edit loop: the whole suite but the `cluster` tests (multi-worker training, the SLURM cluster, the scale
# rehearsal: a few minutes of their own). `make test` runs everything.
test-fast: $(STAMP) sshd audio strace chromium
	$(BIN)/python -m pytest -q -m "not cluster" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache

# The SSH tests (tests/test_remote*.py) start a real OpenSSH server on 127.0.0.1; install it from
# the distribution's packages when absent (they skip with the reason if this is impossible).
sshd:
	@command -v sshd >/dev/null || test -x /usr/sbin/sshd || { \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	   openssh-server) >/dev/null 2>&1 || echo "openssh-server could not be installed: the SSH tests will skip"; }

# The SLURM tests (tests/test_slurm*.py, the multi-worker run) start a real one-node cluster with
# scripts/slurm/start.sh (munge + slurmctld + slurmd, private config); install the distribution's
# packages when absent (the tests skip with the reason if this is impossible).
slurm:
	@{ command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v munged >/dev/null; } || { \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	   slurm-wlm munge) >/dev/null 2>&1 || echo "slurm-wlm/munge could not be installed: the SLURM tests will skip"; }

# The crash-safety tests (tests/test_atomic_fsync.py) check the order of fsync and rename system calls
# under strace; install it when absent (they skip with the reason if this is impossible).
strace:
	@command -v strace >/dev/null || { \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	   strace) >/dev/null 2>&1 || echo "strace could not be installed: the fsync-order tests will skip"; }

# The browser-report tests (tests/test_report_html.py) open report.html in a real headless Chromium;
# install the distribution's when absent (they skip with the reason if this is impossible).
chromium:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || { \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	   chromium) >/dev/null 2>&1 || echo "chromium could not be installed: the browser-report tests will skip"; }

# The real-audio test (tests/test_listen_pulse.py) starts a PulseAudio server with a null sink and
# records it through PortAudio (sounddevice); install them from the distribution's packages when
# absent (the test skips with the reason if this is impossible).
audio: $(STAMP)
	@{ command -v pulseaudio >/dev/null && command -v paplay >/dev/null && \
	   ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 && test -e /usr/share/alsa/alsa.conf.d/50-pulseaudio.conf; } || { \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	   pulseaudio pulseaudio-utils libasound2-plugins libportaudio2) >/dev/null 2>&1 || \
	   echo "pulseaudio/libportaudio2 could not be installed: the real-audio test will skip"; }
	@$(BIN)/python -c "import sounddevice" 2>/dev/null || $(BIN)/pip install -q "$$(grep -E '^sounddevice==' requirements-device.txt)"

# The board side (device/) on emulated aarch64 (Debian 12 arm64 Python + Debian 13 qemu-user);
# downloads are cached in .cache/arm64/. See scripts/arm64/run.sh.
test-arm64: $(STAMP)
	scripts/arm64/run.sh
