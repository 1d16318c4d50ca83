#!/usr/bin/env bash
# Lints the collection with the pinned ansible-lint (scripts/setup installs it), offline: the
# collection is made resolvable as carryover.wso2 through a temporary collections path.
# Usage: deploy/ansible/lint.sh [ANSIBLE-LINT ARGS...]; exit status is ansible-lint's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lint=$(command -v ansible-lint || echo "${CARRYOVER_ANSIBLE_VENV:-/opt/carryover-ansible}/bin/ansible-lint")
[ -x "$lint" ] || { echo "lint.sh: ansible-lint not found (run scripts/setup)" >&2; exit 127; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ansible_collections/carryover"
ln -s "$here" "$tmp/ansible_collections/carryover/wso2"
cd "$here"
export PATH="$(dirname "$lint"):$PATH"
ANSIBLE_COLLECTIONS_PATH="$tmp" ANSIBLE_LOCAL_TEMP="$tmp/local" ANSIBLE_HOME="$tmp/home" \
  "$lint" --offline --nocolor "$@"
