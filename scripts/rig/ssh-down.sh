#!/usr/bin/env bash
# Tear down what ssh-up.sh made: the test user's processes (detached jobs outlive their sessions),
# both sshd, the network namespace, the ACL entries, the test user (if the rig created it), $RIG.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/ssh-lib.sh"

if [ -e "$RIG/.created-user" ] && id "$SSH_USER" >/dev/null 2>&1; then
  for pid in $(ps -o pid= -u "$SSH_USER"); do stop_pid "$pid"; done
  step "stopped the processes of $SSH_USER"
fi
for n in 1 2; do
  alive_pidfile "$RIG/sshd$n.pid" && { stop_pid "$(cat "$RIG/sshd$n.pid")"; step "stopped sshd$n"; }
done
if ip netns list 2>/dev/null | grep -qw "$NETNS"; then
  for pid in $(ip netns pids "$NETNS"); do stop_pid "$pid"; done
  ip netns del "$NETNS"                  # removes vl-veth1 and, asynchronously, its peer vl-veth0
  wait_until 10 bash -c '! ip link show vl-veth0'
  step "deleted netns $NETNS"
fi
if [ -s "$RIG/acl-dirs" ]; then
  while read -r undo dir; do
    if [ "$undo" = b ]; then setfacl -b "$dir"; else setfacl -x "u:$SSH_USER" "$dir"; fi
  done <"$RIG/acl-dirs"
  step "removed the ACL entries of $SSH_USER"
fi
if [ -e "$RIG/.created-user" ]; then
  userdel -r "$SSH_USER" 2>/dev/null
  rm -rf "/tmp/torchinductor_$SSH_USER"
  step "deleted user $SSH_USER"
fi
rm -rf "$RIG"
step "ssh rig down"
