#!/usr/bin/env bash
# GPU check on one H200 (issues 7 and 14): every GPU-side feature on the paper's model shapes.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results also go to $OUT if set
#   GPU_CHECK_MODE=cpu bash benchmarks/gpu_check.sh   # the small CPU mode (tests/test_benchmarks.py)
#   python benchmarks/record.py --from "$OUT/gpu_check.txt" --title "GPU check" --command "bash benchmarks/gpu_check.sh"
#
# What it runs, each figure beside the authors' procedure:
#   slots       one card per job (memcap.stages.gpu_slots): G + 1 jobs on G cards (benchmarks/slots.py)
#   memory      peak step memory at 1024 tokens, whole logits against chunked cross-entropy, and
#               the largest batch in the card's memory (benchmarks/memory.py, Llama-3.2-1B shape)
#   cast        weights cast once (compress.cast_weights) against autocast's cast each forward
#               (benchmarks/cast.py): step time and loss agreement
#   capacity    the capacity search against the authors' grid (benchmarks/capacity.py)
#   shape-*     optimiser-step throughput of the paper's shapes (benchmarks/steps.py)
#   profile-*   where memcap's step spends its time: top operators, launches per step, device busy
#
# Needs torch with CUDA and the project's libraries, gensim included (the shape models' offline
# tokenizer is trained on its Lee corpus); a preflight check names anything missing before a
# step runs. GPU_CHECK_ONLY="memory-llama-3.2-1b capacity-pythia-160m" runs only the steps named
# (a lease rarely fits all of them: on one H200, 2026-12-04, building each random-weight model
# on the CPU took most of a step's limit; docs/benchmarks.md). No internet (shape-* models are random
# weights built in code). memcap comes from this checkout via PYTHONPATH (or an installed
# `pip install --no-deps -e .`). Without CUDA (or with GPU_CHECK_MODE=cpu) it runs every step
# on tiny models on the CPU instead, so CI keeps the script working until a GPU runs it. Every
# step runs under `timeout` and the whole script keeps to a deadline (default 450 s, under 8
# minutes): a step that would overrun is cut short, reported as such, and the next one still
# runs; a step skipped for lack of time says so.
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
MODE=${GPU_CHECK_MODE:-}
ONLY=${GPU_CHECK_ONLY:-}
if [ -z "$MODE" ]; then
    if "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
        MODE=gpu
    else
        MODE=cpu
    fi
fi
FAILED=0

say() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_S SCRIPT ARGS...: benchmarks/SCRIPT under min(LIMIT_S, time left to the deadline)
step() {
    local name=$1 limit=$2 script=$3
    shift 3
    if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then
        return
    fi
    local left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 20 ]; then
        say "== $name: skipped, ${left}s left before the ${DEADLINE}s deadline"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    say "== $name (limit ${limit}s): python benchmarks/$script $*"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$PYTHON" "benchmarks/$script" "$@" 2>&1 | grep -v -e 'it/s]' -e 's/it]' -e '^\[transformers\]' | tee -a "$LOG"
    local rc=${PIPESTATUS[0]}
    case $rc in
        0) say "-- $name: done in $((SECONDS - t0))s" ;;
        124 | 137) say "-- $name: TIMED OUT after ${limit}s" ;;
        *) say "-- $name: FAILED (exit $rc)"; FAILED=$((FAILED + 1)) ;;
    esac
}

say "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname), mode $MODE, deadline ${DEADLINE}s"
say "git $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (uncommitted changes)')"
if [ "$MODE" = gpu ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
fi
"$PYTHON" -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "| transformers", transformers.__version__)' 2>&1 | tee -a "$LOG"

# preflight: a missing library would fail every step, each after a model load's worth of lease
if ! "$PYTHON" -c 'import memcap.core.engine, memcap.stages.job, pandas, jsonschema; from memcap.corpora import lee_corpus_path; lee_corpus_path()' >>"$LOG" 2>&1; then
    say "preflight failed: memcap or a library it needs (pandas, jsonschema, gensim for the Lee corpus) is missing"
    "$PYTHON" -c 'import memcap.core.engine, memcap.stages.job, pandas, jsonschema; from memcap.corpora import lee_corpus_path; lee_corpus_path()' 2>&1 | tail -1
    exit 2
fi

if [ "$MODE" = gpu ]; then
    COMMON=(--length 80 --texts 50 --steps 20 --device cuda)
    step slots 30 slots.py
    step memory-llama-3.2-1b 70 memory.py --model shape-llama-3.2-1b --length 1024 --device cuda --budget-gib 140
    step cast-llama-3.2-1b 90 cast.py --model shape-llama-3.2-1b --length 256 --texts 16 --steps 10 --device cuda
    step capacity-pythia-160m 100 capacity.py --model shape-pythia-160m --lr 0.1 --lengths 8 16 32 64 --texts 3 \
        --max-steps 200 --patience 100 --device cuda
    step shape-pythia-160m 150 steps.py --model shape-pythia-160m "${COMMON[@]}"
    # where memcap's step spends its time (it reached 0.5 % of the H200's bf16 peak, 2026-12-04)
    step profile-pythia-160m 90 steps.py --model shape-pythia-160m "${COMMON[@]}" --skip-authors --profile 10
    step shape-llama-3.2-1b 40 steps.py --model shape-llama-3.2-1b "${COMMON[@]}" --skip-authors
    step shape-llama-3.2-1b-compiled 60 steps.py --model shape-llama-3.2-1b "${COMMON[@]}" --skip-authors --compile
    step shape-llama-3.2-3b 50 steps.py --model shape-llama-3.2-3b "${COMMON[@]}" --skip-authors
    step shape-llama-3.1-8b 90 steps.py --model shape-llama-3.1-8b "${COMMON[@]}" --skip-authors
    step shape-pythia-1.4b 40 steps.py --model shape-pythia-1.4b "${COMMON[@]}" --skip-authors
else
    # the same steps on tiny models, one thread: checks the script and the benchmarks' output, not speed
    step slots 30 slots.py --simulate 2 --hold 6 --wait 1
    step memory-tiny-llama-128k 60 memory.py --model tiny-llama-128k --length 64 --logits-mib 8 --budget-gib 8 \
        --threads 1
    step cast-tiny-llama-128k 60 cast.py --model tiny-llama-128k --length 16 --texts 2 --steps 2 --threads 1
    step capacity-tiny-llama 90 capacity.py --model tiny-llama --lr 0.1 --lengths 2 4 8 --texts 2 --max-steps 30 \
        --patience 30 --threads 1
    step shape-tiny-llama 60 steps.py --model tiny-llama --length 24 --texts 2 --steps 3 --device cpu --threads 1
    step profile-tiny-llama 60 steps.py --model tiny-llama --length 24 --texts 2 --steps 3 --device cpu --threads 1 \
        --skip-authors --profile 2
fi
say "gpu_check finished in ${SECONDS}s, mode $MODE, $FAILED step(s) failed"
[ "$FAILED" -eq 0 ]
