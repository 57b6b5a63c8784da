#!/usr/bin/env bash
# Test rig for the ssh backend and `--via`, without systemd:
#   vl-host1  Debian's sshd on 127.0.0.1:$SSH_PORT (this machine, e.g. a cluster's login node);
#   vl-host2  a second sshd in network namespace vlhost2 at 10.200.0.2:22 (a remote workstation:
#             its loopback is its own, reached only through SSH port forwards);
#   vl-inner  the same namespace's sshd on its own 127.0.0.1:22, reachable only with ProxyJump vl-host2.
# Both sshd are key-only with generated host keys and admit one test user. The client side is written
# to $RIG/client: id_ed25519, known_hosts (built from the generated keys: nothing is trusted on first
# use) and ssh_config (the aliases above). The test user is given search permission (an ACL entry,
# nothing more) on each directory it could not pass above this checkout and its venv's Python, so
# remote jobs can run the venv's vLLM; ssh-down.sh takes those entries back.
# Knobs: SSH_RIG (default ${RIG_ROOT:-${TMPDIR:-/tmp}/vlaunch-rig}/ssh), SSH_USER=vltest, SSH_PORT=2222, WITH_NETNS=1,
# VENV (default: the checkout's .venv). Idempotent: a rig that is up is left as it is.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/ssh-lib.sh"
REPO=$(cd "$HERE/../.." && pwd)
VENV=${VENV:-$REPO/.venv}
WITH_NETNS=${WITH_NETNS:-1}

if alive_pidfile "$RIG/sshd1.pid" && { [ "$WITH_NETNS" != 1 ] || alive_pidfile "$RIG/sshd2.pid"; }; then
  step "already up ($RIG)"; exit 0
fi
[ -e "$RIG" ] && "$HERE/ssh-down.sh" >/dev/null

# grant_search DIR: let the test user pass through DIR and every directory above it. acl-dirs tells
# ssh-down.sh how to undo each grant: drop the whole ACL ("b", there was none) or only our entry ("x").
grant_search() {
  local path="" part parts undo
  IFS=/ read -ra parts <<<"${1#/}"
  for part in "${parts[@]}"; do
    path+="/$part"
    runuser -u "$SSH_USER" -- test -x "$path" && continue
    undo=x; [ -n "$(getfacl -s -p "$path" 2>/dev/null)" ] || undo=b
    setfacl -m "u:$SSH_USER:x" "$path"
    echo "$undo $path" >>"$RIG/acl-dirs"
    step "ACL u:$SSH_USER:x on $path"
  done
}

# write_sshd_config FILE HOSTKEY PIDFILE LISTEN...
write_sshd_config() {
  local file=$1 key=$2 pid=$3; shift 3
  { for addr in "$@"; do echo "ListenAddress $addr"; done
    cat <<CFG
HostKey $RIG/$key
PidFile $RIG/$pid
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers $SSH_USER
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel VERBOSE
CFG
  } >"$file"
}

apt_install openssh-server acl   # policy-rc.d keeps the package from starting a distro sshd
mkdir -p "$RIG/client"
cd "$RIG"

# A useradd account is locked ("!"); with UsePAM no sshd refuses it even for keys: "*" unlocks it.
# A new account may get another uid than an earlier one of that name: files the earlier one left in
# /tmp (torch's compile cache, owned by the old uid) would make vLLM fail with "Permission denied".
if ! id "$SSH_USER" >/dev/null 2>&1; then
  rm -rf "/tmp/torchinductor_$SSH_USER"
  useradd -m -s /bin/bash "$SSH_USER"; touch .created-user
fi
usermod -p '*' "$SSH_USER"
HOME_DIR=$(getent passwd "$SSH_USER" | cut -d: -f6)
ssh-keygen -q -t ed25519 -N '' -C vlaunch-rig-client -f client/id_ed25519
install -d -m 700 -o "$SSH_USER" -g "$SSH_USER" "$HOME_DIR/.ssh"
install -m 600 -o "$SSH_USER" -g "$SSH_USER" client/id_ed25519.pub "$HOME_DIR/.ssh/authorized_keys"
step "user $SSH_USER with key-only login"

