#!/usr/bin/env bash
# Prepare .venv with the Fulfillwatch packages (editable) on a fresh Debian/Ubuntu machine.
#   bash scripts/bootstrap.sh          # the product
#   bash scripts/bootstrap.sh --demo   # + what the demo's example shop needs (redis-server, Celery)
#   bash scripts/bootstrap.sh --dev    # + test and lint tools, and the Debian packages tests use
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
  ""|--demo|--dev) ;;
  *) echo "bootstrap: unknown option $mode (use --demo or --dev)" >&2; exit 2 ;;
esac
venv_dir="${FULFILLWATCH_VENV:-.venv}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@";
  elif command -v sudo >/dev/null 2>&1; then sudo "$@";
  else echo "bootstrap: need root (or sudo) to run: $*" >&2; exit 1; fi
}

apt_install() {
  local missing=()
  for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "bootstrap: Python 3.10 or newer is required (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv_dir/bin/python" ]; then
  if ! "$python" -m venv "$venv_dir" 2>/dev/null; then
    # Debian ships venv/ensurepip separately.
    version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt_install "python${version}-venv" || apt_install python3-venv
    rm -rf "$venv_dir"
    "$python" -m venv "$venv_dir"
  fi
fi

pip=("$venv_dir/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade "pip>=25.1"
packages=(-e ./instrumentation -e ./collector_processor -e ./incident_engine -e ./dashboard)
if [ "$mode" = --demo ]; then
  apt_install redis-server
  "${pip[@]}" install --quiet "${packages[@]}" -r examples/stripe_shop/requirements.txt
elif [ "$mode" = --dev ]; then
  # The Celery tests run a real broker; the browser test drives Debian's chromium (emoji font
  # so the screenshots show the dashboard's icons); docker-compose (the Python 1.29 one: no
  # Docker engine) validates docker-compose.yml.
  apt_install redis-server chromium fonts-noto-color-emoji docker-compose
  "${pip[@]}" install --quiet "${packages[@]}" --group dev
else
  "${pip[@]}" install --quiet "${packages[@]}"
fi
echo "bootstrap: ready ($venv_dir)"
