#!/usr/bin/env bash
# Install everything the project needs on a Debian 12 machine that already
# has Node.js 20, npm and make (never apt-install nodejs/npm: Debian's 18 is
# too old). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(bochs bochsbios vgabios bochs-sdl qemu-system-x86 ovmf wabt clang-16 lld-16 nasm
      grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

node -e 'const [a]=process.versions.node.split(".").map(Number); if (a < 20) { console.error("setup: Node.js >= 20 needed (assemblyscript 0.28), found " + process.versions.node); process.exit(1) }'

# npm ci again only when the lock file's content changed since the last one
# (a checksum, not file times: a fresh checkout or a second work tree
# sharing node_modules has a newer lock file with the same content).
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/asc ] || [ ! -d node_modules/uvu ] ||
   [ "$(cat node_modules/.hv-lock-sha256 2>/dev/null)" != "$lock_sum" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > node_modules/.hv-lock-sha256
fi

v=$(wasm2c --version)
[ "$v" = "1.0.32" ] || { echo "setup: wasm2c 1.0.32 required, found $v"; exit 1; }
echo "setup: ok"
