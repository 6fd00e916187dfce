# Sourced by .ci/run (bash, from the repository root, after its log and run helpers).
#
# build_go_exporter: build tests/goexporter, the go-ipfix exporter that
# tests/test_goipfix_interop.py runs against ipfix-collect, and export its path
# as IPFIX_ANTREA_GOEXPORTER for the tests.  The module's go.mod and go.sum are
# committed, and the build is -mod=readonly: CI fetches exactly the pinned
# modules from the module proxy and never rewrites go.mod or go.sum.  The binary
# goes to build/goexporter/ (build/ is gitignored).  Without go the function
# fails, so CI cannot go green by skipping the interop tests.

GOEXPORTER_BIN="${GOEXPORTER_BIN:-$PWD/build/goexporter/goexporter}"

build_go_exporter() {
    log "go-ipfix exporter for the interop tests (tests/goexporter)"
    if ! command -v go >/dev/null; then
        echo "error: go is not on PATH; it is needed to build tests/goexporter" \
             "(go-ipfix interop tests)" >&2
        return 1
    fi
    run go version
    # -buildvcs=false: no VCS stamp, so a clone owned by another user cannot fail the build.
    (cd tests/goexporter \
        && run go build -mod=readonly -trimpath -buildvcs=false -o "$GOEXPORTER_BIN" .) \
        || { echo "error: building tests/goexporter failed" >&2; return 1; }
    export IPFIX_ANTREA_GOEXPORTER="$GOEXPORTER_BIN"
    echo "IPFIX_ANTREA_GOEXPORTER=$IPFIX_ANTREA_GOEXPORTER"
}
