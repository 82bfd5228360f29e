#!/usr/bin/env bash
# Installs the system packages Ferry's build needs: XGBoost's C library and
# headers (libxgboost-dev) for the engine. DuckDB is bundled by its Go module
# (cgo, static), so it needs only a C compiler.
set -euo pipefail

need=()
dpkg -s libxgboost-dev >/dev/null 2>&1 || need+=(libxgboost-dev)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v python3 >/dev/null 2>&1 || need+=(python3) # runs the F1 reference labels (reference_tasks.py)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

if command -v apt-get >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "deps: need root to install ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
      exit 1
    fi
  fi
  echo "deps: installing ${need[*]} from the OS packages" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  exit 0
fi

cat >&2 <<MSG
deps: apt-get is not available, so install these by hand:
  - a C/C++ compiler (gcc and g++, for cgo: DuckDB and XGBoost bindings)
  - XGBoost 1.7 or newer with its C API: the header xgboost/c_api.h on the
    include path and libxgboost on the linker path. On Fedora: dnf install
    xgboost-devel; on macOS: brew install xgboost (then export
    CGO_CFLAGS=-I\$(brew --prefix)/include CGO_LDFLAGS=-L\$(brew --prefix)/lib);
    or build it from source (cmake, then make install).
Missing now: ${need[*]}
MSG
exit 1
