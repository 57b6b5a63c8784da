#!/usr/bin/env bash
# Bring up Slurm (Debian 12's slurmctld + slurmd 22.05) for the test suite: one node named after
# `hostname -s` at 127.0.0.1 with 4 fake GPUs, partition "debug" (the default); and HOSTS (2) more
# compute hosts, partition "hosts": each a slurmd in its own network namespace (vlaunch-nK, address
# 10.201.0.1K on the bridge vlbr0, whose host side is 10.201.0.1) and UTS namespace (host name
# vlnodeK, in /etc/hosts), sharing this machine's file system and process table as a cluster's nodes
# share a home directory. See hosts.sh.
# No systemd, no cgroups, no munge (auth/none). Idempotent: when the rig already runs with
# the same configuration it only says so.
# Accounting (slurmdbd + MariaDB, so `sacct` answers for jobs that left squeue) is on by default:
# about 40 s more on the first install, 2-3 s more per bring-up; WITH_SACCT=0 leaves it out.
# Knobs: NCPUS=16 MEM_MB=64000 (what the node advertises), MIN_JOB_AGE=10 (seconds a finished job
# stays in squeue at least; the controller purges once a minute), WITH_SACCT=1, HOSTS=2 (0: none),
# VERBOSE=1, RIG_ROOT.
# Extra slurm.conf lines may be dropped in $RIG_ROOT/slurm/conf.d/*.conf (pbs-up.sh does).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/hosts.sh"
need_root
RIG=$RIG_ROOT/slurm
NODE=$(hostname -s)
SACCT=${WITH_SACCT:-1}

