# shellcheck shell=bash
# Shared environment bootstrap for the project's scripts (sourced, not run).
#
# Home Assistant 2026.10 needs Python >= 3.14.2. In order of preference:
#   1. a host `python3.14` of at least 3.14.2,
#   2. `uv` with a Python >= 3.14.2 it can find or install,
#   3. a minimal Debian "forky" root made with debootstrap (it ships python3.14), kept in a
#      cache folder outside the repository and entered through a private mount namespace
#      (the mounts vanish with the process; the host is never modified).
# Everything installed lives in the cache folder, so a second run reuses it.
set -euo pipefail

DALY_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DALY_CACHE="${DALY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/daly-active-balance}"
DALY_MIN_PY="3.14.2"
DALY_ROOT="$DALY_CACHE/forky"
DALY_CHROOT_VENV="/opt/daly-venv"

_daly_log() { printf '\033[1m[daly]\033[0m %s\n' "$*" >&2; }

# Runs "$@" holding the cache folder's set-up lock, so that scripts started at the same time
# never build the Debian root or install packages at once.
_daly_locked() {
  mkdir -p "$DALY_CACHE"
  exec 9>"$DALY_CACHE/.setup-lock"
  flock 9
  "$@"
  flock -u 9
  exec 9>&-
}

# True when the given interpreter is at least DALY_MIN_PY.
_daly_python_ok() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 14, 2) else 1)' 2>/dev/null
}

# Picks the mode once: host, uv or chroot.
daly_mode() {
  if [ -n "${DALY_MODE:-}" ]; then echo "$DALY_MODE"; return; fi
  if command -v python3.14 >/dev/null 2>&1 && _daly_python_ok "$(command -v python3.14)"; then
    DALY_MODE=host
  elif command -v uv >/dev/null 2>&1 && uv python find ">=$DALY_MIN_PY" >/dev/null 2>&1; then
    DALY_MODE=uv
  elif command -v uv >/dev/null 2>&1 && uv python install "$DALY_MIN_PY" >/dev/null 2>&1; then
    DALY_MODE=uv
  else
    DALY_MODE=chroot
  fi
  export DALY_MODE
  echo "$DALY_MODE"
}

# The Debian mirror the host's own apt configuration uses (so no host name is written here).
_daly_mirror() {
  if [ -n "${DALY_DEBIAN_MIRROR:-}" ]; then echo "$DALY_DEBIAN_MIRROR"; return; fi
  local uri
  uri="$(grep -hoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)[a-z]+://[^[:space:]]+/debian/?([[:space:]]|$)' \
      /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE '[a-z]+://[^[:space:]]+' | head -n1 || true)"
  if [ -z "$uri" ]; then
    _daly_log "cannot find a Debian mirror in the host's apt sources; set DALY_DEBIAN_MIRROR"
    return 1
  fi
  echo "${uri%/}"
}

_daly_build_root() {
  [ -f "$DALY_ROOT/.daly-root-ok" ] && return 0
  if [ "$(id -u)" != 0 ]; then
    _daly_log "no Python >= $DALY_MIN_PY or uv on this machine, and building the Debian root needs root"
    return 1
  fi
  if ! command -v debootstrap >/dev/null 2>&1; then
    _daly_log "installing debootstrap"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  local mirror
  mirror="$(_daly_mirror)"
  _daly_log "building a minimal Debian forky root with python3.14 in $DALY_ROOT (about 30 s)"
  rm -rf "$DALY_ROOT"
  mkdir -p "$DALY_CACHE"
  debootstrap --variant=minbase --include=python3.14,python3.14-venv,python3.14-dev,gcc,ca-certificates \
    forky "$DALY_ROOT" "$mirror" /usr/share/debootstrap/scripts/sid >"$DALY_CACHE/debootstrap.log" 2>&1 \
    || { _daly_log "debootstrap failed; see $DALY_CACHE/debootstrap.log"; tail -n 20 "$DALY_CACHE/debootstrap.log" >&2; return 1; }
  touch "$DALY_ROOT/.daly-root-ok"
}

# Runs "$@" inside the chroot with /proc, /dev (and /dev/pts) and the repository mounted at the
# same paths. Only the repository: nothing the project runs may read what lies beside it.
_daly_chroot_exec() {
  cp /etc/resolv.conf "$DALY_ROOT/etc/resolv.conf" 2>/dev/null || true
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$DALY_ROOT/etc/ssl/certs/ca-certificates.crt"
  fi
  mkdir -p "$DALY_ROOT$DALY_REPO"
  local pass=() var
  for var in CI TERM COLUMNS PYTHONPATH DALY_CACHE DALY_MODE PYTEST_ADDOPTS DALY_HA_PORT DALY_SIM_PORT DALY_BENCH_MINUTES DALY_SOAK_POLLS DALY_FUZZ_INPUTS; do
    [ -n "${!var:-}" ] && pass+=("$var=${!var}")
  done
  # shellcheck disable=SC2016
  unshare --mount --propagation private -- /bin/bash -c '
    set -e
    root="$1"; repo="$2"; cwd="$3"; shift 3
    mount --rbind /proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --bind "$repo" "$root$repo"
    exec chroot "$root" /bin/bash -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
  ' daly-chroot "$DALY_ROOT" "$DALY_REPO" "$PWD" \
    /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH="$DALY_CHROOT_VENV/bin:/usr/local/bin:/usr/bin:/bin" \
    VIRTUAL_ENV="$DALY_CHROOT_VENV" "${pass[@]}" "$@"
}

