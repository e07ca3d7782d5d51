#!/usr/bin/env bash
# Runs packetdrill scripts against libxtcp-packetdrill.so, one packetdrill process per
# script, and prints one line per script; exits 1 if any failed.
#   tools/packetdrill/run_scripts.sh PACKETDRILL [LIBRARY] [SCRIPT...]
# PACKETDRILL: the packetdrill binary (built from its own sources, docs/testing.md).
# LIBRARY: default build/lib/libxtcp-packetdrill.so. SCRIPTS: default tests/packetdrill/*.pkt.
# The stack lives in the packetdrill process, in virtual time: no device, no packet leaves it.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -lt 1 ] || [ ! -x "$1" ]; then
  echo "usage: $0 PACKETDRILL [LIBRARY] [SCRIPT...]  (PACKETDRILL: an executable packetdrill)" >&2
  exit 2
fi
PACKETDRILL=$1
LIBRARY=${2:-$ROOT/build/lib/libxtcp-packetdrill.so}
shift $(( $# >= 2 ? 2 : 1 ))
if [ ! -f "$LIBRARY" ]; then
  echo "$0: no adapter library at $LIBRARY (build the xtcp-packetdrill target)" >&2
  exit 2
fi
if [ $# -eq 0 ]; then
  set -- "$ROOT"/tests/packetdrill/*.pkt
fi
LOCAL=198.18.0.1
REMOTE=198.18.1.1
failed=0
for script in "$@"; do
  if out=$(timeout 120 "$PACKETDRILL" --so_filename="$LIBRARY" --so_flags="local=$LOCAL" \
             --local_ip=$LOCAL --remote_ip=$REMOTE "$script" 2>&1); then
    echo "PASS $(basename "$script")"
  else
    echo "FAIL $(basename "$script")"
    printf '%s\n' "$out" | sed 's/^/    /'
    failed=1
  fi
done
exit $failed
