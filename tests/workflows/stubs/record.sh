#!/usr/bin/env bash
# Append one JSON line {"what": $1, "stack": $STACK, "inputs": $2} to $WORKFLOW_RECORD: what a stub was asked.
set -euo pipefail
python3 -c 'import json, os, sys
line = {"what": sys.argv[1], "stack": os.environ.get("STACK", ""), "inputs": json.loads(sys.argv[2])}
with open(os.environ["WORKFLOW_RECORD"], "a") as record:
    record.write(json.dumps(line) + "\n")' "$1" "$2"