ssh-keygen -q -t ed25519 -N '' -C vlaunch-rig-host1 -f host1_key
write_sshd_config sshd1_config host1_key sshd1.pid "127.0.0.1:$SSH_PORT"
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 host1_key.pub)" >client/known_hosts
install -d -m 755 /run/sshd                      # privilege separation dir (a systemd unit makes it)
/usr/sbin/sshd -f "$RIG/sshd1_config" -E "$RIG/sshd1.log"    # sshd re-executes itself: absolute path
wait_until 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SSH_PORT" || die "sshd did not listen on 127.0.0.1:$SSH_PORT"
step "vl-host1: sshd on 127.0.0.1:$SSH_PORT (pid $(cat sshd1.pid))"

cat >client/ssh_config <<CFG
Host vl-host1
  HostName 127.0.0.1
  Port $SSH_PORT
Host vl-host2
  HostName $HOST2_ADDR
Host vl-inner
  HostName 127.0.0.1
  Port 22
  ProxyJump vl-host2
Host vl-*
  User $SSH_USER
  IdentityFile $RIG/client/id_ed25519
  UserKnownHostsFile $RIG/client/known_hosts
CFG

if [ "$WITH_NETNS" = 1 ]; then
  ip netns add "$NETNS"
  ip link add vl-veth0 type veth peer name vl-veth1 netns "$NETNS"
  ip addr add 10.200.0.1/24 dev vl-veth0
  ip link set vl-veth0 up
  ip -n "$NETNS" addr add "$HOST2_ADDR/24" dev vl-veth1
  ip -n "$NETNS" link set vl-veth1 up
  ip -n "$NETNS" link set lo up
  ssh-keygen -q -t ed25519 -N '' -C vlaunch-rig-host2 -f host2_key
  write_sshd_config sshd2_config host2_key sshd2.pid "$HOST2_ADDR:22" "127.0.0.1:22"
  { echo "$HOST2_ADDR $(cut -d' ' -f1,2 host2_key.pub)"
    echo "127.0.0.1 $(cut -d' ' -f1,2 host2_key.pub)"; } >>client/known_hosts
  ip netns exec "$NETNS" /usr/sbin/sshd -f "$RIG/sshd2_config" -E "$RIG/sshd2.log"
  wait_until 10 bash -c "exec 3<>/dev/tcp/$HOST2_ADDR/22" || die "sshd did not listen on $HOST2_ADDR:22"
  step "vl-host2: sshd in netns $NETNS on $HOST2_ADDR:22 (pid $(cat sshd2.pid))"
fi

if [ -x "$VENV/bin/python3" ]; then
  PY=$(readlink -f "$VENV/bin/python3")
  grant_search "$REPO"; grant_search "$VENV/bin"; grant_search "$(dirname "$PY")"
  runuser -u "$SSH_USER" -- "$VENV/bin/python3" -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("vllm") is None)' \
    || { echo "ssh rig: $SSH_USER cannot find vllm with $VENV/bin/python3" >&2; exit 1; }
  step "$SSH_USER runs $VENV/bin/python3 with vllm"
else
  step "no venv at $VENV: remote jobs will not find vLLM (run scripts/setup-venv.sh first)"
fi

# The real OpenSSH client must accept the config too (it is what users copy).
ssh -F client/ssh_config -o BatchMode=yes vl-host1 true
[ "$WITH_NETNS" = 1 ] && ssh -F client/ssh_config -o BatchMode=yes vl-inner true
printf 'SSH_USER=%s\nSSH_PORT=%s\nHOST2_ADDR=%s\nWITH_NETNS=%s\nVENV=%s\n' \
  "$SSH_USER" "$SSH_PORT" "$HOST2_ADDR" "$WITH_NETNS" "$VENV" >rig.env
step "ssh rig up: $RIG/client/ssh_config"
