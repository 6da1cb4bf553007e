#!/bin/sh
# Run a CI step under imafs and keep its measurement list and PCRs next to the workspace.
#   examples/ci/run-measured.sh POLICY OUTDIR -- COMMAND...
# The step's exit status is returned; the list is saved whatever it is.
set -eu
policy=$1 out=$2
shift 3
mkdir -p "$out"
exec imafs run --policy "$policy" -- sh -c '
  out=$1; shift
  "$@"; rc=$?
  cat /sys/kernel/security/ima/ascii_runtime_measurements > "$out/ima-list.txt"
  cat /sys/kernel/security/ima/pcrs > "$out/ima-pcrs.txt"
  exit $rc' sh "$out" "$@"