# The venv's location as seen from where commands run.
daly_venv() {
  case "$(daly_mode)" in
    host) echo "$DALY_CACHE/venv-host" ;;
    uv) echo "$DALY_CACHE/venv-uv" ;;
    chroot) echo "$DALY_CHROOT_VENV" ;;
  esac
}

# Runs "$@" with the project's venv first on PATH, in the current directory.
daly_exec() {
  local mode venv
  mode="$(daly_mode)"
  venv="$(daly_venv)"
  if [ "$mode" = chroot ]; then
    _daly_chroot_exec "$@"
  else
    PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" "$@"
  fi
}

# Makes sure the venv exists and holds the given requirements files (re-installs on change).
daly_ensure() { _daly_locked _daly_ensure "$@"; }
_daly_ensure() {
  local mode venv stamp want
  mode="$(daly_mode)"
  venv="$(daly_venv)"
  case "$mode" in
    host) [ -x "$venv/bin/python" ] || python3.14 -m venv "$venv" ;;
    uv) [ -x "$venv/bin/python" ] || uv venv --seed --python ">=$DALY_MIN_PY" "$venv" >/dev/null ;;
    chroot)
      _daly_build_root
      # Not `-x …/bin/python`: seen from the host, that symlink points at the root's python3.14
      # by an absolute path the host does not have, and the venv would be made anew every time.
      [ -f "$DALY_ROOT$venv/pyvenv.cfg" ] || _daly_chroot_exec /usr/bin/python3.14 -m venv "$venv"
      ;;
  esac
  want="$(cd "$DALY_REPO" && cat "$@" | sha256sum | cut -c1-16)"
  stamp="$DALY_CACHE/installed-$mode-$(printf '%s\n' "$@" | sha256sum | cut -c1-8)"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    _daly_log "installing Python packages from $* (first run: a few minutes)"
    local args=() f
    for f in "$@"; do args+=(-r "$f"); done
    (cd "$DALY_REPO" && daly_exec python -m pip install --disable-pip-version-check -q --upgrade pip)
    (cd "$DALY_REPO" && daly_exec python -m pip install --disable-pip-version-check -q "${args[@]}")
    mkdir -p "$DALY_CACHE"
    echo "$want" >"$stamp"
  fi
  if (cd "$DALY_REPO" && grep -qs '^-e ./packages/aiodalybalancer' "$@"); then _daly_ensure_library; fi
}

# The library (packages/aiodalybalancer) is installed editable from this checkout. Another clone
# of the repository that shares the cache folder points it at itself: point it back.
_daly_ensure_library() {
  local src="$DALY_REPO/packages/aiodalybalancer/src"
  (cd "$DALY_REPO" && daly_exec python -c 'import pathlib, sys, aiodalybalancer
sys.exit(pathlib.Path(aiodalybalancer.__file__).resolve().parent.parent != pathlib.Path(sys.argv[1]).resolve())' \
    "$src") 2>/dev/null && return 0
  _daly_log "installing aiodalybalancer from $src (editable)"
  (cd "$DALY_REPO" && daly_exec python -m pip install --disable-pip-version-check -q --no-deps -e ./packages/aiodalybalancer)
}

# Makes sure Debian's chromium (and fonts to draw text with) is where the browser tests run:
# inside the Debian root in chroot mode (marker file beside it), on the host otherwise (as root).
# Playwright drives this browser; it never downloads one. The forky suite's Release file can be
# past its "Valid-Until" date on a frozen mirror, hence Check-Valid-Until=false.
daly_ensure_chromium() { _daly_locked _daly_ensure_chromium; }
_daly_ensure_chromium() {
  local install='export DEBIAN_FRONTEND=noninteractive
    apt-get -o Acquire::Check-Valid-Until=false update -qq \
      && apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core >/dev/null'
  case "$(daly_mode)" in
    chroot)
      _daly_build_root
      if [ -f "$DALY_ROOT/.daly-chromium-ok" ] && [ -x "$DALY_ROOT/usr/bin/chromium" ]; then return 0; fi
      _daly_log "installing Debian's chromium in $DALY_ROOT for the browser tests (about a minute)"
      _daly_chroot_exec /bin/bash -c "$install" \
        || { _daly_log "could not install chromium in the Debian root"; return 1; }
      touch "$DALY_ROOT/.daly-chromium-ok"
      ;;
    *)
      # A browser named by DALY_CHROMIUM (e.g. the Chrome of a CI runner) is used as it is.
      if [ -n "${DALY_CHROMIUM:-}" ] && [ -x "$DALY_CHROMIUM" ]; then return 0; fi
      command -v chromium >/dev/null 2>&1 && return 0
      if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        _daly_log "chromium is missing: install it (e.g. 'sudo apt-get install chromium') for the browser tests"
        return 1
      fi
      _daly_log "installing Debian's chromium for the browser tests (about a minute)"
      /bin/bash -c "$install" || { _daly_log "could not install chromium"; return 1; }
      ;;
  esac
}

