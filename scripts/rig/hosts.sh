# shellcheck shell=bash
# The Slurm rig's extra compute hosts: HOSTS (2) slurmds, each in its own network namespace
# (vlaunch-nK, address 10.201.0.1K on the bridge vlbr0; the bridge's own address 10.201.0.1 is where
# they reach the controller) and its own UTS namespace (host name vlnodeK). /etc/hosts names them,
# as a cluster's DNS would. They share the file system and the process table: a job's run directory
# is on a "shared" file system, and a test can tell hosts apart by /proc/PID/ns/net. Each host also
# has an interface the others have no route to (vlxK, 10.21K.0.1): a wrong choice of address.
# Source it after lib.sh; slurm-up.sh and slurm-down.sh do.

HOSTS=${HOSTS:-2}
HOSTS_BRIDGE=vlbr0
HOSTS_NET=10.201.0
HOSTS_MARK="# vlaunch-rig host"
[ "$HOSTS" -le 9 ] || die "HOSTS=$HOSTS: at most 9 namespace hosts"

host_name() { echo "vlnode$1"; }
host_ns() { echo "vlaunch-n$1"; }
host_addr() { echo "$HOSTS_NET.1$1"; }

# controller_addr: where every slurmd and client reaches slurmctld (the bridge when there are hosts).
controller_addr() { [ "$HOSTS" -gt 0 ] && echo "$HOSTS_NET.1" || echo 127.0.0.1; }

# hosts_slurm_conf: the hosts' NodeName lines and their partition, for slurm.conf.
hosts_slurm_conf() {
  [ "$HOSTS" -gt 0 ] || return 0
  local k names=()
  for ((k = 1; k <= HOSTS; k++)); do
    echo "NodeName=$(host_name $k) NodeAddr=$(host_addr $k) CPUs=${NCPUS:-16} RealMemory=${MEM_MB:-64000} State=UNKNOWN"
    names+=("$(host_name $k)")
  done
  echo "PartitionName=hosts Nodes=$(IFS=,; echo "${names[*]}") Default=NO MaxTime=INFINITE State=UP"
}

# hosts_net_up: the bridge, one namespace and veth pair per host, and their /etc/hosts lines (idempotent).
hosts_net_up() {
  [ "$HOSTS" -gt 0 ] || return 0
  local k ns
  if ! ip link show "$HOSTS_BRIDGE" >/dev/null 2>&1; then
    ip link add "$HOSTS_BRIDGE" type bridge || die "cannot create bridge $HOSTS_BRIDGE (needs CAP_NET_ADMIN)"
    ip addr add "$HOSTS_NET.1/24" dev "$HOSTS_BRIDGE"
  fi
  ip link set "$HOSTS_BRIDGE" up
  hosts_forget
  for ((k = 1; k <= HOSTS; k++)); do
    ns=$(host_ns $k)
    ip netns list | grep -qw "$ns" || ip netns add "$ns" || die "cannot create network namespace $ns"
    if ! ip link show "vlh$k" >/dev/null 2>&1; then
      ip link add "vlh$k" type veth peer name "vln$k"
      ip link set "vln$k" netns "$ns"
      ip link set "vlh$k" master "$HOSTS_BRIDGE"
      ip -n "$ns" addr add "$(host_addr $k)/24" dev "vln$k"
      ip -n "$ns" link add "vlx$k" type veth peer name "vly$k"   # no dummy driver here; a veth pair kept inside
      ip -n "$ns" addr add "10.21$k.0.1/24" dev "vlx$k"
    fi
    ip -n "$ns" link set "vlx$k" up
    ip -n "$ns" link set "vly$k" up
    ip link set "vlh$k" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "vln$k" up
    echo "$(host_addr $k) $(host_name $k) $HOSTS_MARK" >>/etc/hosts
  done
  say "namespace hosts up: $(grep -c "$HOSTS_MARK\$" /etc/hosts)"
}

# hosts_slurmd_up: start each host's slurmd inside its namespaces (the daemon stays in them, and so
# does every job step it starts). nsenter, not `ip netns exec`: that remounts /sys, which hides the
# cgroup file system slurmd wants.
hosts_slurmd_up() {
  local k name
  for ((k = 1; k <= HOSTS; k++)); do
    name=$(host_name $k)
    alive_pidfile "$RIG/run/slurmd-$name.pid" && continue
    nsenter --net="/run/netns/$(host_ns $k)" unshare --uts sh -c 'hostname "$1" && exec slurmd -N "$1"' sh "$name" \
      </dev/null >/dev/null 2>&1 || die "slurmd of $name did not start: $(tail -3 "$RIG/log/slurmd-$name.log")"
  done
}

# hosts_net_down: remove the namespaces, the bridge and the /etc/hosts lines (after the slurmds stopped).
hosts_net_down() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^vlaunch-n[0-9]$/ {print $1}'); do ip netns del "$ns"; done
  ip link del "$HOSTS_BRIDGE" 2>/dev/null || true
  hosts_forget
}

# hosts_forget: drop the hosts' lines from /etc/hosts, in place (it may be a bind mount: no rename).
hosts_forget() {
  local kept
  kept=$(grep -v "$HOSTS_MARK\$" /etc/hosts || true)
  printf '%s\n' "$kept" >/etc/hosts
}
