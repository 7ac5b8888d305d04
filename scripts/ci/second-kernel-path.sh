#!/usr/bin/env bash
# Runs the numerics-sensitive tests a second time on another CPU kernel path, so that a tolerance
# fitted to one instruction set fails here first instead of on a user's machine (issue #12).
#
#   TF_ENABLE_ONEDNN_OPTS=0   TensorFlow's Eigen kernels in place of oneDNN's
#   ONEDNN_MAX_CPU_ISA=AVX2   no AVX-512 in oneDNN (Eigen's matrix products call oneDNN too)
#
# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI/BF16 or AMX; on
# the others (AVX2-only x86, most ARM) that pair is already the default path, so the second run
# switches oneDNN on instead. SECOND_PATH_ISA=SSE41 (say) picks an older instruction set still.
# Extra arguments go to pytest. Exits with pytest's status and prints the run's duration.
set -euo pipefail
cd "$(dirname "$0")/../.."

TESTS=(tests/test_frontends.py tests/test_models.py tests/test_models_h5.py
       tests/test_distill.py tests/test_distill_pruning.py tests/test_distill_resume.py tests/test_distill_strategy.py
       tests/test_export.py tests/test_export_int8.py tests/test_classify.py tests/test_classify_cli.py
       tests/test_embed.py tests/test_teacher_embed.py tests/test_hear.py)

default_onednn=$(env -u TF_ENABLE_ONEDNN_OPTS -u ONEDNN_MAX_CPU_ISA TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python -c \
  'from tensorflow.python.util import _pywrap_util_port as port; print(int(port.IsMklEnabled()))' 2>/dev/null | tail -n 1)
if [[ "$default_onednn" == 1 ]]; then opts=0; else opts=1; fi
export TF_ENABLE_ONEDNN_OPTS="$opts" ONEDNN_MAX_CPU_ISA="${SECOND_PATH_ISA:-AVX2}"
path="TF_ENABLE_ONEDNN_OPTS=$TF_ENABLE_ONEDNN_OPTS ONEDNN_MAX_CPU_ISA=$ONEDNN_MAX_CPU_ISA (default path: oneDNN ${default_onednn:-?})"
echo "second kernel path: $path"

start=$SECONDS
status=0
.venv/bin/python -m pytest -q -p no:randomly "${TESTS[@]}" "$@" || status=$?
echo "second kernel path: $path: $(( SECONDS - start )) s, pytest exit status $status"
exit "$status"