slurm_conf() {  # the whole slurm.conf on stdout
  cat <<CONF
ClusterName=vlaunch
SlurmctldHost=$NODE($(controller_addr))
SlurmUser=root
AuthType=auth/none
CredType=cred/none
StateSaveLocation=$RIG/state
# One slurmd per node on one file system: %n is the node's name.
SlurmdSpoolDir=$RIG/spool/%n
SlurmctldPidFile=$RIG/run/slurmctld.pid
SlurmdPidFile=$RIG/run/slurmd-%n.pid
SlurmctldLogFile=$RIG/log/slurmctld.log
SlurmdLogFile=$RIG/log/slurmd-%n.log
# Process tracking by parent PID: no cgroups needed.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# Start batch jobs at once (the default waits up to 3 s).
SchedulerParameters=batch_sched_delay=0
MinJobAge=${MIN_JOB_AGE:-10}
GresTypes=gpu
# Believe the NodeName line below rather than the hardware.
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MailProg=/bin/true
MpiDefault=none
CONF
  if [ "$SACCT" = 1 ]; then
    printf '%s\n' AccountingStorageType=accounting_storage/slurmdbd AccountingStorageHost=127.0.0.1 \
      AccountingStorageTRES=gres/gpu JobAcctGatherType=jobacct_gather/none
  else
    printf '%s\n' AccountingStorageType=accounting_storage/none JobAcctGatherType=jobacct_gather/none
  fi
  echo "NodeName=$NODE NodeAddr=127.0.0.1 CPUs=${NCPUS:-16} RealMemory=${MEM_MB:-64000} Gres=gpu:4 State=UNKNOWN"
  echo "PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP"
  hosts_slurm_conf
  cat "$RIG"/conf.d/*.conf 2>/dev/null || true
}

# GPUs need a File= that is a device; links to /dev/null are enough for Slurm to hand them out
# (jobs then see CUDA_VISIBLE_DEVICES). A gres line without File= drains the node.
gres_conf() {
  echo "AutoDetect=off"
  echo "NodeName=$NODE Name=gpu File=$RIG/gpu/nvidia[0-3]"
}

controller_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }
node_ready() { sinfo -h -n "$1" -o %t | grep -Eqx 'idle|mix|alloc|comp'; }

start_accounting() {  # MariaDB on a unix socket only, then slurmdbd
  if ! alive_pidfile /run/mysqld/mysqld.pid; then
    install -d -o mysql -g mysql /run/mysqld
    setsid /usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
      --pid-file=/run/mysqld/mysqld.pid </dev/null >>"$RIG/log/mariadb.log" 2>&1 &
    wait_until 60 mariadb -e 'select 1' || die "mariadbd did not start: $(tail -3 "$RIG/log/mariadb.log")"
    say "mariadbd up"
  fi
  install -m 600 /dev/stdin /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/none
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=vlaunch_slurm_acct
PidFile=$RIG/run/slurmdbd.pid
LogFile=$RIG/log/slurmdbd.log
CONF
  alive_pidfile "$RIG/run/slurmdbd.pid" || slurmdbd </dev/null >/dev/null 2>&1
  wait_until 60 sacctmgr -n list cluster || die "slurmdbd did not start: $(tail -3 "$RIG/log/slurmdbd.log")"
  sacctmgr -n list cluster format=cluster | grep -qw vlaunch || sacctmgr -i -Q add cluster vlaunch >/dev/null
  say "slurmdbd up"
}

PKGS=(slurmctld slurmd slurm-client)
[ "$HOSTS" -gt 0 ] && PKGS+=(iproute2)
[ "$SACCT" = 1 ] && PKGS+=(slurmdbd mariadb-server)
apt_install "${PKGS[@]}"
mkdir -p "$RIG"/{state,spool,log,run,gpu,conf.d}
for i in 0 1 2 3; do ln -sfn /dev/null "$RIG/gpu/nvidia$i"; done

NODES=("$NODE")
for ((k = 1; k <= HOSTS; k++)); do NODES+=("$(host_name $k)"); done
slurmds_alive() {
  local n
  for n in "${NODES[@]}"; do alive_pidfile "$RIG/run/slurmd-$n.pid" || return 1; done
}
stop_slurmds() { local f; for f in "$RIG"/run/slurmd-*.pid; do stop_pidfile "$f"; done; }

NEW=$(slurm_conf)
if alive_pidfile "$RIG/run/slurmctld.pid" && slurmds_alive && controller_up; then
  if [ "$NEW" = "$(cat /etc/slurm/slurm.conf 2>/dev/null)" ]; then
    echo "slurm rig already up: nodes ${NODES[*]} ($(sinfo -h -o %t | sort -u | paste -sd,))"
    exit 0
  fi
  # A changed configuration (e.g. pbs-up.sh's TaskProlog) is applied with a restart; jobs
  # survive it because the controller keeps their state on disk.
  say "configuration changed: restarting the daemons"
  stop_slurmds
  stop_pidfile "$RIG/run/slurmctld.pid"
elif ! alive_pidfile "$RIG/run/slurmctld.pid"; then
  rm -rf "${RIG:?}"/state/* "${RIG:?}"/spool/*   # a stale node state can keep the node drained
fi
hosts_net_up
printf '%s\n' "$NEW" > /etc/slurm/slurm.conf
gres_conf > /etc/slurm/gres.conf
[ "$SACCT" = 1 ] && start_accounting

alive_pidfile "$RIG/run/slurmctld.pid" || slurmctld </dev/null >/dev/null 2>&1
wait_until 30 controller_up || die "slurmctld did not start: $(tail -3 "$RIG/log/slurmctld.log")"
alive_pidfile "$RIG/run/slurmd-$NODE.pid" || slurmd -N "$NODE" </dev/null >/dev/null 2>&1
hosts_slurmd_up
for n in "${NODES[@]}"; do
  wait_until 30 node_ready "$n" && continue
  scontrol update nodename="$n" state=resume 2>/dev/null || true
  wait_until 10 node_ready "$n" || die "node $n not ready: $(sinfo -h -n "$n" -o '%t %E'); $(tail -3 "$RIG/log/slurmd-$n.log")"
done
echo "slurm rig up in $(elapsed)s: node $NODE (partition debug, $(sinfo -h -n "$NODE" -o '%c CPUs, %G'))$(
  [ "$HOSTS" -gt 0 ] && echo ", ${NODES[*]:1} (partition hosts, own network namespaces)")"
