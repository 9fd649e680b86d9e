#!/bin/sh
# Run several runbooks one after another in one Kubernetes Job, e.g.
#   run-group.sh smoke dlq-retry policy audit-trail -- --target in-cluster
# Each runbook gets its own report; the Job's exit code is the worst (highest) runbook exit code,
# so one failing runbook does not hide or skip the others.
# As PID 1, sh ignores SIGTERM unless trapped: the trap forwards it to the running CLI so an
# activeDeadlineSeconds kill still lets the runner write its report and exit 130.
set -u

runbooks=""
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
  runbooks="$runbooks $1"
  shift
done
[ "$#" -gt 0 ] && shift # drop "--"; what remains is passed to every runbook

if [ -z "$runbooks" ]; then
  echo "usage: run-group.sh <runbook>... [-- <runbook options>]" >&2
  exit 2
fi

reports="${RUNBOOK_REPORTS_DIR:-/reports}"
# Optional retention on the reports volume. Dot folders (.history, .runbook-state) are kept.
if [ -n "${RUNBOOK_REPORTS_KEEP_DAYS:-}" ] && [ -d "$reports" ]; then
  find "$reports" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -mtime "+$RUNBOOK_REPORTS_KEEP_DAYS" \
    -exec rm -rf {} + || echo "run-group: pruning $reports failed; continuing" >&2
fi

child=0
on_signal() {
  if [ "$child" -ne 0 ]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child"
  fi
  exit 130
}
trap on_signal TERM INT

worst=0
for runbook in $runbooks; do
  node bin/runbook.mjs "$runbook" "$@" &
  child=$!
  wait "$child"
  rc=$?
  child=0
  echo "run-group: $runbook exited $rc"
  [ "$rc" -gt "$worst" ] && worst=$rc
done
exit "$worst"
