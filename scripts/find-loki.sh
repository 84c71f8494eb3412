#!/usr/bin/env bash
# Print the path of a Loki binary for the tests and the native stack: $LOKI_BIN, else the
# workspace's unpacked copy (shared/bin/unpack-loki beside or above the checkout), else `loki` on
# PATH; nothing when none exists (make test then stops with one line: the Loki tests never skip).
set -euo pipefail
if [ -n "${LOKI_BIN:-}" ]; then echo "$LOKI_BIN"; exit 0; fi
for unpack in ../shared/bin/unpack-loki ../../shared/bin/unpack-loki /work/shared/bin/unpack-loki; do
  if [ -x "$unpack" ]; then "$unpack"; exit 0; fi
done
command -v loki || true
