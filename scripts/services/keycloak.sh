# Keycloak for the tests, sourced by scripts/services.sh (which defines log, alive,
# pidof_file, stop_by_pid_file, java_home_at_least, apt_install, STATE and CACHE).
#
# The Quarkus distribution from Maven Central, run in dev mode on
# 127.0.0.1:$KEYCLOAK_PORT with an in-memory database, importing the realm
# `lake` (scripts/services/keycloak-realm.json: clients `dataflow`, `dataflow-short`
# with 3-second access tokens, `dataflow-refused`, `trino` for token introspection;
# user `alice`; login events kept) at every start. Each test uses its own client,
# so the events it reads back are its own. It needs Java 21 or newer.

KEYCLOAK_VERSION="${DATAFLOW_KEYCLOAK_VERSION:-26.5.6}"
KEYCLOAK_PORT="${DATAFLOW_KEYCLOAK_PORT:-18080}"
KEYCLOAK_ADMIN_PASSWORD="dataflow-test-admin"
KEYCLOAK_HOME="$CACHE/keycloak-$KEYCLOAK_VERSION"

install_keycloak() {
    if [ -x "$KEYCLOAK_HOME/bin/kc.sh" ]; then return; fi
    command -v mvn >/dev/null || apt_install maven
    local dir
    dir="$(mktemp -d)"
    log "downloading Keycloak $KEYCLOAK_VERSION from Maven Central"
    mvn -q -B -Dstyle.color=never dependency:copy \
        -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:tar.gz" \
        -DoutputDirectory="$dir" >&2
    tar -xzf "$dir/keycloak-quarkus-dist-$KEYCLOAK_VERSION.tar.gz" -C "$dir"
    rm -rf "$KEYCLOAK_HOME"
    mv "$dir/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_HOME"
    rm -rf "$dir"
}

start_keycloak() {
    if alive "$(pidof_file "$STATE/keycloak.pid")"; then
        log "Keycloak already running"
        return
    fi
    install_keycloak
    local java_home log_file="$STATE/keycloak.log"
    java_home="$(java_home_at_least 21 "Keycloak $KEYCLOAK_VERSION")"
    mkdir -p "$KEYCLOAK_HOME/data/import"
    cp "$ROOT/scripts/services/keycloak-realm.json" "$KEYCLOAK_HOME/data/import/lake.json"
    log "starting Keycloak $KEYCLOAK_VERSION on 127.0.0.1:$KEYCLOAK_PORT"
    JAVA_HOME="$java_home" JAVA_OPTS_KC_HEAP="-Xms64m -Xmx768m" \
        KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD="$KEYCLOAK_ADMIN_PASSWORD" \
        nohup "$KEYCLOAK_HOME/bin/kc.sh" start-dev --db=dev-mem \
        --http-host=127.0.0.1 --http-port="$KEYCLOAK_PORT" --import-realm \
        >"$log_file" 2>&1 &
    echo $! >"$STATE/keycloak.pid"
    for _ in $(seq 1 240); do
        if curl -sf "http://127.0.0.1:$KEYCLOAK_PORT/realms/lake/.well-known/openid-configuration" >/dev/null 2>&1; then
            return
        fi
        alive "$(pidof_file "$STATE/keycloak.pid")" || break
        sleep 0.5
    done
    log "Keycloak did not come up; the end of $log_file:"
    tail -30 "$log_file" >&2 || true
    exit 1
}

stop_keycloak() {
    # kc.sh passes the signal on to the server it started.
    stop_by_pid_file keycloak
}

keycloak_env() {
    echo "export DATAFLOW_TEST_KEYCLOAK_URL='http://127.0.0.1:$KEYCLOAK_PORT'"
    echo "export DATAFLOW_TEST_KEYCLOAK_ADMIN_PASSWORD='$KEYCLOAK_ADMIN_PASSWORD'"
}
