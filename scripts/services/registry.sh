# An OCI registry for the `wasm.image` tests, sourced by scripts/services.sh
# (which defines log, alive, pidof_file, stop_by_pid_file, STATE and CACHE).
#
# CNCF Distribution's `registry` (the reference implementation of the OCI
# distribution spec, what Docker Hub and Harbor build on) and the `oras` client
# the tests push components with, both built from the Go module proxy once and
# cached. The registry listens on 127.0.0.1:$REGISTRY_PORT over plain HTTP with
# no authentication and keeps its blobs under $STATE/registry.

REGISTRY_VERSION="${DATAFLOW_REGISTRY_VERSION:-v3.1.2}"
ORAS_VERSION="${DATAFLOW_ORAS_VERSION:-v1.3.6}"
REGISTRY_PORT="${DATAFLOW_REGISTRY_PORT:-15000}"
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

start_registry() {
    if alive "$(pidof_file "$STATE/registry.pid")"; then
        log "registry already running"
        return
    fi
    install_registry
    local dir="$STATE/registry"
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
  addr: 127.0.0.1:$REGISTRY_PORT
CONFIG
    # OpenTelemetry export is on by default in v3; nothing here collects it.
    OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none \
        setsid "$REGISTRY_BIN" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$STATE/registry.pid"
    for _ in $(seq 1 120); do
        # Answering is not enough: another process may hold the port, and ours
        # then exits at once.
        if curl -fsS "http://127.0.0.1:$REGISTRY_PORT/v2/" >/dev/null 2>&1; then
            sleep 0.5
            if alive "$(pidof_file "$STATE/registry.pid")"; then return; fi
            break
        fi
        if ! alive "$(pidof_file "$STATE/registry.pid")"; then break; fi
        sleep 0.25
    done
    log "the registry did not start; its log:"
    tail -20 "$dir/registry.log" >&2 || true
    exit 1
}

stop_registry() {
    stop_by_pid_file registry
}

registry_env() {
    echo "export DATAFLOW_TEST_OCI_REGISTRY='127.0.0.1:$REGISTRY_PORT'"
    echo "export DATAFLOW_TEST_ORAS='$ORAS_BIN'"
}
