#!/usr/bin/env bash
# A throwaway single-node Elasticsearch for the Elasticsearch sink's tests and benchmark.
#
# Two ways to use this file:
#
#   source .ci/elasticsearch.sh && es_setup     # what .ci/run does: download, install, start,
#                                               # wait, export IPFIX_ANTREA_ES_* for the tests
#   .ci/elasticsearch.sh setup|start|stop|kill|status|env|remove
#                                               # the same as a command; the tests call
#                                               # start/stop/kill to restart the server mid-stream
#
# The server is the integ-test-zip distribution from Maven Central (a small build: the server,
# netty and x-pack security, no bundled JDK), so it runs on a JDK found under /usr/lib/jvm:
# a 9.x needs Java 21 or later, an 8.x Java 17 or later. The zip is cached under
# $HOME/.cache/ipfix-antrea/elasticsearch and checked against a pinned SHA-512 (Maven Central
# publishes no checksums for the 9.x integ-test zips). The server listens on 127.0.0.1 only, with
# a small heap, security on and one superuser in the file realm (the tests exercise basic auth and
# API keys). Elasticsearch refuses to run as root: as root, this script creates a system user
# for it and runs it as that user; as anyone else, it runs as you.
#
# Settings (environment, with defaults):
#   IPFIX_ES_VERSION   9.2.0                      which Elasticsearch (a key of es_sha512 below)
#   IPFIX_ES_PORT      19200                      HTTP port (transport: +100); not 9200, to keep
#                                                 clear of a developer's own server
#   IPFIX_ES_HEAP      512m                       -Xms and -Xmx
#   IPFIX_ES_RUN_DIR   ${TMPDIR:-/tmp}/ipfix-antrea-es-$PORT   install, config, data, logs, pid
#   IPFIX_ES_OS_USER   ipfix-es when root, else you
#   IPFIX_ES_USERNAME  ipfix                      the Elasticsearch superuser the tests use
#   IPFIX_ES_PASSWORD  ipfix-antrea-tests         (a loopback test server: not a secret)
#   IPFIX_ES_JAVA_HOME the newest JDK under /usr/lib/jvm that the version needs
#   IPFIX_ES_CACHE     $HOME/.cache/ipfix-antrea/elasticsearch

: "${IPFIX_ES_VERSION:=9.2.0}"
: "${IPFIX_ES_PORT:=19200}"
: "${IPFIX_ES_HEAP:=512m}"
: "${IPFIX_ES_RUN_DIR:=${TMPDIR:-/tmp}/ipfix-antrea-es-${IPFIX_ES_PORT}}"
: "${IPFIX_ES_USERNAME:=ipfix}"
: "${IPFIX_ES_PASSWORD:=ipfix-antrea-tests}"
: "${IPFIX_ES_CACHE:=${HOME:-/root}/.cache/ipfix-antrea/elasticsearch}"
if [ "$(id -u)" = 0 ]; then
    : "${IPFIX_ES_OS_USER:=ipfix-es}"
else
    : "${IPFIX_ES_OS_USER:=$(id -un)}"
fi

ES_MAVEN_URL=https://repo1.maven.org/maven2/org/elasticsearch/distribution/integ-test-zip/elasticsearch

# es_sha512 VERSION: the pinned SHA-512 of elasticsearch-VERSION.zip (integ-test-zip).
es_sha512() {
    case "$1" in
        9.2.0) echo 2c624e913bb8712fb1698fc1ab3a241c868228183f089ff3cde17ad7bc7b5a9663454c2af939c65e075663826371e3d4344dca43a55a8aab9594f9a64b01d2c7 ;;
        8.19.21) echo cf6b0a93860d329937ae7f913ec5073b0c726c77639764b93fc83a304aa1dd9d4defcfa2849948eea3b0b47c2065f994908603939fc2a4774c9c4d868c5ec1dd ;;
        *) echo "elasticsearch.sh: no pinned checksum for Elasticsearch $1; add one to es_sha512" >&2
           return 1 ;;
    esac
}

es_log() { printf '[elasticsearch] %s\n' "$*" >&2; }

es_home() { echo "$IPFIX_ES_RUN_DIR/elasticsearch-$IPFIX_ES_VERSION"; }
es_url() { echo "http://127.0.0.1:$IPFIX_ES_PORT"; }

# es_download: the zip into the cache (once), checked against its pinned SHA-512.
es_download() {
    local zip="$IPFIX_ES_CACHE/elasticsearch-$IPFIX_ES_VERSION.zip" want
    want="$(es_sha512 "$IPFIX_ES_VERSION")" || return 1
    mkdir -p "$IPFIX_ES_CACHE"
    if [ -f "$zip" ] && echo "$want  $zip" | sha512sum --check --status; then
        es_log "cached: $zip"
    else
        es_log "downloading Elasticsearch $IPFIX_ES_VERSION from Maven Central"
        curl --fail --silent --show-error --location --retry 3 -o "$zip.part" \
            "$ES_MAVEN_URL/$IPFIX_ES_VERSION/elasticsearch-$IPFIX_ES_VERSION.zip" || return 1
        if ! echo "$want  $zip.part" | sha512sum --check --status; then
            es_log "checksum mismatch for $zip.part"
            return 1
        fi
        mv "$zip.part" "$zip"
    fi
    echo "$zip"
}

