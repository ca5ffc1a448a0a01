#!/usr/bin/env bash
# Regenerate services/*/requirements.txt from their requirements.in, constrained to uv.lock so every
# image installs exactly the versions the project is tested with (tests/unit/test_images.py checks it).
set -euo pipefail
cd "$(dirname "$0")/.."

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
uv export --frozen --all-groups --no-hashes --no-emit-project --no-header --no-annotate >"$constraints"

for spec in services/*/requirements.in; do
  uv pip compile --quiet "$spec" --constraint "$constraints" \
    --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --no-header --no-annotate --output-file "${spec%.in}.txt"
  echo "wrote ${spec%.in}.txt"
done
