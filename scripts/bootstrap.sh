# Sourced by scripts/run and scripts/test: create .venv and install the project once
# (again only when pyproject.toml changes). torch comes first, pinned to the local
# CPU build, so sentence-transformers does not pull a multi-GB CUDA build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KB_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.kb-installed"
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)-${EXTRAS}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing dependencies (first run takes a few minutes)"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet torch==2.13.0
    "$VENV/bin/pip" install --quiet -e "$ROOT${EXTRAS:+[$EXTRAS]}"
    echo "$want" > "$stamp"
fi

export PATH="$VENV/bin:$PATH"
export HF_HUB_OFFLINE=1
