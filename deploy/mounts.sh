# shellcheck shell=bash
# Mount bookkeeping for the scripts that chroot into a bookworm root (sourced, not run).
# A root holds bind mounts of the host's toolchain, so a `rm -rf` through a mount still in
# place would delete host files: nothing under a root is removed while anything is mounted there.

# The mount points at or under DIR, deepest first (the order they must be unmounted in).
mounts_under() {
  local dir="$1"
  findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r
}

# Unmounts everything at or under DIR; meant for an EXIT trap, so it runs on failure too.
unmount_all_under() {
  local dir="$1" target
  while IFS= read -r target; do
    umount "$target" || umount -l "$target"
  done < <(mounts_under "$dir")
}

# Fails unless nothing is mounted at or under DIR.
require_no_mounts_under() {
  local dir="$1" left
  left="$(mounts_under "$dir")"
  if [ -n "$left" ]; then
    echo "still mounted under $dir, not removing it:" >&2
    echo "$left" >&2
    return 1
  fi
}
