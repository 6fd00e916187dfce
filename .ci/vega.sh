# Sourced by .ci/run (bash, from the repository root, after its log, run and apt_install helpers).
#
# install_vega_renderer: what the dashboard pictures need (tests/dashboard_preview.py):
# npm's vega, pinned by tests/vega/package-lock.json and installed with `npm ci` (exactly the
# locked versions, never a rewritten lock), and rsvg-convert (Debian librsvg2-bin) with the
# DejaVu fonts the pictures name. Node.js and npm come from Debian when the machine lacks them.
# Exports IPFIX_ANTREA_REQUIRE_VEGA=1 under CI, so the rendering tests fail instead of skipping
# when any of it is missing.

install_vega_renderer() {
    log "Vega renderer for the dashboard pictures (tests/vega, rsvg-convert)"
    local want=()
    command -v rsvg-convert >/dev/null || want+=(librsvg2-bin)
    [ -d /usr/share/fonts/truetype/dejavu ] || want+=(fonts-dejavu-core)
    command -v npm >/dev/null || want+=(nodejs npm)
    if [ "${#want[@]}" -gt 0 ]; then
        apt_install "${want[@]}"
    fi
    run node --version
    (cd tests/vega && run npm ci --no-audit --no-fund) \
        || { echo "error: npm ci in tests/vega failed" >&2; return 1; }
    if [ "${CI:-}" = "true" ]; then
        export IPFIX_ANTREA_REQUIRE_VEGA=1
        echo "IPFIX_ANTREA_REQUIRE_VEGA=1"
    fi
}
