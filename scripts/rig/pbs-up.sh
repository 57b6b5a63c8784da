#!/usr/bin/env bash
# Bring up the "PBS" rig: the Slurm rig (slurm-up.sh) plus Debian's Torque-style wrappers
# (qsub, qstat, qdel, pbsnodes from slurm-wlm-torque), the spank_pbs plugin (PBS_JOBID,
# PBS_O_WORKDIR, PBS_JOBNAME in jobs), a TaskProlog that gives every task a PBS_NODEFILE, and a
# pbsdsh (over srun) for multi-node jobs.
# Idempotent and quiet like slurm-up.sh; the same knobs apply.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
need_root
RIG=$RIG_ROOT/slurm
PBSDSH=/usr/local/bin/pbsdsh
mkdir -p "$RIG/conf.d" "$RIG/nodefiles"

# The TaskProlog prints "export NAME=VALUE" lines that slurmstepd adds to the task's environment.
# generate_pbs_nodefile writes one line per task into a file under TMPDIR: keep those in the rig.
cat > "$RIG/pbs-taskprolog.sh" <<PROLOG
#!/bin/sh
echo "export PBS_NODEFILE=\$(TMPDIR=$RIG/nodefiles generate_pbs_nodefile)"
PROLOG
chmod 755 "$RIG/pbs-taskprolog.sh"
echo "TaskProlog=$RIG/pbs-taskprolog.sh" > "$RIG/conf.d/pbs.conf"   # slurm-up.sh adds it to slurm.conf
OUT=$("$HERE/slurm-up.sh")

apt_install slurm-wlm-torque
# spank plugins are read when a job step starts: no daemon restart needed for this file.
PLUGIN=(/usr/lib/*/slurm-wlm/spank_pbs.so)   # from slurm-wlm-basic-plugins, installed with slurmd
[ -e "${PLUGIN[0]}" ] || die "spank_pbs.so not found (package slurm-wlm-basic-plugins)"
echo "optional ${PLUGIN[0]}" > /etc/slurm/plugstack.conf.d/vlaunch-pbs.conf
# Torque's pbsdsh -n LINE, over srun (the wrappers have none; their mpiexec joins its arguments into
# one shell string, which a multi-line program cannot pass through). LINE counts lines of the node file.
install -m 755 /dev/stdin "$PBSDSH" <<'SHIM'
#!/bin/bash
# vlaunch test rig (scripts/rig/pbs-up.sh): Torque's `pbsdsh -n LINE [--] PROGRAM ARGS...` over srun.
line=""
while getopts "n:" opt; do
  case $opt in n) line=$OPTARG ;; *) echo "pbsdsh (rig): only -n LINE is emulated" >&2; exit 2 ;; esac
done
shift $((OPTIND - 1))
[ -n "$line" ] || { echo "pbsdsh (rig): only -n LINE is emulated" >&2; exit 2; }
host=$(sed -n "$((line + 1))p" "${PBS_NODEFILE:?pbsdsh: PBS_NODEFILE is not set}")
[ -n "$host" ] || { echo "pbsdsh: no line $line in $PBS_NODEFILE" >&2; exit 1; }
exec srun --nodes=1 --ntasks=1 --kill-on-bad-exit=1 --nodelist="$host" "$@"
SHIM
echo "pbs rig: ${OUT#slurm rig }; qsub, qstat, qdel, pbsnodes, pbsdsh (over srun) on PATH"
