#!/usr/bin/env bash
# Set up (once), lint, and run the whole test suite on CPU: `bash scripts/test.sh [pytest args]`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
ruff check --quiet src tests benchmarks  # pinned in the test extras: the same rules everywhere
python -m pytest tests "$@"
