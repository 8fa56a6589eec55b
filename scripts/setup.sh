#!/usr/bin/env bash
# Create .venv (once) with torch pinned first, then this package with its test and Hugging Face extras.
# Idempotent: a second call only re-installs the package itself. Source it: `source scripts/setup.sh`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ELECTRA_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  # torch first and pinned, so that nothing later can resolve it to a CUDA build
  "$venv/bin/pip" install -q -c "$root/constraints.txt" torch==2.13.0
fi
"$venv/bin/pip" install -q -c "$root/constraints.txt" -e "$root[test,hf]"
export PATH="$venv/bin:$PATH"
