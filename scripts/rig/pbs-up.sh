#!/usr/bin/env bash
# Bring up the "PBS" rig: the Slurm rig (slurm-up.sh) plus Debian's Torque-style wrappers
# (qsub, qstat, qdel, pbsnodes from slurm-wlm-torque), the spank_pbs plugin (PBS_JOBID,
# PBS_O_WORKDIR, PBS_JOBNAME in jobs) and a TaskProlog that gives every task a PBS_NODEFILE.
# Idempotent and quiet like slurm-up.sh; the same knobs apply.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib.sh"
need_root
RIG=$RIG_ROOT/slurm
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
echo "pbs rig: ${OUT#slurm rig }; qsub, qstat, qdel, pbsnodes on PATH"
