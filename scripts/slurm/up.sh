#!/usr/bin/env bash
# Start a one-node Slurm cluster (munged, slurmctld, slurmd) for the tests: `make slurm-up`.
# Installs the packages when missing (install.sh). Idempotent and fast when it is already up.
# Records the PIDs of what it starts in $FER_SLURM_STATE; down.sh stops only those.
# Prints the cluster's config file; commands need SLURM_CONF=<it> (the Makefile sets it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
state="${FER_SLURM_STATE:-/var/tmp/fer_multires-slurm}"
conf="$state/slurm.conf"
export SLURM_CONF="$conf"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
node_ready() { sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

if alive "$state/slurmctld.pid" && alive "$state/slurmd.pid" && node_ready; then
  echo "$conf"
  exit 0
fi

"$here/install.sh"
mkdir -p "$state/ctld" "$state/d"

# munge: use a running munged, else start one (and remember that we did)
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  [ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key -f; chown munge:munge /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do [ -s /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$state/munged.pid"
  munge -n | unmunge >/dev/null
fi

# the node's real size, with more CPUs declared so several small test jobs share the cores
read -r cpus mem < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
sed -e "s|@HOST@|$(hostname -s)|g" -e "s|@STATE@|$state|g" \
    -e "s|@CPUS@|$(( cpus * ${FER_SLURM_CPU_FACTOR:-4} ))|g" -e "s|@MEM@|$(( mem * 9 / 10 ))|g" \
    -e "s|@CTLD_PORT@|${FER_SLURM_CTLD_PORT:-6817}|g" -e "s|@SLURMD_PORT@|${FER_SLURM_SLURMD_PORT:-6818}|g" \
    "$here/slurm.conf.in" > "$conf.tmp"
mv "$conf.tmp" "$conf"

alive "$state/slurmctld.pid" || /usr/sbin/slurmctld -f "$conf"
alive "$state/slurmd.pid" || /usr/sbin/slurmd -f "$conf"

for _ in $(seq 300); do
  if node_ready; then echo "$conf"; exit 0; fi
  # a node left down by an earlier run comes back with the new daemons
  scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
  sleep 0.1
done
echo "scripts/slurm/up.sh: the Slurm node did not become ready within 30 s:" >&2
sinfo >&2 || true
tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
exit 1
