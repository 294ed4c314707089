#!/usr/bin/env bash
# Install the toolchains of the non-Rust example plugins, from the public registries:
#   - componentize-py (PyPI), into a virtualenv under ~/.cache/thrum-backup/ (reused afterwards);
#   - @bytecodealliance/componentize-js (npm), into plugins/examples/js-beads-csv/node_modules
#     at the versions pinned by its package-lock.json.
# Prints one line for the shell, so that the e2e tests find componentize-py:
#   eval "$(plugins/examples/setup-toolchains.sh)"
# Needs python3 (3.10+) with venv, node (20+) and npm. About 30 s the first time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/thrum-backup/componentize-py-0.25.1"
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check componentize-py==0.25.1 >&2
fi
(cd "$here/js-beads-csv" && npm ci --no-audit --no-fund --loglevel=error >&2)
echo "export THRUM_BACKUP_COMPONENTIZE_PY='$venv/bin/componentize-py'"
