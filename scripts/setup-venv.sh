#!/usr/bin/env bash
# Create .venv in the checkout and install sublab with its dev tools. Idempotent: a stamp file
# keyed on pyproject.toml skips the install when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.sublab-installed
want=$(sha256sum pyproject.toml scripts/setup-venv.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@"; }
# Install torch on its own first: a pinned CPU wheel where one is provided locally (this keeps the
# resolver from pulling several GB of CUDA packages), otherwise whatever torch the machine has.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if [ -z "${SUBLAB_TORCH_SPEC:-}" ] && ! nvidia-smi >/dev/null 2>&1; then
    pip install "torch==2.13.0" || pip install torch --index-url https://download.pytorch.org/whl/cpu
  else
    pip install "${SUBLAB_TORCH_SPEC:-torch>=2.6,<2.14}"
  fi
fi
pip install -e ".[dev]"
if ! nvidia-smi >/dev/null 2>&1 && .venv/bin/python -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "setup: CUDA packages were pulled into a CPU-only venv; see README (Install)" >&2
  exit 1
fi
echo "$want" > "$stamp"
