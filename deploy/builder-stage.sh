#!/usr/bin/env bash
# Runs the Dockerfile's builder stage (the stage the final stage `COPY --from`s) in a clean
# bookworm root, as `docker build` would, without a Docker engine; then copies out what the final
# stage copies from it.
#
#   deploy/builder-stage.sh BASE_ROOT WORK_DIR
#
# BASE_ROOT is deploy/bookworm-root.sh's root (rust:1-slim-bookworm minus its toolchain). Every
# run starts from it unchanged: the stage runs on an overlay whose upper layer is new each time.
# The Rust toolchain is the host's, bind-mounted read-only where the rust image has its own
# (/usr/local/cargo/bin, /usr/local/rustup) with the image's PATH, RUSTUP_HOME and CARGO_HOME.
#
# Followed from the Dockerfile, in order: FROM (must be a rust:*-slim-bookworm image, the one
# base the root stands in for), WORKDIR, `COPY . .` (the build context: the repo minus
# .dockerignore), RUN in shell form run by /bin/sh -c, with BuildKit `--mount=type=cache,target=T`
# flags served by a directory under WORK_DIR/cache kept between runs of the same stage (so a
# second run reuses the crates and the target dir). Any other instruction or flag
# fails the check rather than being skipped, so the check cannot drift from the file.
#
# Output: WORK_DIR/out/<dest> for each `COPY --from=<builder> <src> <dest>` of the final stage.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/mounts.sh
. deploy/mounts.sh

base="${1:?usage: deploy/builder-stage.sh BASE_ROOT WORK_DIR}"
work="${2:?usage: deploy/builder-stage.sh BASE_ROOT WORK_DIR}"
fail() { echo "deploy/builder-stage.sh: $*" >&2; exit 1; }

# --- the Dockerfile, as instructions ----------------------------------------------------------
# One line per instruction, "KEYWORD<TAB>arguments": comments and blank lines dropped, `\`
# continuations joined as Docker joins them.
instructions() {
  local line trimmed pending="" kw rest
  while IFS= read -r line || [ -n "$line" ]; do
    trimmed="${line#"${line%%[![:space:]]*}"}"
    case "$trimmed" in '#'* | '') continue ;; esac
    if [[ "$trimmed" == *\\ ]]; then
      pending+="${trimmed%\\}"
      continue
    fi
    pending+="$trimmed"
    kw="${pending%%[[:space:]]*}"
    rest="${pending#"$kw"}"
    rest="${rest#"${rest%%[![:space:]]*}"}"
    printf '%s\t%s\n' "${kw^^}" "$rest"
    pending=""
  done <Dockerfile
}

mapfile -t all < <(instructions)
# Stage boundaries: the index of each FROM, and each stage's name.
froms=()
names=()
for i in "${!all[@]}"; do
  [[ "${all[$i]}" == FROM$'\t'* ]] || continue
  froms+=("$i")
  read -r -a from <<<"${all[$i]#*$'\t'}"
  if [ "${#from[@]}" -eq 3 ] && [ "${from[1],,}" = as ]; then names+=("${from[2]}"); else names+=(""); fi
done
[ "${#froms[@]}" -ge 2 ] || fail "expected a builder stage and a final stage, found ${#froms[@]} FROM"
final="${froms[-1]}"

