# A Schema Registry speaking the Confluent REST API for the Avro tests, sourced by
# scripts/services.sh (which defines log, alive, pidof_file, stop_by_pid_file,
# apt_install, localhost_certificate, STATE and CACHE).
#
# Apicurio Registry 2.0.2.Final, the application module from Maven Central, with
# its Confluent-compatible API under /apis/ccompat/v6. Apicurio publishes the
# module as a library; the Quarkus Maven plugin of the Quarkus it was made with
# (1.12.2) turns it into a runnable jar here, once, cached under $CACHE. Newer
# Apicurio releases and its Kafka storage module depend on artifacts Maven Central
# does not serve, and its JSON Schema support on a JitPack-only library (left out:
# the tests use Avro), so this one keeps its schemas in an in-memory H2 database.
# It serves HTTP on $SCHEMA_REGISTRY_PORT and HTTPS on $SCHEMA_REGISTRY_TLS_PORT
# (a certificate for 127.0.0.1 and localhost from a CA made with openssl). It
# starts empty; the tests register the schemas they use.

SCHEMA_REGISTRY_VERSION="2.0.2.Final"
SCHEMA_REGISTRY_QUARKUS="1.12.2.Final"
SCHEMA_REGISTRY_PORT="${DATAFLOW_SCHEMA_REGISTRY_PORT:-18085}"
SCHEMA_REGISTRY_TLS_PORT="${DATAFLOW_SCHEMA_REGISTRY_TLS_PORT:-18086}"
SCHEMA_REGISTRY_HOME="$CACHE/apicurio-registry-$SCHEMA_REGISTRY_VERSION"

install_schema_registry() {
    if [ -s "$SCHEMA_REGISTRY_HOME/registry-runner.jar" ]; then return; fi
    command -v mvn >/dev/null || apt_install maven
    command -v unzip >/dev/null || apt_install unzip
    local dir app="io.apicurio:apicurio-registry-app:$SCHEMA_REGISTRY_VERSION"
    dir="$(mktemp -d)"
    log "building Apicurio Registry $SCHEMA_REGISTRY_VERSION from Maven Central (once)"
    mkdir -p "$dir/src/main/resources"
    cat >"$dir/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.dataflow.test</groupId>
  <artifactId>registry</artifactId>
  <version>1</version>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-registry</artifactId>
        <version>$SCHEMA_REGISTRY_VERSION</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.apicurio</groupId>
      <artifactId>apicurio-registry-app</artifactId>
      <version>$SCHEMA_REGISTRY_VERSION</version>
      <exclusions>
        <exclusion>
          <groupId>com.github.everit-org.json-schema</groupId>
          <artifactId>org.everit.json.schema</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>io.quarkus</groupId>
        <artifactId>quarkus-maven-plugin</artifactId>
        <version>$SCHEMA_REGISTRY_QUARKUS</version>
        <executions><execution><goals><goal>build</goal></goals></execution></executions>
      </plugin>
    </plugins>
  </build>
</project>
POM
    mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="$app" -DoutputDirectory="$dir/app" >&2
    # The application's own configuration, plus what a build from outside its
    # repository needs: its classes indexed for CDI, and no native-image settings.
    unzip -p "$dir/app/apicurio-registry-app-$SCHEMA_REGISTRY_VERSION.jar" application.properties \
        >"$dir/src/main/resources/application.properties"
    cat >>"$dir/src/main/resources/application.properties" <<'PROPERTIES'
quarkus.native.builder-image=none
quarkus.index-dependency.registry-app.group-id=io.apicurio
quarkus.index-dependency.registry-app.artifact-id=apicurio-registry-app
quarkus.index-dependency.registry-common.group-id=io.apicurio
quarkus.index-dependency.registry-common.artifact-id=apicurio-registry-common
PROPERTIES
    (cd "$dir" && mvn -q -B -Dstyle.color=never package >&2)
    rm -rf "$SCHEMA_REGISTRY_HOME"
    mkdir -p "$SCHEMA_REGISTRY_HOME"
    mv "$dir/target/lib" "$SCHEMA_REGISTRY_HOME/lib"
    mv "$dir/target/registry-1-runner.jar" "$SCHEMA_REGISTRY_HOME/registry-runner.jar"
    rm -rf "$dir"
}

schema_registry_certificates() {
    local dir="$STATE/schema-registry-tls"
    if [ -s "$dir/server.crt" ]; then return; fi
    localhost_certificate "$dir" dataflow-test-schema-registry-ca
}

start_schema_registry() {
    if alive "$(pidof_file "$STATE/schema-registry.pid")"; then
        log "Schema Registry already running"
        return
    fi
    install_schema_registry
    schema_registry_certificates
    local log_file="$STATE/schema-registry.log" tls="$STATE/schema-registry-tls"
    log "starting Apicurio Registry $SCHEMA_REGISTRY_VERSION on 127.0.0.1:$SCHEMA_REGISTRY_PORT (HTTPS $SCHEMA_REGISTRY_TLS_PORT)"
    nohup java -Xmx384m -Dquarkus.http.host=127.0.0.1 \
        -Dquarkus.http.port="$SCHEMA_REGISTRY_PORT" \
        -Dquarkus.http.ssl-port="$SCHEMA_REGISTRY_TLS_PORT" \
        -Dquarkus.http.ssl.certificate.file="$tls/server.crt" \
        -Dquarkus.http.ssl.certificate.key-file="$tls/server.key" \
        -jar "$SCHEMA_REGISTRY_HOME/registry-runner.jar" >"$log_file" 2>&1 &
    echo $! >"$STATE/schema-registry.pid"
    for _ in $(seq 1 120); do
        if curl -sf "http://127.0.0.1:$SCHEMA_REGISTRY_PORT/apis/ccompat/v6/subjects" >/dev/null 2>&1; then
            return
        fi
        alive "$(pidof_file "$STATE/schema-registry.pid")" || break
        sleep 0.5
    done
    log "the Schema Registry did not come up; the end of $log_file:"
    tail -30 "$log_file" >&2 || true
    exit 1
}

stop_schema_registry() {
    stop_by_pid_file schema-registry
}

schema_registry_env() {
    echo "export DATAFLOW_TEST_SCHEMA_REGISTRY_URL='http://127.0.0.1:$SCHEMA_REGISTRY_PORT/apis/ccompat/v6'"
    echo "export DATAFLOW_TEST_SCHEMA_REGISTRY_TLS_URL='https://localhost:$SCHEMA_REGISTRY_TLS_PORT/apis/ccompat/v6'"
    echo "export DATAFLOW_TEST_SCHEMA_REGISTRY_CA='$STATE/schema-registry-tls/ca.pem'"
}
