# shellcheck shell=bash
# Sourced by scripts/up and scripts/test: installs what is missing, quickly when nothing is.
#   - npm packages pinned in package-lock.json (forge/anvil/cast, solc-js, OpenZeppelin)
#   - a virtual environment at .venv/ with this project installed (editable, with dev extras)
# and puts the Foundry binaries and .venv/bin first on PATH.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ALPHAGRID_ROOT="$ROOT"
cd "$ROOT"

_log() { printf '\033[2m[bootstrap]\033[0m %s\n' "$*" >&2; }

_fingerprint() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }

_ensure_npm() {
  local want have marker="node_modules/.alphagrid-installed"
  want="$(_fingerprint package.json package-lock.json)"
  have="$(cat "$marker" 2>/dev/null || true)"
  if [[ "$want" != "$have" || ! -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge ]]; then
    command -v npm >/dev/null || { echo "npm is required (Node.js 18+)" >&2; exit 1; }
    _log "installing npm packages (Foundry, solc-js, OpenZeppelin)"
    # The Foundry packages' postinstall scripts only link the platform binary; we call it directly.
    # `npm ci` rejects this lock (it omits the other platforms' optional binaries); install honours it.
    npm install --no-audit --no-fund --ignore-scripts --loglevel=error >&2
    echo "$want" >"$marker"
  fi
  local tool
  for tool in forge anvil cast; do
    local bin="node_modules/@foundry-rs/${tool}-linux-amd64/bin/${tool}"
    [[ -x "$bin" ]] || { echo "missing $bin after npm install (only linux-amd64 is supported)" >&2; exit 1; }
    export PATH="$ROOT/node_modules/@foundry-rs/${tool}-linux-amd64/bin:$PATH"
  done
}

_ensure_venv() {
  local want have marker=".venv/.alphagrid-installed"
  want="$(_fingerprint pyproject.toml)"
  have="$(cat "$marker" 2>/dev/null || true)"
  if [[ ! -x .venv/bin/python ]]; then
    local py="${PYTHON:-python3.11}"
    command -v "$py" >/dev/null || py=python3
    "$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
      || { echo "Python 3.11 is required" >&2; exit 1; }
    _log "creating .venv with $("$py" --version)"
    "$py" -m venv .venv
    have=""
  fi
  if [[ "$want" != "$have" ]]; then
    _log "installing Python packages into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip >&2
    # pip warns about this machine's unreachable find-links mirrors on every package; drop that noise.
    .venv/bin/python -m pip install --quiet -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' >&2 || true
    .venv/bin/python -c 'import relayer, web3, coincurve' || { echo "Python install failed" >&2; exit 1; }
    echo "$want" >"$marker"
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
  export VIRTUAL_ENV="$ROOT/.venv"
}

_ensure_npm
_ensure_venv
