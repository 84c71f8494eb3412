#!/usr/bin/env bash
# fetch-verified.sh NAME URL SHA256 DEST
# Put the installer NAME at DEST, refusing anything whose SHA-256 is not the pinned one:
#   1. a file the user supplied, /installers/NAME (mounted read-only from deploy/wine/installers/):
#      used as is when SHA256 is empty (the user vouches for it; its hash is printed), else checked;
#   2. otherwise downloaded from URL, only when SHA256 is set, and checked before use.
# An empty SHA256 with nothing supplied stops here: nothing unverified is ever run under Wine.
# Exit status 1 with one line on stderr on any refusal (DEST is then removed).
set -euo pipefail

name="$1" url="$2" expected="${3,,}" dest="$4"
supplied="${INSTALLERS_DIR:-/installers}/$name"
say() { echo "fetch-verified: $*" >&2; }

if [ -n "$expected" ] && ! [[ "$expected" =~ ^[0-9a-f]{64}$ ]]; then
  say "the pinned SHA-256 of $name is not 64 hex digits"; exit 1
fi
if [ -f "$supplied" ]; then
  cp -- "$supplied" "$dest"
elif [ -z "$expected" ]; then
  say "$name: no pinned SHA-256 (build arg) and no file in deploy/wine/installers/: refusing to download it unverified"
  exit 1
else
  curl -fsSL --proto '=https,file' -o "$dest" -- "$url" || { rm -f -- "$dest"; say "$name: download failed"; exit 1; }
fi
actual="$(sha256sum -- "$dest" | cut -d' ' -f1)"
if [ -z "$expected" ]; then
  say "$name supplied by the user, sha256 $actual (pin it with the build arg to check it next time)"
elif [ "$actual" != "$expected" ]; then
  rm -f -- "$dest"
  say "$name: sha256 $actual does not match the pinned $expected: refused"
  exit 1
fi
