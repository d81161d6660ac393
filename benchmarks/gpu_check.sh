#!/usr/bin/env bash
# GPU check on one H200 (issue 7, item 6): optimiser-step throughput of the paper's shapes.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results also go to $OUT if set
#   python benchmarks/record.py --from "$OUT/gpu_check.txt" --title "GPU check" --command "bash benchmarks/gpu_check.sh"
#
# Needs torch with CUDA and the project's libraries; no internet (shape-* models are random
# weights built in code). memcap comes from this checkout via PYTHONPATH (or an installed
# `pip install --no-deps -e .`). Every step runs under `timeout` and the whole script keeps
# to a deadline (default 450 s, under 8 minutes): a step that would overrun is cut short,
# reported as such, and the next one still runs.
set -u -o pipefail

cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
PYTHON=${PYTHON:-python}
DEADLINE=${DEADLINE:-450}
RESULTS=${OUT:-}
if [ -n "$RESULTS" ]; then
    mkdir -p "$RESULTS"
    LOG="$RESULTS/gpu_check.txt"
else
    LOG=/dev/null
fi

say() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_S ARGS...: benchmarks/steps.py under min(LIMIT_S, time left to the deadline)
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 20 ]; then
        say "== $name: skipped, ${left}s left before the ${DEADLINE}s deadline"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "== $name (limit ${limit}s): python benchmarks/steps.py $*"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$PYTHON" benchmarks/steps.py "$@" 2>&1 | grep -v -e 'it/s]' -e 's/it]' | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    case $rc in
        0) say "-- $name: done in $((SECONDS - t0))s" ;;
        124 | 137) say "-- $name: TIMED OUT after ${limit}s" ;;
        *) say "-- $name: FAILED (exit $rc)" ;;
    esac
}

say "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
say "git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
"$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "| transformers", transformers.__version__)' 2>&1 | tee -a "$LOG"

COMMON=(--length 80 --texts 50 --steps 20 --device cuda)
step shape-pythia-160m 120 --model shape-pythia-160m "${COMMON[@]}"
step shape-pythia-1.4b 60 --model shape-pythia-1.4b "${COMMON[@]}" --skip-authors
step shape-llama-3.2-1b 60 --model shape-llama-3.2-1b "${COMMON[@]}" --skip-authors
step shape-llama-3.2-1b-compiled 90 --model shape-llama-3.2-1b "${COMMON[@]}" --skip-authors --compile
step shape-llama-3.2-3b 80 --model shape-llama-3.2-3b "${COMMON[@]}" --skip-authors
step shape-llama-3.1-8b 180 --model shape-llama-3.1-8b "${COMMON[@]}" --skip-authors
say "gpu_check finished in ${SECONDS}s"
