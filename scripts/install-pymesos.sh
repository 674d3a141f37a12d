#!/usr/bin/env bash
# Installs the unmodified pymesos client used by the compatibility tests.
# pymesos needs http-parser, whose C extension does not build on Python 3.11;
# its pure-Python parser works, so we build http-parser with the extension off.
set -euo pipefail
PY=${1:-.venv/bin/python}
if "$PY" -c 'import pymesos, http_parser' 2>/dev/null; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: -d "$tmp" 'http-parser==0.9.0' 2>&1 | { grep -v "^WARNING" || true; }
tar -xzf "$tmp"/http-parser-*.tar.gz -C "$tmp"
src=$(echo "$tmp"/http-parser-*/)
# setup.py chooses the extension build by `run_setup(not IS_PYPY)`; take the pure-Python path.
sed -i 's/run_setup(not IS_PYPY)/run_setup(False)/' "$src/setup.py"
grep -q 'run_setup(False)' "$src/setup.py" || { echo "install-pymesos: could not switch off the http-parser extension" >&2; exit 1; }
"$PY" -m pip install -q setuptools wheel 2>&1 | { grep -v "^WARNING" || true; }
"$PY" -m pip install -q --no-build-isolation "$src" 2>&1 | { grep -v "^WARNING" || true; }
"$PY" -m pip install -q 'pymesos==0.3.15' 2>&1 | { grep -v "^WARNING" || true; }
"$PY" -c 'import pymesos, http_parser.http; print("pymesos", pymesos.__version__ if hasattr(pymesos, "__version__") else "installed")'
