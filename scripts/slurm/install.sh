#!/usr/bin/env bash
# Install Slurm (slurmctld, slurmd, the client commands) and munge from the distribution's
# packages when they are missing. Debian/Ubuntu, as root. Idempotent: a no-op when present.
set -euo pipefail
need=()
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v munged >/dev/null || need+=(munge)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "scripts/slurm/install.sh: Slurm is missing (${need[*]}) and cannot be installed here:" \
       "it needs root and apt-get (Debian/Ubuntu). Install slurm-wlm and munge, then rerun." >&2
  exit 1
fi
echo "installing slurm-wlm and munge (apt-get) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null; }
