#!/bin/sh
# setup.sh: installs what a fresh Debian 12 machine lacks, then builds evit
# out of tree in build/ (autoreconf, configure, make).  Safe to re-run: it
# installs only missing packages and rebuilds only what changed.
#
#   scripts/setup.sh [CONFIGURE-ARGS...]     e.g. --enable-asan --enable-ubsan
#
# BUILD=dir picks another build folder (default: build).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}

# Build tools and libraries, the Fashion-MNIST data, the Python pieces the
# PyTorch parity checks use, the aarch64 cross compiler and qemu that run
# the runtime's ARM tests, llvm (llvm-mca) for the Cortex-A57 cycle model,
# protobuf-c and onnx.proto for evit-export's ONNX output, and the ONNX
# checker (python3-onnx) that its test runs, and Open MPI for multi-process
# evit-distill and evit-eval (those checks skip without them).
pkgs="build-essential autoconf automake pkg-config libopenblas-openmp-dev libopenblas-dev
      libhdf5-dev hdf5-tools libcjson-dev libpng-dev zlib1g-dev dataset-fashion-mnist
      python3 python3-numpy python3-h5py gcc-aarch64-linux-gnu qemu-user llvm
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx libopenmpi-dev openmpi-bin"
[ -n "${EVIT_NO_TORCH:-}" ] || pkgs="$pkgs python3-torch"

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup: installing$missing" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi

# ONNX Runtime for the ONNX export's test and the benchmarks' peer: the npm
# package carries its CPU binaries; --ignore-scripts skips its CUDA download.
# Optional: without node, npm or the registry those checks skip.
if [ -z "${EVIT_NO_ORT:-}" ] && [ ! -d "$top/bench/node_modules/onnxruntime-node" ] && command -v npm >/dev/null; then
    echo "setup: installing onnxruntime-node into bench/node_modules" >&2
    (cd "$top/bench" && timeout 300 npm install --no-save --ignore-scripts --no-audit --no-fund onnxruntime-node >/dev/null 2>&1) ||
        echo "setup: could not install onnxruntime-node (its checks will skip)" >&2
fi

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
stamp="$*"
if [ ! -f Makefile ] || [ "$(cat .configure-args 2>/dev/null)" != "$stamp" ]; then
    "$top/configure" -q "$@"
    printf '%s' "$stamp" >.configure-args
fi
make -j"$(nproc)" -s
echo "setup: built evit in $build" >&2
