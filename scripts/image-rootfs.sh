#!/usr/bin/env bash
# Builds the Dockerfile's runtime stage as a directory, without a container engine:
#
#   scripts/image-rootfs.sh OUT_DIR
#
# FROM debian:<suite>-slim  a minimal root filesystem made with debootstrap from
#                           the same Debian suite (cached under $DATAFLOW_CACHE)
# RUN ...                   run as written, chrooted into it, as root
# COPY --from=build /out/X  the same files from this checkout's build:
#                           /out/<binary> is target/release/<binary>,
#                           /out/runtimes/ is target/release/runtimes/,
#                           /out/precompiled/ is target/release/precompiled/
# ENV, USER                 written to OUT_DIR.env (NAME=value lines, and
#                           USER=uid:gid) for whoever runs commands in it
# The rest (EXPOSE, ENTRYPOINT, CMD) does not change the files.
#
# The root filesystem after the RUN steps is cached by a hash of the stage's
# FROM and RUN lines, so only a change to them runs apt again. Needs root (chroot)
# and `make build` first. Progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:?usage: $0 OUT_DIR}"
CACHE="${DATAFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dataflow-services}"
MIRROR="${DATAFLOW_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { echo "image-rootfs: $*" >&2; }

[ "$(id -u)" = 0 ] || { log "needs root (debootstrap and chroot)"; exit 1; }
if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi

# The final stage's instructions, continuation lines joined, comments dropped.
stage="$(awk '
    /^[[:space:]]*#/ { next }
    { line = line $0 }
    /\\[[:space:]]*$/ { sub(/\\[[:space:]]*$/, "", line); next }
    { print line; line = "" }
' "$ROOT/Dockerfile" | awk '/^FROM /{ buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }')"

from="$(printf '%s\n' "$stage" | sed -n 's/^FROM \([^ ]*\).*/\1/p')"
case "$from" in
    debian:*-slim) suite="${from#debian:}"; suite="${suite%-slim}" ;;
    *) log "the runtime stage starts FROM $from; only debian:<suite>-slim is supported"; exit 1 ;;
esac

key="$(printf '%s\n' "$stage" | grep -E '^(FROM|RUN) ' | sha256sum | cut -c1-16)"
base="$CACHE/rootfs-$suite-minbase.tar"
prepared="$CACHE/rootfs-$suite-$key.tar"

if [ ! -s "$prepared" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    if [ ! -s "$base" ]; then
        log "debootstrap $suite (minbase) from $MIRROR (once)"
        debootstrap --variant=minbase "$suite" "$work/root" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
            || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
        tar -C "$work/root" -cf "$base.part" . && mv "$base.part" "$base"
        rm -rf "$work/root"
    fi
    mkdir -p "$work/root"
    tar -C "$work/root" -xf "$base"
    cp /etc/resolv.conf "$work/root/etc/resolv.conf"
    while IFS= read -r command; do
        log "RUN ${command:0:100}"
        chroot "$work/root" /bin/sh -c "$command" >&2
    done < <(printf '%s\n' "$stage" | sed -n 's/^RUN //p')
    # Keep one prepared root filesystem per suite: the one for this Dockerfile.
    find "$CACHE" -maxdepth 1 -name "rootfs-$suite-*.tar" ! -name "rootfs-$suite-minbase.tar" -delete
    tar -C "$work/root" -cf "$prepared.part" . && mv "$prepared.part" "$prepared"
    rm -rf "$work"
    trap - EXIT
fi

rm -rf "$OUT"
mkdir -p "$OUT"
tar -C "$OUT" -xf "$prepared"

: >"$OUT.env"
while IFS= read -r instruction; do
    case "$instruction" in
        COPY\ --from=build\ *)
            # shellcheck disable=SC2086  # the instruction's words, as Docker splits them
            set -- ${instruction#COPY --from=build }
            dest="${*: -1}"
            for source in "${@:1:$#-1}"; do
                case "$source" in
                    /out/runtimes/) local_path="$ROOT/target/release/runtimes/." ;;
                    /out/precompiled/) local_path="$ROOT/target/release/precompiled/." ;;
                    /out/*) local_path="$ROOT/target/release/${source#/out/}" ;;
                    *) log "cannot map $source to this checkout's build"; exit 1 ;;
                esac
                [ -e "${local_path%/.}" ] || { log "$local_path is missing: run make build"; exit 1; }
                mkdir -p "$OUT/$dest"
                cp -a "$local_path" "$OUT/$dest"
            done
            ;;
        ENV\ *) printf '%s\n' "${instruction#ENV }" >>"$OUT.env" ;;
        USER\ *) printf 'USER=%s\n' "${instruction#USER }" >>"$OUT.env" ;;
    esac
done < <(printf '%s\n' "$stage")
log "built the runtime stage in $OUT"