# es_java_home: a JDK under /usr/lib/jvm for this version: for 9.x the newest one >= 21 (what
# 9.x is built and tested with), for 8.x the oldest one >= 17 (the version every 8.x supports;
# a newer JDK may be newer than the 8.x release knows).
es_java_home() {
    if [ -n "${IPFIX_ES_JAVA_HOME:-}" ]; then
        echo "$IPFIX_ES_JAVA_HOME"
        return
    fi
    local need=17 prefer=oldest best="" best_major=0 dir major
    if [ "${IPFIX_ES_VERSION%%.*}" -ge 9 ]; then
        need=21 prefer=newest
    fi
    for dir in /usr/lib/jvm/*/; do
        dir="${dir%/}"
        [ -x "$dir/bin/java" ] && [ ! -L "$dir" ] || continue
        major="$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$dir/release" 2>/dev/null || true)"
        [ -n "$major" ] && [ "$major" -ge "$need" ] || continue
        if [ -z "$best" ] || { [ "$prefer" = newest ] && [ "$major" -gt "$best_major" ]; } ||
            { [ "$prefer" = oldest ] && [ "$major" -lt "$best_major" ]; }; then
            best="$dir" best_major="$major"
        fi
    done
    if [ -z "$best" ]; then
        es_log "Elasticsearch $IPFIX_ES_VERSION needs a JDK >= $need under /usr/lib/jvm; none found"
        return 1
    fi
    echo "$best"
}

# es_as_user CMD...: run CMD as the server's OS user (the same user when not root).
es_as_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$IPFIX_ES_OS_USER" -- "$@"
    else
        "$@"
    fi
}

# es_install: unpack into the run directory, write the configuration, create the superuser.
# Needs curl and unzip (Debian: apt-get install curl unzip).
es_install() {
    local zip home conf java
    if es_pid >/dev/null; then
        es_log "already running from $IPFIX_ES_RUN_DIR; not reinstalling"
        return 0
    fi
    zip="$(es_download)" || return 1
    java="$(es_java_home)" || return 1
    home="$(es_home)"
    conf="$IPFIX_ES_RUN_DIR/config"
    if [ "$(id -u)" = 0 ] && ! id -u "$IPFIX_ES_OS_USER" >/dev/null 2>&1; then
        es_log "creating system user $IPFIX_ES_OS_USER"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            "$IPFIX_ES_OS_USER" || return 1
    fi
    mkdir -p "$IPFIX_ES_RUN_DIR"
    if [ ! -x "$home/bin/elasticsearch" ]; then
        es_log "unpacking into $IPFIX_ES_RUN_DIR"
        unzip -q -o "$zip" -d "$IPFIX_ES_RUN_DIR" || return 1
    fi
    rm -rf "$conf"
    cp -r "$home/config" "$conf"
    cat >"$conf/elasticsearch.yml" <<EOF
cluster.name: ipfix-antrea-tests
node.name: node-1
path.data: $IPFIX_ES_RUN_DIR/data
path.logs: $IPFIX_ES_RUN_DIR/logs
network.host: 127.0.0.1
http.port: $IPFIX_ES_PORT
transport.port: $((IPFIX_ES_PORT + 100))
discovery.type: single-node
xpack.security.enabled: true
xpack.security.http.ssl.enabled: false
xpack.security.transport.ssl.enabled: false
xpack.security.authc.api_key.enabled: true
# CI disks can be nearly full; a read-only index block would fail the tests for no reason
cluster.routing.allocation.disk.threshold_enabled: false
# the tests delete their indices by pattern
action.destructive_requires_name: false
EOF
    printf -- '-Xms%s\n-Xmx%s\n' "$IPFIX_ES_HEAP" "$IPFIX_ES_HEAP" >"$conf/jvm.options.d/heap.options"
    mkdir -p "$IPFIX_ES_RUN_DIR/data" "$IPFIX_ES_RUN_DIR/logs"
    if [ "$(id -u)" = 0 ]; then
        chown -R "$IPFIX_ES_OS_USER:" "$IPFIX_ES_RUN_DIR"
    fi
    es_as_user env ES_JAVA_HOME="$java" ES_PATH_CONF="$conf" \
        "$home/bin/elasticsearch-users" useradd "$IPFIX_ES_USERNAME" \
        -p "$IPFIX_ES_PASSWORD" -r superuser >/dev/null || return 1
}

es_pid() {
    local pid
    pid="$(cat "$IPFIX_ES_RUN_DIR/elasticsearch.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# es_wait [SECONDS]: until the cluster answers green or yellow (default: 180 s).
es_wait() {
    local deadline=$((SECONDS + ${1:-180}))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if curl --silent --fail -u "$IPFIX_ES_USERNAME:$IPFIX_ES_PASSWORD" -o /dev/null \
            "$(es_url)/_cluster/health?wait_for_status=yellow&timeout=1s"; then
            return 0
        fi
        if ! es_pid >/dev/null; then
            es_log "Elasticsearch exited; the end of its console output and log:"
            tail -n 20 "$IPFIX_ES_RUN_DIR/console.log" >&2 2>/dev/null
            tail -n 40 "$IPFIX_ES_RUN_DIR/logs/ipfix-antrea-tests.log" >&2 2>/dev/null
            return 1
        fi
        sleep 1
    done
    es_log "Elasticsearch did not answer at $(es_url) within ${1:-180} s"
    return 1
}

# es_start: start the installed server in the background (no-op if running) and wait for it.
es_start() {
    local java
    if es_pid >/dev/null; then
        es_wait
        return
    fi
    java="$(es_java_home)" || return 1
    rm -f "$IPFIX_ES_RUN_DIR/elasticsearch.pid"
    es_log "starting Elasticsearch $IPFIX_ES_VERSION on $(es_url) (heap $IPFIX_ES_HEAP, JDK $java)"
    # setsid and no inherited output: the server must neither hold the caller's pipes open (a CI
    # log, `pytest | tail` would wait for it) nor get the caller's signals (Ctrl-C, timeout).
    es_as_user env ES_JAVA_HOME="$java" ES_PATH_CONF="$IPFIX_ES_RUN_DIR/config" \
        setsid "$(es_home)/bin/elasticsearch" --daemonize \
        --pidfile "$IPFIX_ES_RUN_DIR/elasticsearch.pid" \
        </dev/null >"$IPFIX_ES_RUN_DIR/console.log" 2>&1 || {
        es_log "Elasticsearch did not start:"
        tail -n 40 "$IPFIX_ES_RUN_DIR/console.log" >&2
        return 1
    }
    es_wait
}

# es_stop [SIGNAL]: stop the server (TERM: a clean shutdown; KILL: a crash) and wait for it to go.
es_stop() {
    local pid signal="${1:-TERM}" i
    pid="$(es_pid)" || return 0
    kill -s "$signal" "$pid"
    for i in $(seq 1 120); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    es_log "Elasticsearch (pid $pid) ignored SIG$signal for 60 s; killing it"
    kill -s KILL "$pid"
}

# es_env: the variables the tests and the benchmark read, as shell export lines.
es_env() {
    printf 'export IPFIX_ANTREA_ES_URL=%q\n' "$(es_url)"
    printf 'export IPFIX_ANTREA_ES_USER=%q\n' "$IPFIX_ES_USERNAME"
    printf 'export IPFIX_ANTREA_ES_PASSWORD=%q\n' "$IPFIX_ES_PASSWORD"
    printf 'export IPFIX_ANTREA_ES_CONTROL=%q\n' "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/elasticsearch.sh"
    # the control commands run by the tests must find the same server
    printf 'export IPFIX_ES_VERSION=%q IPFIX_ES_PORT=%q IPFIX_ES_RUN_DIR=%q\n' \
        "$IPFIX_ES_VERSION" "$IPFIX_ES_PORT" "$IPFIX_ES_RUN_DIR"
}

# es_setup: download, install, start, wait, and export the variables into this shell.
es_setup() {
    es_install || return 1
    es_start || return 1
    eval "$(es_env)"
    # (not GET /: the integ-test zip has no handler for it)
    es_log "ready: $IPFIX_ANTREA_ES_URL (Elasticsearch $(curl --silent \
        -u "$IPFIX_ES_USERNAME:$IPFIX_ES_PASSWORD" "$IPFIX_ANTREA_ES_URL/_nodes/_local?filter_path=nodes.*.version" \
        | sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p'))"
}

# es_remove: stop the server and delete its run directory (the download cache stays).
es_remove() {
    es_stop TERM
    rm -rf "$IPFIX_ES_RUN_DIR"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -uo pipefail
    case "${1:-}" in
        setup) es_install && es_start && es_env ;;
        start) es_start ;;
        stop) es_stop TERM ;;
        kill) es_stop KILL ;;
        status) if pid="$(es_pid)"; then echo "running (pid $pid) at $(es_url)"; else echo "stopped"; exit 1; fi ;;
        env) es_env ;;
        remove) es_remove ;;
        *) echo "usage: $0 setup|start|stop|kill|status|env|remove" >&2; exit 2 ;;
    esac
fi
