# An OCI registry for the `wasm.image` tests, sourced by scripts/services.sh
# (which defines log, alive, pidof_file, stop_by_pid_file, STATE and CACHE).
#
# CNCF Distribution's `registry` (the reference implementation of the OCI
# distribution spec, what Docker Hub and Harbor build on) and the `oras` client
# the tests push components with, both built from the Go module proxy once and
# cached. Two registries run over plain HTTP: one on 127.0.0.1:$REGISTRY_PORT
# with no authentication, and one on 127.0.0.1:$REGISTRY_AUTH_PORT that asks
# for a user and password (htpasswd, bcrypt, a password made at each start),
# as a private registry does. Each keeps its blobs under $STATE/<name>.

REGISTRY_VERSION="${DATAFLOW_REGISTRY_VERSION:-v3.1.2}"
ORAS_VERSION="${DATAFLOW_ORAS_VERSION:-v1.3.6}"
REGISTRY_PORT="${DATAFLOW_REGISTRY_PORT:-15000}"
REGISTRY_AUTH_PORT="${DATAFLOW_REGISTRY_AUTH_PORT:-15001}"
REGISTRY_AUTH_USER=dataflow
REGISTRY_BIN="$CACHE/registry-$REGISTRY_VERSION/registry"
ORAS_BIN="$CACHE/oras-$ORAS_VERSION/oras"

install_registry() {
    if ! command -v go >/dev/null 2>&1; then
        log "no Go toolchain: cannot build the OCI registry"
        return 1
    fi
    if [ ! -x "$REGISTRY_BIN" ]; then
        log "building registry $REGISTRY_VERSION from the Go module proxy (once)"
        GOBIN="$(dirname "$REGISTRY_BIN")" go install -trimpath -ldflags="-s -w" \
            "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" >&2
    fi
    if [ ! -x "$ORAS_BIN" ]; then
        log "building oras $ORAS_VERSION from the Go module proxy (once)"
        GOBIN="$(dirname "$ORAS_BIN")" go install -trimpath -ldflags="-s -w" \
            "oras.land/oras/cmd/oras@$ORAS_VERSION" >&2
    fi
}

# start_one_registry NAME PORT [AUTH]: one registry instance; AUTH is the
# YAML of its `auth:` section.
start_one_registry() {
    local name="$1" port="$2" auth="${3:-}"
    if alive "$(pidof_file "$STATE/$name.pid")"; then
        log "$name already running"
        return
    fi
    local dir="$STATE/$name"
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth
CONFIG
    # OpenTelemetry export is on by default in v3; nothing here collects it.
    OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        setsid "$REGISTRY_BIN" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
    for _ in $(seq 1 120); do
        # Any HTTP answer (200, or 401 from the one that asks for a password)
        # will do, but answering is not enough: another process may hold the
        # port, and ours then exits at once.
        local code
        code="$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/" 2>/dev/null || true)"
        if [ "$code" = 200 ] || [ "$code" = 401 ]; then
            sleep 0.5
            if alive "$(pidof_file "$STATE/$name.pid")"; then return; fi
            break
        fi
        if ! alive "$(pidof_file "$STATE/$name.pid")"; then break; fi
        sleep 0.25
    done
    log "$name did not start; its log:"
    tail -20 "$dir/registry.log" >&2 || true
    exit 1
}

start_registry() {
    install_registry
    start_one_registry registry "$REGISTRY_PORT"
    local dir="$STATE/registry-auth"
    mkdir -p "$dir"
    if [ ! -s "$dir/password" ] || ! alive "$(pidof_file "$STATE/registry-auth.pid")"; then
        python3 -c 'import secrets; print(secrets.token_hex(16))' >"$dir/password"
        # The registry reads bcrypt only; Python's crypt (libxcrypt) makes it.
        python3 -W ignore -c 'import crypt, sys; print(sys.argv[1] + ":" + crypt.crypt(open(sys.argv[2]).read().strip(), crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
            "$REGISTRY_AUTH_USER" "$dir/password" >"$dir/htpasswd"
    fi
    start_one_registry registry-auth "$REGISTRY_AUTH_PORT" "auth:
  htpasswd:
    realm: dataflow-test
    path: $dir/htpasswd"
}

stop_registry() {
    stop_by_pid_file registry
    stop_by_pid_file registry-auth
}

registry_env() {
    echo "export DATAFLOW_TEST_OCI_REGISTRY='127.0.0.1:$REGISTRY_PORT'"
    echo "export DATAFLOW_TEST_ORAS='$ORAS_BIN'"
    echo "export DATAFLOW_TEST_OCI_AUTH_REGISTRY='127.0.0.1:$REGISTRY_AUTH_PORT'"
    echo "export DATAFLOW_TEST_OCI_AUTH_USER='$REGISTRY_AUTH_USER'"
    echo "export DATAFLOW_TEST_OCI_AUTH_PASSWORD='$(cat "$STATE/registry-auth/password" 2>/dev/null)'"
}
