# shellcheck shell=bash
# Shared helpers for the test-rig scripts in this directory. Source it; do not run it.
# Every script is quiet: it prints one summary line, or the reason it failed on stderr.

RIG_ROOT=${RIG_ROOT:-${TMPDIR:-/tmp}/vlaunch-rig}
_rig_t0=${EPOCHREALTIME/./}

# elapsed: seconds since the script started, with one decimal.
elapsed() {
  local us=$(( ${EPOCHREALTIME/./} - _rig_t0 ))
  printf '%d.%01d' $(( us / 1000000 )) $(( us / 100000 % 10 ))
}

# say MSG...: progress message, shown only with VERBOSE=1.
say() { [ "${VERBOSE:-0}" = 1 ] && echo "[$(elapsed)s] $*" >&2; return 0; }

# die MSG...: print the reason on stderr and stop.
die() { echo "rig: $*" >&2; exit 1; }

# wait_until SECONDS CMD...: run CMD every 0.1 s until it succeeds; fail after SECONDS.
wait_until() {
  local limit=$(( ${EPOCHREALTIME/./} + $1 * 1000000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "${EPOCHREALTIME/./}" -lt "$limit" ] || return 1
    sleep 0.1
  done
}

# gone PID: true when the process no longer runs. A zombie counts as gone, because
# an init that reaps orphans slowly leaves killed processes as zombies for a while.
gone() {
  local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
  case $st in Z*|'') return 0 ;; *) return 1 ;; esac
}

# stop_pid PID: SIGTERM, up to 15 s grace, then SIGKILL.
stop_pid() {
  [ -n "${1:-}" ] || return 0
  gone "$1" && return 0
  kill "$1" 2>/dev/null || true
  wait_until 15 gone "$1" && return 0
  kill -9 "$1" 2>/dev/null || true
  wait_until 5 gone "$1"
}

# stop_pidfile FILE: stop the daemon whose PID the file holds, then remove the file.
stop_pidfile() {
  [ -s "$1" ] && stop_pid "$(cat "$1")"
  rm -f "$1"
}

# alive_pidfile FILE: true when FILE names a running process.
alive_pidfile() { [ -s "$1" ] && ! gone "$(cat "$1")"; }

# apt_install PKG...: install what is missing, quietly, without recommends and without
# letting package scripts start daemons (a policy-rc.d answering 101 forbids it; one put there
# for this install is removed after it).
apt_install() {
  local missing=() p guard=/usr/sbin/policy-rc.d created=0
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  export DEBIAN_FRONTEND=noninteractive
  mkdir -p "$RIG_ROOT"
  [ -e "$guard" ] || { printf '#!/bin/sh\nexit 101\n' | install -m 755 /dev/stdin "$guard"; created=1; }
  apt-cache show "${missing[0]}" >/dev/null 2>&1 || apt-get update -qq >/dev/null \
    || die "apt-get update failed"
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null \
    2>"$RIG_ROOT/apt.err" || die "apt-get install ${missing[*]} failed: $(tail -3 "$RIG_ROOT/apt.err")"
  [ "$created" = 0 ] || rm -f "$guard"
  say "installed ${missing[*]}"
}

# need_root: the rigs install packages and start daemons.
need_root() { [ "$(id -u)" = 0 ] || die "run as root (installs packages, starts daemons)"; }
