#!/usr/bin/env bash
# Installs what a fresh Debian bookworm machine needs (idempotently) and builds the project.
# Usage: scripts/setup.sh [BUILD_DIR]   (default: build; Release)
#        scripts/setup.sh --deps-only   (install the packages, build nothing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps_only=0
[ "${1:-}" = --deps-only ] && { deps_only=1; shift; }
build_dir=${1:-$root/build}

packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev          # LibTorch 1.13 (CPU)
  libgloo-dev           # the Gloo headers LibTorch's c10d ProcessGroupGloo needs (data-parallel training)
  libopenblas0-pthread  # without it LibTorch falls back to the reference BLAS (~40x slower matmul)
  libcli11-dev libfmt-dev catch2 zlib1g-dev
  libspng-dev           # PNG read and write: checks every chunk's CRC, writes UTF-8 iTXt metadata
  libstb-dev            # stb_image: JPEG input (libspng reads PNG only); the tests write JPEGs with it
  nlohmann-json3-dev    # JSON: config.json, safetensors headers, metrics and --json lines (header-only)
  libmsgpack-cxx-dev    # maskgit-convert reads the release's Flax msgpack checkpoints
  libssl-dev            # libcrypto's SHA-256: model and input identities in the images' records
  python3-numpy python3-msgpack  # the golden-tensor reference of the release (tests/reference)
  python3-pil           # tests only: cli:png-metadata and cli:image-records read and rewrite PNG metadata with Pillow
  dataset-fashion-mnist # training and evaluation data (IDX files)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ "$deps_only" = 1 ] && exit 0
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release >&2
fi
cmake --build "$build_dir" --parallel "$(nproc)" >&2
