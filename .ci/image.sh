#!/usr/bin/env bash
# The container image (Dockerfile), built and unpacked for tests/test_image.py.
#
# CI machines can neither pull from container registries nor run containers, so the image is
# built the long way round, from Debian's own packages:
#   base    mmdebstrap makes a Debian 12 root filesystem with python3 from the Debian mirror (the
#           tarball is cached under ~/.cache/ipfix-antrea/image); podman imports it as the local
#           image $IMAGE_BASE, standing in for python:3.12-slim.
#   build   podman builds the Dockerfile on it with --isolation chroot (no container runtime
#           needed); the host's CA bundle is mounted for the RUN step that reaches PyPI.
#   export  the image's filesystem is unpacked into build/image/rootfs and its configuration
#           (entrypoint, user, environment, labels) written to build/image/config.json.
# tests/test_image.py then runs the image's real entrypoint inside that tree with chroot, as the
# image's user.
#
# Two ways to use this file:
#   source .ci/image.sh && image_setup     # what .ci/run does; exports IPFIX_ANTREA_IMAGE_* for
#                                          # the tests (needs .ci/run's log, run, apt_install)
#   .ci/image.sh setup|env|clean           # by hand, as root: build, then `eval "$(.ci/image.sh env)"`
#
# A step that cannot work on this machine does not stop .ci/run: image_setup records which step
# failed and why in IPFIX_ANTREA_IMAGE_UNAVAILABLE, and the tests skip with that reason. Each step
# that succeeds leaves a mark in the cache; under CI, a step that fails although it has worked on
# this machine before sets IPFIX_ANTREA_REQUIRE_IMAGE=1, so the tests fail instead: a regression,
# not a machine that never could.

: "${IMAGE_CACHE:=${HOME:-/root}/.cache/ipfix-antrea/image}"
: "${IMAGE_WORK:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/image}"
: "${IMAGE_SUITE:=bookworm}"
: "${IMAGE_MIRROR:=http://deb.debian.org/debian}"
: "${IMAGE_CA_BUNDLE:=/etc/ssl/certs/ca-certificates.crt}"
IMAGE_BASE="localhost/ipfix-antrea-base:$IMAGE_SUITE"
# What python:3.12-slim has and the Dockerfile uses: python3 with venv, useradd (passwd).
IMAGE_BASE_PACKAGES="python3,python3-venv,passwd"

image_log() { printf '[image] %s\n' "$*" >&2; }

# image_version: the package's version (pyproject.toml), the image's tag and VERSION label.
image_version() {
    sed -n 's/^version *= *"\([^"]*\)".*/\1/p' pyproject.toml | head -n 1
}

# image_ref: the reference the manifests use (deploy/kubernetes/base/kustomization.yaml,
# `images:`); the build tags the image with it so the tests can compare.
image_ref() {
    echo "ghcr.io/ipfix-antrea/ipfix-collect:$(image_version)"
}

image_podman() {
    podman --root "$IMAGE_WORK/storage" --runroot "$IMAGE_WORK/run" "$@"
}

# image_tools: podman and mmdebstrap from Debian (apt_install comes from .ci/run).
image_tools() {
    if command -v podman >/dev/null && command -v mmdebstrap >/dev/null; then
        return 0
    fi
    if ! declare -F apt_install >/dev/null; then
        image_log "podman or mmdebstrap missing: apt-get install podman mmdebstrap"
        return 1
    fi
    apt_install podman mmdebstrap
}

# image_base: the Debian root filesystem (cached tarball) imported as $IMAGE_BASE.
image_base() {
    local key tarball
    key="$(printf '%s %s %s' "$IMAGE_SUITE" "$IMAGE_MIRROR" "$IMAGE_BASE_PACKAGES" | sha256sum | cut -c1-12)"
    tarball="$IMAGE_CACHE/debian-$IMAGE_SUITE-python3-$key.tar"
    mkdir -p "$IMAGE_CACHE"
    if [ -s "$tarball" ]; then
        image_log "cached base: $tarball"
    else
        image_log "mmdebstrap: Debian $IMAGE_SUITE with $IMAGE_BASE_PACKAGES"
        # minbase: essential packages only, like the Debian slim images; no docs, man pages or
        # locales, as those images do.
        mmdebstrap --variant=minbase --include="$IMAGE_BASE_PACKAGES" \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --format=tar "$IMAGE_SUITE" "$tarball.part" "$IMAGE_MIRROR" >"$IMAGE_WORK/mmdebstrap.log" 2>&1 || {
            tail -n 20 "$IMAGE_WORK/mmdebstrap.log" >&2
            rm -f "$tarball.part"
            return 1
        }
        mv "$tarball.part" "$tarball"
    fi
    image_podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$IMAGE_BASE" >/dev/null
}

