#!/usr/bin/env bash
# Tear down slurm-up.sh (and what pbs-up.sh added): cancel every job first (job processes
# outlive slurmd), stop the daemons by PID file, delete configuration and state.
# PURGE=1 also purges the packages (to re-test an install on a fresh machine).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hosts.sh"
need_root
RIG=$RIG_ROOT/slurm
if scontrol ping 2>/dev/null | grep -q 'is UP'; then
  squeue -h -o %i | xargs -r scancel 2>/dev/null
  no_jobs() { [ -z "$(squeue -h -t PD,R,CG,CF,S)" ]; }
  wait_until 30 no_jobs || echo "rig: jobs still listed after 30 s" >&2
fi
for f in "$RIG"/run/slurmd-*.pid; do stop_pidfile "$f"; done
hosts_net_down
stop_pidfile "$RIG/run/slurmctld.pid"
stop_pidfile "$RIG/run/slurmdbd.pid"
# Job ids restart at 1 with fresh controller state: forget the old accounting records too.
alive_pidfile /run/mysqld/mysqld.pid && mariadb -e 'DROP DATABASE IF EXISTS vlaunch_slurm_acct' 2>/dev/null
stop_pidfile /run/mysqld/mysqld.pid
rm -f /etc/slurm/slurm.conf /etc/slurm/gres.conf /etc/slurm/slurmdbd.conf \
  /etc/slurm/plugstack.conf.d/vlaunch-pbs.conf
grep -qs "vlaunch test rig" /usr/local/bin/pbsdsh && rm -f /usr/local/bin/pbsdsh   # pbs-up.sh's
rm -rf "${RIG:?}"
if [ "${PURGE:-0}" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086  # EXTRA_PURGE is a word list
  apt-get purge -y -qq slurmctld slurmd slurm-client slurmdbd mariadb-server ${EXTRA_PURGE:-} >/dev/null 2>&1
  apt-get autoremove --purge -y -qq >/dev/null 2>&1
  rm -rf /var/lib/mysql /var/lib/slurm /var/log/slurm
fi
echo "slurm rig down in $(elapsed)s"
