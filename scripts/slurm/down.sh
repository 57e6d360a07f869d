#!/usr/bin/env bash
# Stop the cluster up.sh started: cancel its jobs, then end the daemons it recorded (by PID).
set -uo pipefail
state="${FER_SLURM_STATE:-/var/tmp/fer_multires-slurm}"
export SLURM_CONF="$state/slurm.conf"
stop() {
  local pidfile="$1"
  [ -f "$pidfile" ] || return 0
  local pid; pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}
if [ -f "$state/slurmctld.pid" ]; then
  scancel --full --quiet --partition=debug 2>/dev/null || true
  sleep 2  # slurmstepd outlives slurmd; let the jobs end first
fi
stop "$state/slurmd.pid"
stop "$state/slurmctld.pid"
stop "$state/munged.pid"
