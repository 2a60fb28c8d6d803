#!/usr/bin/env bash
# linux-fetch.sh: Debian 12's own kernel and busybox for the Linux guest (issue 13).
#
#   build/linux/debs/*.deb           the packages as apt-get download gives them
#   build/linux/root/                both unpacked (dpkg-deb -x)
#   build/linux/vmlinuz              -> root/boot/vmlinuz-<version> (a bzImage)
#   build/linux/busybox              -> root/bin/busybox (static)
#   build/linux/modules/             -> root/lib/modules/<version>
#
# The kernel is the one linux-image-amd64 (bookworm) depends on today. Cached:
# once build/linux/.fetched names the same package versions the apt index
# names, a second run only asks apt-cache (well under a second). Nothing here
# is committed (build/ is ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/linux
mkdir -p "$out/debs"

# The versioned kernel package the meta-package depends on (e.g. linux-image-6.1.0-57-amd64).
kernel_pkg() {
    apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1
}
kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then
    # A machine whose package lists were never fetched (or were cleaned).
    echo "linux-fetch: apt-cache knows no linux-image-amd64: apt-get update"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    kpkg=$(kernel_pkg)
fi
[ -n "$kpkg" ] || { echo "linux-fetch: apt-cache knows no linux-image-amd64 even after apt-get update" >&2; exit 1; }
want=""
for p in "$kpkg" busybox-static; do
    v=$(apt-cache policy "$p" | sed -n 's/^ *Candidate: //p')
    [ -n "$v" ] && [ "$v" != "(none)" ] || { echo "linux-fetch: no candidate for $p" >&2; exit 1; }
    want+="$p=$v"$'\n'
done

if [ -f "$out/.fetched" ] && [ "$(cat "$out/.fetched")" = "${want%$'\n'}" ] && [ -e "$out/vmlinuz" ]; then
    exit 0
fi

echo "linux-fetch: downloading $kpkg busybox-static"
rm -rf "$out/debs" "$out/root"
mkdir -p "$out/debs" "$out/root"
# apt-get download writes into the current directory; as root it warns that
# _apt cannot write there: harmless, the file is fetched unsandboxed.
(cd "$out/debs" && apt-get download -q "$kpkg" busybox-static 2>&1 | grep -v "unsandboxed" || true)
for d in "$out"/debs/*.deb; do
    dpkg-deb -x "$d" "$out/root"
done

kver=${kpkg#linux-image-}
[ -f "$out/root/boot/vmlinuz-$kver" ] || { echo "linux-fetch: $kpkg has no boot/vmlinuz-$kver" >&2; exit 1; }
[ -x "$out/root/bin/busybox" ] || { echo "linux-fetch: busybox-static has no bin/busybox" >&2; exit 1; }
ln -sfn "root/boot/vmlinuz-$kver" "$out/vmlinuz"
ln -sfn "root/bin/busybox" "$out/busybox"
ln -sfn "root/lib/modules/$kver" "$out/modules"
printf '%s' "$want" > "$out/.fetched"
echo "linux-fetch: $out/vmlinuz ($(stat -L -c %s "$out/vmlinuz") bytes), $out/busybox"
