#!/bin/sh
# bootstrap.sh -- from a fresh clone on Debian 12 to a built tree:
# install the Debian packages that are missing, then autoreconf, configure
# (with this script's arguments) and make.
#
#   ./bootstrap.sh                        # default build
#   ./bootstrap.sh --enable-sanitizers    # ASan + UBSan build
set -eu

cd "$(dirname "$0")"

# The build's libraries and tools; Fashion-MNIST (IDX files under
# /usr/share/datasets/fashion-mnist) for the learned benchmarks, so nothing
# is downloaded; python3-torch for the PyTorch peers of bench/.
packages="make gcc autoconf automake libtool pkg-config libgsl-dev
libpetsc-real-dev libopenblas-dev liblapacke-dev libfftw3-dev zlib1g-dev libsleef-dev
check gnuplot-nox dataset-fashion-mnist python3-torch python3-numpy"

missing=
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "bootstrap.sh: not a Debian system: install the equivalents of" \
       $packages "yourself; continuing" >&2
  packages=
fi
for p in $packages; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  case $status in
    *" installed") ;;
    *) missing="$missing $p" ;;
  esac
done

if [ -n "$missing" ]; then
  echo "bootstrap.sh: installing missing Debian packages:$missing"
  if [ "$(id -u)" = 0 ]; then
    as_root=
  elif command -v sudo >/dev/null 2>&1; then
    as_root=sudo
  else
    echo "bootstrap.sh: need root or sudo to install:$missing" >&2
    exit 1
  fi
  $as_root apt-get update
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y --no-install-recommends $missing
fi

autoreconf -fi
./configure "$@"
make -j"$(nproc 2>/dev/null || echo 2)"