# Makes sure a C++ compiler is where Python packages are built (the Debian root in chroot mode,
# the host otherwise). Home Assistant's voice pipeline, which its service helper always imports
# (so the web UI does not load without it), needs pymicro-vad and pyspeex-noise, and neither has
# a wheel for Python 3.14: pip builds them from source (about 20 s).
daly_ensure_cxx() { _daly_locked _daly_ensure_cxx; }
_daly_ensure_cxx() {
  case "$(daly_mode)" in
    chroot)
      _daly_build_root
      if [ -f "$DALY_ROOT/.daly-cxx-ok" ] && [ -x "$DALY_ROOT/usr/bin/g++" ]; then return 0; fi
      _daly_log "installing g++ in $DALY_ROOT (to build Home Assistant's voice packages)"
      _daly_chroot_exec /bin/bash -c 'export DEBIAN_FRONTEND=noninteractive
        apt-get -o Acquire::Check-Valid-Until=false update -qq \
          && apt-get install -y -qq --no-install-recommends g++ >/dev/null' \
        || { _daly_log "could not install g++ in the Debian root"; return 1; }
      touch "$DALY_ROOT/.daly-cxx-ok"
      ;;
    *)
      command -v c++ >/dev/null 2>&1 && return 0
      if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        _daly_log "no C++ compiler: install one (e.g. 'sudo apt-get install g++') to build pymicro-vad"
        return 1
      fi
      _daly_log "installing g++ (to build Home Assistant's voice packages)"
      { DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ >/dev/null; } \
        || { _daly_log "could not install g++"; return 1; }
      ;;
  esac
}

# The library's tests on the oldest Python it supports (packages/aiodalybalancer: requires-python),
# without Home Assistant, in a venv of their own on the host (DALY_LIBRARY_PYTHON names another
# interpreter). Skipped, saying so, when there is no such interpreter.
DALY_LIBRARY_MIN_PY="3.12"
_daly_is_library_python() {
  "$1" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$DALY_LIBRARY_MIN_PY'.split('.'))))" 2>/dev/null
}
daly_test_library_on_oldest_python() {
  local py="${DALY_LIBRARY_PYTHON:-python$DALY_LIBRARY_MIN_PY}" venv="$DALY_CACHE/venv-library-py$DALY_LIBRARY_MIN_PY"
  local lib="$DALY_REPO/packages/aiodalybalancer" stamp want candidate
  # A pyenv shim on PATH answers only for the versions pyenv is told to use: fall back to the
  # interpreter pyenv installed, if any.
  if [ -z "${DALY_LIBRARY_PYTHON:-}" ] && ! _daly_is_library_python "$py"; then
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$DALY_LIBRARY_MIN_PY".*/bin/python"$DALY_LIBRARY_MIN_PY"; do
      if _daly_is_library_python "$candidate"; then py="$candidate"; break; fi
    done
  fi
  if ! _daly_is_library_python "$py"; then
    _daly_log "SKIPPED: the library's tests on Python $DALY_LIBRARY_MIN_PY: no working '$py' here (install it, or set DALY_LIBRARY_PYTHON)"
    return 0
  fi
  _daly_locked _daly_library_venv "$py" "$venv" "$lib"
  _daly_log "the library's tests on $("$venv/bin/python" -V), without Home Assistant"
  (cd "$lib" && "$venv/bin/python" -m pytest -q)
}
_daly_library_venv() {
  local py="$1" venv="$2" lib="$3" stamp want
  [ -f "$venv/pyvenv.cfg" ] || "$py" -m venv "$venv"
  want="$(cat "$lib/pyproject.toml" "$lib/requirements_test.txt" | sha256sum | cut -c1-16)"
  stamp="$venv/.daly-installed"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    _daly_log "installing the library and its test requirements in $venv"
    "$venv/bin/python" -m pip install --disable-pip-version-check -q --upgrade pip
    # Not editable: this is how a user installs it; the tests import the checkout's source
    # (the library's pytest settings put src/ first).
    "$venv/bin/python" -m pip install --disable-pip-version-check -q "$lib" -r "$lib/requirements_test.txt"
    echo "$want" >"$stamp"
  fi
}