copies=()
builder=""
for ((i = final + 1; i < ${#all[@]}; i++)); do
  if [[ "${all[$i]}" =~ ^COPY$'\t'--from=([^[:space:]]+)[[:space:]]+([^[:space:]]+)[[:space:]]+([^[:space:]]+)$ ]]; then
    [ -z "$builder" ] || [ "$builder" = "${BASH_REMATCH[1]}" ] || fail "the final stage copies from two stages"
    builder="${BASH_REMATCH[1]}"
    copies+=("${BASH_REMATCH[2]} ${BASH_REMATCH[3]}")
  fi
done
[ -n "$builder" ] || fail "the final stage has no COPY --from=<stage> <src> <dest>"
start=""
for s in "${!names[@]}"; do
  [ "${names[$s]}" = "$builder" ] && start="${froms[$s]}" && end="${froms[$((s + 1))]}"
done
[ -n "$start" ] || fail "no stage named $builder"

# --- the root: an overlay on the base, with the toolchain where the rust image has it ----------
run="$work/run"
unmount_all_under "$run"
require_no_mounts_under "$run"
rm -rf "$run"
mkdir -p "$run/upper" "$run/ovl" "$run/root"
# Cache mounts are kept between runs, as BuildKit keeps them, but only while the base and the
# stage's instructions stay the same: a target dir whose build scripts ran with a tool the stage
# no longer installs would not run them again, and would hide the loss. (CI's fresh clone starts
# cold anyway.)
stage_key="$({ echo "$base"; printf '%s\n' "${all[@]:start:end-start}"; } | sha256sum | cut -c1-16)"
caches="$work/cache/$stage_key"
mkdir -p "$caches"
for old in "$work"/cache/*; do
  [ "$old" = "$caches" ] || rm -rf "$old"
done
trap 'unmount_all_under "$run"' EXIT
root="$run/root"
mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/ovl" "$root"
mount -t proc proc "$root/proc"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$root/dev/pts"
# The network is the host's, so are its name servers and its CA bundle: where HTTPS goes through
# an inspecting proxy whose CA only the host trusts, cargo in the root must trust it too (a
# `docker build` on that machine would need the same). Debian's own CAs are in that bundle.
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

bind_ro() {
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mount -o remount,bind,ro "$2"
}
host_cargo="${CARGO_HOME:-$HOME/.cargo}"
host_rustup="${RUSTUP_HOME:-$HOME/.rustup}"
[ -x "$host_cargo/bin/cargo" ] || fail "no cargo at $host_cargo/bin (set CARGO_HOME)"
bind_ro "$host_cargo/bin" "$root/usr/local/cargo/bin"
bind_ro "$host_rustup" "$root/usr/local/rustup"
# The rust image's environment (its Dockerfile's ENV), and HOME as Docker sets it for root.
image_env=(
  PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  RUSTUP_HOME=/usr/local/rustup
  CARGO_HOME=/usr/local/cargo
  HOME=/root
)

# --- the build context: the repo minus .dockerignore ------------------------------------------
# Written to WORK_DIR/context, then copied wherever the stage's `COPY . .` puts it.
context="$work/context"
excludes=()
while IFS= read -r line; do
  line="${line%%#*}"
  line="${line//[[:space:]]/}"
  [ -z "$line" ] && continue
  line="${line%/}"
  line="${line#\*\*/}"
  excludes+=(--exclude="./$line" --exclude="$line")
done <.dockerignore
rm -rf "$context"
mkdir -p "$context"
# Keep target/ (which holds this script's own work) out of the copy even if .dockerignore changes.
tar -C . --exclude=./target "${excludes[@]}" -cf - . | tar -C "$context" -xf -
for gone in target .git loadtest/results fuzz/target; do
  [ ! -e "$context/$gone" ] || fail ".dockerignore does not keep $gone out of the build context"
done

# --- the stage, instruction by instruction ----------------------------------------------------
# A RUN's cache mounts: binds of WORK_DIR/cache/<stage key>/<target> onto the target, for that
# RUN only.
mount_caches() {
  local flag target dir
  for flag in "$@"; do
    [[ "$flag" =~ (^|,)target=([^,]+) ]] || fail "cache mount without target: $flag"
    target="${BASH_REMATCH[2]}"
    dir="$caches/$(echo "$target" | tr / _)"
    mkdir -p "$dir" "$root$target"
    mount --bind "$dir" "$root$target"
  done
}

workdir=/
for ((i = start; i < end; i++)); do
  kw="${all[$i]%%$'\t'*}"
  args="${all[$i]#*$'\t'}"
  echo "== $kw $args"
  case "$kw" in
    FROM)
      image="${args%%[[:space:]]*}"
      [[ "$image" =~ ^rust:[^[:space:]]*slim-bookworm$ ]] ||
        fail "the builder's base is $image; deploy/bookworm-root.sh stands in for rust:*-slim-bookworm only"
      ;;
    WORKDIR)
      case "$args" in /*) workdir="$args" ;; *) workdir="${workdir%/}/$args" ;; esac
      mkdir -p "$root$workdir"
      ;;
    COPY)
      [ "$args" = ". ." ] || fail "only \`COPY . .\` is followed in the builder stage, not: COPY $args"
      tar -C "$context" -cf - . | tar -C "$root$workdir" -xf -
      ;;
    RUN)
      cache_flags=()
      while [[ "$args" == --* ]]; do
        flag="${args%%[[:space:]]*}"
        args="${args#"$flag"}"
        args="${args#"${args%%[![:space:]]*}"}"
        [[ "$flag" == --mount=type=cache,* ]] || fail "RUN flag not followed: $flag"
        cache_flags+=("${flag#--mount=}")
      done
      [[ "$args" != \[* ]] || fail "exec-form RUN is not followed: $args"
      [ "${#cache_flags[@]}" -eq 0 ] || mount_caches "${cache_flags[@]}"
      chroot "$root" /usr/bin/env -i -C "$workdir" "${image_env[@]}" /bin/sh -c "$args" ||
        fail "RUN failed (exit $?): $args"
      for flag in "${cache_flags[@]}"; do
        [[ "$flag" =~ (^|,)target=([^,]+) ]] && umount "$root${BASH_REMATCH[2]}"
      done
      ;;
    *) fail "$kw is not followed in the builder stage; teach deploy/builder-stage.sh" ;;
  esac
done

# --- what the final stage takes from this one --------------------------------------------------
rm -rf "$work/out"
for copy in "${copies[@]}"; do
  read -r src dest <<<"$copy"
  [ -e "$root$src" ] || fail "the builder stage made no $src (the final stage copies it)"
  mkdir -p "$work/out$(dirname "$dest")"
  cp -a "$root$src" "$work/out$dest"
  echo "built: $src -> $work/out$dest"
done
