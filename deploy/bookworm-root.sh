#!/usr/bin/env bash
# Makes (once) a clean Debian bookworm root standing in for the Dockerfile's builder base image,
# `rust:1-slim-bookworm`, minus its Rust toolchain (deploy/builder-stage.sh bind-mounts the
# host's where the image has its own), and prints its path.
#
#   deploy/bookworm-root.sh CACHE_DIR
#
# That image is `debian:bookworm-slim` (debootstrap's minbase variant, slimmed) plus what its
# Dockerfile installs: `apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev
# wget`, then `apt-get remove --auto-remove wget` and `rm -rf /var/lib/apt/lists/*`
# (rust-lang/docker-rust, stable/bookworm/slim/Dockerfile). So the root has exactly
# ca-certificates, gcc and libc6-dev on top of minbase, and no apt lists: a builder stage that
# installs anything must run `apt-get update` itself, as it must in Docker.
#
# debootstrap takes minutes, so the root is cached under CACHE_DIR, keyed on everything that
# shapes it (suite, variant, packages, apt sources); a changed input makes a new root. The root
# is never modified after it is made: builder-stage.sh runs on an overlay of it.
set -euo pipefail

cache="${1:?usage: deploy/bookworm-root.sh CACHE_DIR}"
suite=bookworm
variant=minbase
packages="ca-certificates gcc libc6-dev"
# The image's install step; `apt-get clean` stands for debian:bookworm-slim's docker-clean hook.
install="apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages && apt-get clean && rm -rf /var/lib/apt/lists/*"
# The apt sources this machine is configured with (a mirror in CI is used the same way). The
# root gets the same file, as debian:bookworm-slim ships a debian.sources of this shape.
sources="${DEPLOY_CHECK_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}"
[ -r "$sources" ] || { echo "deploy/bookworm-root.sh: no apt sources at $sources" >&2; exit 1; }
mirror="$(grep -m1 -E '^URIs:' "$sources" | awk '{print $2}')"
[ -n "$mirror" ] || { echo "deploy/bookworm-root.sh: no URIs: line in $sources" >&2; exit 1; }

key="$({ echo "$suite $variant $install"; cat "$sources"; } | sha256sum | cut -c1-16)"
root="$cache/bookworm-$key"
if [ -f "$root.done" ]; then
  echo "$root"
  exit 0
fi

command -v debootstrap >/dev/null || {
  echo "deploy/bookworm-root.sh: needs debootstrap (apt-get install debootstrap) and root" >&2
  exit 1
}
# shellcheck source=deploy/mounts.sh
. "$(dirname "$0")/mounts.sh"
mkdir -p "$cache"
partial="$root.partial"
# debootstrap mounts proc and sys in the root while it works; a failed run may leave them.
trap 'unmount_all_under "$partial"' EXIT
unmount_all_under "$partial"
require_no_mounts_under "$partial"
rm -rf "$partial"
echo "deploy/bookworm-root.sh: debootstrap --variant=$variant $suite from $mirror (cached as $root)" >&2
debootstrap --variant="$variant" "$suite" "$partial" "$mirror" >&2

mkdir -p "$partial/etc/apt/sources.list.d"
rm -f "$partial/etc/apt/sources.list"
cp "$sources" "$partial/etc/apt/sources.list.d/debian.sources"
cp /etc/resolv.conf "$partial/etc/resolv.conf"
mount -t proc proc "$partial/proc"
chroot "$partial" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  /bin/sh -c "$install" >&2
unmount_all_under "$partial"
require_no_mounts_under "$partial"
trap - EXIT

mv "$partial" "$root"
touch "$root.done"
echo "$root"
