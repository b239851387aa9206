# Nessie on S3 for the tests, sourced by scripts/services.sh (which defines log,
# alive, pidof_file, stop_by_pid_file, java_home_at_least, apt_install, STATE and CACHE).
#
#   s3proxy  127.0.0.1:$S3_PORT     S3 API (AWS signatures, one access key) over a
#                                   local directory; bucket `$S3_BUCKET`
#   Nessie   127.0.0.1:$NESSIE_PORT in-memory version store; its Iceberg REST
#                                   catalog keeps tables under s3://$S3_BUCKET/
#
# Both are jars from Maven Central. Nessie's server (`nessie-quarkus`, runner) is
# published there only up to 0.99.0; later versions are on GitHub only. It needs
# Java 21 or newer. Both start empty: the S3 directory is wiped when s3proxy starts.

NESSIE_VERSION="${DATAFLOW_NESSIE_VERSION:-0.99.0}"
S3PROXY_VERSION="${DATAFLOW_S3PROXY_VERSION:-2.6.0}"
NESSIE_PORT="${DATAFLOW_NESSIE_PORT:-19120}"
S3_PORT="${DATAFLOW_S3_PORT:-19900}"
S3_BUCKET="lake"
S3_ACCESS_KEY="dataflow"
S3_SECRET_KEY="dataflow-s3-secret"
NESSIE_JARS="$CACHE/nessie-$NESSIE_VERSION-s3proxy-$S3PROXY_VERSION"

install_nessie() {
    if [ -e "$NESSIE_JARS/.complete" ]; then return; fi
    command -v mvn >/dev/null || apt_install maven
    mkdir -p "$NESSIE_JARS"
    log "downloading Nessie $NESSIE_VERSION and s3proxy $S3PROXY_VERSION from Maven Central"
    local artifact
    for artifact in "org.projectnessie.nessie:nessie-quarkus:$NESSIE_VERSION:jar:runner" \
        "org.gaul:s3proxy:$S3PROXY_VERSION:jar:jar-with-dependencies"; do
        mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$artifact" \
            -DoutputDirectory="$NESSIE_JARS" >&2
    done
    touch "$NESSIE_JARS/.complete"
}

# Waits until `url` answers; otherwise fails with the end of `log_file`.
nessie_wait() {
    local name="$1" url="$2" pid_file="$3" log_file="$4"
    for _ in $(seq 1 240); do
        if curl -s -o /dev/null "$url"; then return; fi
        alive "$(pidof_file "$pid_file")" || break
        sleep 0.25
    done
    log "$name did not come up; the end of $log_file:"
    tail -30 "$log_file" >&2 || true
    exit 1
}

start_s3proxy() {
    if alive "$(pidof_file "$STATE/s3proxy.pid")"; then
        log "s3proxy already running"
        return
    fi
    local dir="$STATE/s3"
    rm -rf "$dir"
    mkdir -p "$dir/data"
    cat >"$dir/s3proxy.conf" <<CONF
s3proxy.endpoint=http://127.0.0.1:$S3_PORT
s3proxy.authorization=aws-v2-or-v4
s3proxy.identity=$S3_ACCESS_KEY
s3proxy.credential=$S3_SECRET_KEY
jclouds.provider=filesystem
jclouds.filesystem.basedir=$dir/data
CONF
    log "starting s3proxy $S3PROXY_VERSION on 127.0.0.1:$S3_PORT"
    nohup java -Xmx256m -jar "$NESSIE_JARS/s3proxy-$S3PROXY_VERSION-jar-with-dependencies.jar" \
        --properties "$dir/s3proxy.conf" >"$dir/log" 2>&1 &
    echo $! >"$STATE/s3proxy.pid"
    nessie_wait s3proxy "http://127.0.0.1:$S3_PORT/" "$STATE/s3proxy.pid" "$dir/log"
    # s3proxy needs the payload hash header even for an empty body.
    curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        -H "x-amz-content-sha256: $(printf '' | sha256sum | cut -d' ' -f1)" \
        -X PUT "http://127.0.0.1:$S3_PORT/$S3_BUCKET" >/dev/null \
        || { log "s3proxy refused to create bucket $S3_BUCKET"; tail -20 "$dir/log" >&2; exit 1; }
}

start_nessie_server() {
    if alive "$(pidof_file "$STATE/nessie.pid")"; then
        log "Nessie already running"
        return
    fi
    local java_home log_file="$STATE/nessie.log"
    java_home="$(java_home_at_least 21 "Nessie $NESSIE_VERSION")"
    log "starting Nessie $NESSIE_VERSION on 127.0.0.1:$NESSIE_PORT"
    # The S3 key reaches Nessie as a Quarkus property that a secret URN names.
    nohup "$java_home/bin/java" -Xmx512m \
        -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$NESSIE_PORT" \
        -Dquarkus.management.port=$((NESSIE_PORT + 1)) -Dquarkus.management.host=127.0.0.1 \
        -Dnessie.version.store.type=IN_MEMORY \
        -Dnessie.catalog.default-warehouse=lake \
        -Dnessie.catalog.warehouses.lake.location="s3://$S3_BUCKET/" \
        -Dnessie.catalog.service.s3.default-options.endpoint="http://127.0.0.1:$S3_PORT/" \
        -Dnessie.catalog.service.s3.default-options.path-style-access=true \
        -Dnessie.catalog.service.s3.default-options.region=us-east-1 \
        -Dnessie.catalog.service.s3.default-options.access-key=urn:nessie-secret:quarkus:dataflow-s3 \
        -Ddataflow-s3.name="$S3_ACCESS_KEY" -Ddataflow-s3.secret="$S3_SECRET_KEY" \
        -jar "$NESSIE_JARS/nessie-quarkus-$NESSIE_VERSION-runner.jar" >"$log_file" 2>&1 &
    echo $! >"$STATE/nessie.pid"
    nessie_wait Nessie "http://127.0.0.1:$NESSIE_PORT/api/v2/config" "$STATE/nessie.pid" "$log_file"
}

start_nessie() {
    install_nessie
    start_s3proxy
    start_nessie_server
}

stop_nessie() {
    stop_by_pid_file nessie
    stop_by_pid_file s3proxy
}

nessie_env() {
    echo "export DATAFLOW_TEST_NESSIE_URL='http://127.0.0.1:$NESSIE_PORT'"
    echo "export DATAFLOW_TEST_S3_ENDPOINT='http://127.0.0.1:$S3_PORT'"
    echo "export DATAFLOW_TEST_S3_BUCKET='$S3_BUCKET'"
    echo "export DATAFLOW_TEST_S3_ACCESS_KEY='$S3_ACCESS_KEY'"
    echo "export DATAFLOW_TEST_S3_SECRET_KEY='$S3_SECRET_KEY'"
}
