# Trino for the tests, sourced by scripts/services.sh (which defines log, alive,
# pidof_file, stop_by_pid_file, java_home_at_least, apt_install, localhost_certificate,
# STATE and CACHE).
#
# The server tarball from Maven Central (`io.trino:trino-server`, 476 is the
# newest there; 780 MiB, downloaded once), kept with only the `memory` connector
# (its other plugins are most of the size and of the start time): one coordinator
# on 127.0.0.1, catalog `lake` in memory, HTTPS on $TRINO_HTTPS_PORT (a
# certificate for 127.0.0.1 and localhost from a CA made with openssl) with JWT
# authentication against the test Keycloak's realm keys. Trino authenticates on
# HTTPS only: plain HTTP on $TRINO_PORT stays for its own internal calls and takes
# an X-Trino-User header instead. It needs Java 24 or newer and starts empty.

TRINO_VERSION="${DATAFLOW_TRINO_VERSION:-476}"
TRINO_PORT="${DATAFLOW_TRINO_PORT:-18081}"
TRINO_HTTPS_PORT="${DATAFLOW_TRINO_HTTPS_PORT:-18443}"
TRINO_HOME="$CACHE/trino-$TRINO_VERSION-memory"

install_trino() {
    if [ -x "$TRINO_HOME/bin/launcher" ]; then return; fi
    command -v mvn >/dev/null || apt_install maven
    local dir
    dir="$(mktemp -d)"
    log "downloading Trino $TRINO_VERSION from Maven Central (once, 780 MiB)"
    mvn -q -B -Dstyle.color=never dependency:copy \
        -Dartifact="io.trino:trino-server:$TRINO_VERSION:tar.gz" -DoutputDirectory="$dir" >&2
    tar -xzf "$dir/trino-server-$TRINO_VERSION.tar.gz" -C "$dir" \
        "trino-server-$TRINO_VERSION/bin" "trino-server-$TRINO_VERSION/lib" \
        "trino-server-$TRINO_VERSION/plugin/memory"
    rm -rf "$TRINO_HOME"
    mv "$dir/trino-server-$TRINO_VERSION" "$TRINO_HOME"
    rm -rf "$dir" "$HOME/.m2/repository/io/trino/trino-server/$TRINO_VERSION"
}

trino_certificates() {
    local dir="$STATE/trino-tls"
    if [ -s "$dir/server.pem" ]; then return; fi
    localhost_certificate "$dir" dataflow-test-trino-ca
    # Trino reads its key and certificate from one PEM file.
    cat "$dir/server.key" "$dir/server.crt" >"$dir/server.pem.tmp" && mv "$dir/server.pem.tmp" "$dir/server.pem"
}

start_trino() {
    if alive "$(pidof_file "$STATE/trino.pid")"; then
        log "Trino already running"
        return
    fi
    install_trino
    trino_certificates
    local java_home etc="$STATE/trino/etc" log_file="$STATE/trino/server.log"
    java_home="$(java_home_at_least 24 "Trino $TRINO_VERSION")"
    rm -rf "$STATE/trino"
    mkdir -p "$etc/catalog" "$STATE/trino/data"
    printf 'node.environment=test\nnode.id=dataflow-test\nnode.bind-ip=127.0.0.1\nnode.internal-address=127.0.0.1\nnode.data-dir=%s\n' \
        "$STATE/trino/data" >"$etc/node.properties"
    printf '%s\n' -server -Xmx1G -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError \
        -Djdk.attach.allowAttachSelf=true >"$etc/jvm.config"
    cat >"$etc/config.properties" <<PROPERTIES
coordinator=true
node-scheduler.include-coordinator=true
http-server.http.port=$TRINO_PORT
discovery.uri=http://127.0.0.1:$TRINO_PORT
query.max-memory=256MB
query.max-memory-per-node=256MB
http-server.authentication.type=JWT
http-server.authentication.jwt.key-file=http://127.0.0.1:$KEYCLOAK_PORT/realms/lake/protocol/openid-connect/certs
http-server.authentication.allow-insecure-over-http=true
http-server.https.enabled=true
http-server.https.port=$TRINO_HTTPS_PORT
http-server.https.keystore.path=$STATE/trino-tls/server.pem
internal-communication.shared-secret=dataflow-test-internal-secret
PROPERTIES
    echo "connector.name=memory" >"$etc/catalog/lake.properties"
    log "starting Trino $TRINO_VERSION on 127.0.0.1:$TRINO_PORT"
    JAVA_HOME="$java_home" PATH="$java_home/bin:$PATH" nohup "$TRINO_HOME/bin/launcher" run \
        --etc-dir "$etc" --data-dir "$STATE/trino/data" >"$log_file" 2>&1 &
    echo $! >"$STATE/trino.pid"
    for _ in $(seq 1 240); do
        if curl -sf "http://127.0.0.1:$TRINO_PORT/v1/info" 2>/dev/null | grep -q '"starting":false'; then
            return
        fi
        alive "$(pidof_file "$STATE/trino.pid")" || break
        sleep 0.5
    done
    log "Trino did not come up; the end of $log_file:"
    tail -30 "$log_file" >&2 || true
    exit 1
}

stop_trino() {
    stop_by_pid_file trino
}

trino_env() {
    echo "export DATAFLOW_TEST_TRINO_URL='https://localhost:$TRINO_HTTPS_PORT'"
    echo "export DATAFLOW_TEST_TRINO_CA='$STATE/trino-tls/ca.pem'"
}