# image_build: the Dockerfile on $IMAGE_BASE, tagged $(image_ref).
image_build() {
    local mount=()
    if [ -f "$IMAGE_CA_BUNDLE" ]; then
        mount=(-v "$IMAGE_CA_BUNDLE:/etc/ssl/certs/host-ca-bundle.crt:ro"
               --build-arg PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt)
    fi
    image_podman build --isolation chroot --build-arg BASE_IMAGE="$IMAGE_BASE" \
        --build-arg VERSION="$(image_version)" "${mount[@]}" -t "$(image_ref)" . \
        >"$IMAGE_WORK/build.log" 2>&1 || {
        tail -n 30 "$IMAGE_WORK/build.log" >&2
        return 1
    }
}

# image_export: the image's filesystem into $IMAGE_WORK/rootfs (owners kept), its configuration
# into $IMAGE_WORK/config.json, its size into $IMAGE_WORK/size.
image_export() {
    local container
    rm -rf "$IMAGE_WORK/rootfs"
    mkdir -p "$IMAGE_WORK/rootfs"
    container="$(image_podman create "$(image_ref)")" || return 1
    image_podman export "$container" | tar -x --same-owner --numeric-owner -C "$IMAGE_WORK/rootfs"
    local status=$?
    image_podman rm "$container" >/dev/null
    [ "$status" = 0 ] || return 1
    image_podman image inspect --format '{{json .Config}}' "$(image_ref)" >"$IMAGE_WORK/config.json" || return 1
    image_podman image inspect --format '{{.Size}}' "$(image_ref)" >"$IMAGE_WORK/size"
    image_podman image inspect --format '{{.Size}}' "$IMAGE_BASE" >"$IMAGE_WORK/base-size"
}

# image_step NAME: run image_NAME; on success leave a mark in the cache, on failure record why.
image_step() {
    local step="$1"
    if "image_$step"; then
        mkdir -p "$IMAGE_CACHE/worked" && touch "$IMAGE_CACHE/worked/$step"
        return 0
    fi
    IPFIX_ANTREA_IMAGE_UNAVAILABLE="step '$step' failed on this machine"
    case "$step" in
        tools) IPFIX_ANTREA_IMAGE_UNAVAILABLE+=" (podman and mmdebstrap could not be installed from Debian)" ;;
        base) IPFIX_ANTREA_IMAGE_UNAVAILABLE+=" (mmdebstrap could not make the Debian base, or podman could not import it; see $IMAGE_WORK/mmdebstrap.log)" ;;
        build) IPFIX_ANTREA_IMAGE_UNAVAILABLE+=" (podman build --isolation chroot failed; see $IMAGE_WORK/build.log)" ;;
        export) IPFIX_ANTREA_IMAGE_UNAVAILABLE+=" (podman could not export the image's filesystem)" ;;
    esac
    if [ -e "$IMAGE_CACHE/worked/$step" ]; then
        IPFIX_ANTREA_IMAGE_UNAVAILABLE+=", although it worked here before"
        [ "${CI:-}" = "true" ] && export IPFIX_ANTREA_REQUIRE_IMAGE=1
    fi
    export IPFIX_ANTREA_IMAGE_UNAVAILABLE
    image_log "$IPFIX_ANTREA_IMAGE_UNAVAILABLE"
    return 1
}

# image_setup: every step; exports IPFIX_ANTREA_IMAGE_DIR (rootfs, config.json) or
# IPFIX_ANTREA_IMAGE_UNAVAILABLE. Never fails: the tests decide what a missing image means.
image_setup() {
    unset IPFIX_ANTREA_IMAGE_DIR IPFIX_ANTREA_IMAGE_UNAVAILABLE
    if [ "$(id -u)" != 0 ]; then
        export IPFIX_ANTREA_IMAGE_UNAVAILABLE="not root: mmdebstrap's root mode, podman's storage and chroot need root here"
        image_log "$IPFIX_ANTREA_IMAGE_UNAVAILABLE"
        return 0
    fi
    if [ -d "$IMAGE_WORK/storage" ]; then  # a previous run's images: unmount, then delete
        image_podman system reset --force >/dev/null 2>&1 || true
    fi
    rm -rf "$IMAGE_WORK"
    mkdir -p "$IMAGE_WORK"
    local step
    for step in tools base build export; do
        image_step "$step" || return 0
    done
    export IPFIX_ANTREA_IMAGE_DIR="$IMAGE_WORK"
    image_log "built $(image_ref): $(($(cat "$IMAGE_WORK/size") / 1000000)) MB on a" \
        "$(($(cat "$IMAGE_WORK/base-size") / 1000000)) MB base; unpacked in $IMAGE_WORK/rootfs"
}

# image_env: the variables for the tests, as shell export lines (after `setup`).
image_env() {
    if [ -s "$IMAGE_WORK/config.json" ]; then
        printf 'export IPFIX_ANTREA_IMAGE_DIR=%q\n' "$IMAGE_WORK"
    else
        echo "image.sh: no image in $IMAGE_WORK; run '$0 setup' first" >&2
        return 1
    fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    cd "$(dirname "$0")/.." || exit 1
    case "${1:-}" in
        setup) image_setup; [ -z "${IPFIX_ANTREA_IMAGE_UNAVAILABLE:-}" ] ;;
        env) image_env ;;
        clean) rm -rf "$IMAGE_WORK" ;;
        *) echo "usage: $0 setup|env|clean" >&2; exit 2 ;;
    esac
fi
