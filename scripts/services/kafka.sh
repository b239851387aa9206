# Apache Kafka for the tests, sourced by scripts/services.sh (which defines log,
# alive, pidof_file, stop_by_pid_file, STATE and CACHE).
#
# One KRaft node (broker and controller) from the jars on Maven Central, run by the
# machine's Java 17, with three client listeners:
#   PLAINTEXT  127.0.0.1:$KAFKA_PORT
#   SASL_SSL   127.0.0.1:$((KAFKA_PORT + 1))   SCRAM-SHA-512, user $KAFKA_SASL_USER
#   SSL        127.0.0.1:$((KAFKA_PORT + 2))   client certificates required
# and the controller on $((KAFKA_PORT + 3)). A CA, the broker's certificate and a
# client certificate are made with openssl; the SCRAM user is created when the
# storage is formatted.

KAFKA_VERSION="${DATAFLOW_KAFKA_VERSION:-4.1.1}"
KAFKA_PORT="${DATAFLOW_KAFKA_PORT:-19092}"
KAFKA_SASL_USER="dataflow"
KAFKA_SASL_PASSWORD="dataflow-test-secret"
KAFKA_LIBS="$CACHE/kafka-$KAFKA_VERSION/libs"

install_kafka() {
    if [ -e "$KAFKA_LIBS/.complete" ]; then return; fi
    command -v java >/dev/null || { log "java is required for Kafka"; exit 1; }
    command -v mvn >/dev/null || apt_install maven
    local pom="$CACHE/kafka-$KAFKA_VERSION/pom.xml"
    mkdir -p "$KAFKA_LIBS"
    cat >"$pom" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dataflow.test</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
    log "downloading Apache Kafka $KAFKA_VERSION from Maven Central"
    mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS" >&2
    touch "$KAFKA_LIBS/.complete"
}

kafka_certificates() {
    local dir="$STATE/kafka/tls"
    if [ -s "$dir/client.key" ]; then return; fi
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=dataflow test CA" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
        openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr -subj "/CN=localhost" 2>/dev/null
        openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out broker.pem \
            -days 3650 -extfile san.ext 2>/dev/null
        openssl pkcs8 -topk8 -nocrypt -in broker.key -out broker.pk8
        cat broker.pk8 broker.pem >broker-keystore.pem
        openssl req -newkey rsa:2048 -nodes -keyout client.key.tmp -out client.csr -subj "/CN=dataflow-client" 2>/dev/null
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
            -days 3650 2>/dev/null
        mv client.key.tmp client.key
    )
}

kafka_config() {
    local dir="$STATE/kafka" tls="$STATE/kafka/tls"
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$((KAFKA_PORT + 3))
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$((KAFKA_PORT + 1)),SSL://127.0.0.1:$((KAFKA_PORT + 2)),CONTROLLER://127.0.0.1:$((KAFKA_PORT + 3))
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,SASL_SSL://127.0.0.1:$((KAFKA_PORT + 1)),SSL://127.0.0.1:$((KAFKA_PORT + 2))
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=2
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls/ca.pem
listener.name.ssl.ssl.client.auth=required
PROPS
    cat >"$dir/log4j2.properties" <<LOG
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = info
logger.state.name = state.change.logger
logger.state.level = warn
LOG
}

kafka_java() {
    java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$STATE/kafka/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$@"
}

kafka_java_background() {
    nohup java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$STATE/kafka/log4j2.properties" \
        -cp "$KAFKA_LIBS/*" "$@" >"$STATE/kafka/stdout.log" 2>&1 &
    echo $! >"$STATE/kafka.pid"
}

start_kafka() {
    if alive "$(pidof_file "$STATE/kafka.pid")"; then
        log "Kafka already running"
        return
    fi
    install_kafka
    kafka_certificates
    mkdir -p "$STATE/kafka"
    kafka_config
    if [ ! -f "$STATE/kafka/data/meta.properties" ]; then
        local id
        id="$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
        kafka_java kafka.tools.StorageTool format -t "$id" -c "$STATE/kafka/server.properties" \
            --add-scram "SCRAM-SHA-512=[name=$KAFKA_SASL_USER,password=$KAFKA_SASL_PASSWORD]" \
            >"$STATE/kafka/format.log" 2>&1 || { tail -n 20 "$STATE/kafka/format.log" >&2; exit 1; }
    fi
    log "starting Apache Kafka $KAFKA_VERSION on 127.0.0.1:$KAFKA_PORT-$((KAFKA_PORT + 2))"
    local started
    started=$(date +%s)
    : >"$STATE/kafka/server.log"
    kafka_java_background kafka.Kafka "$STATE/kafka/server.properties"
    for _ in $(seq 1 240); do
        # The acceptors open last, once the broker can serve.
        if (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null \
            && (exec 3<>"/dev/tcp/127.0.0.1/$((KAFKA_PORT + 2))") 2>/dev/null; then
            log "Kafka ready in $(( $(date +%s) - started )) s"
            return
        fi
        if ! alive "$(pidof_file "$STATE/kafka.pid")"; then break; fi
        sleep 0.5
    done
    log "Kafka did not come up:"
    tail -n 30 "$STATE/kafka/server.log" "$STATE/kafka/stdout.log" >&2 2>/dev/null
    exit 1
}

stop_kafka() {
    stop_by_pid_file kafka
}

kafka_env() {
    local tls="$STATE/kafka/tls"
    echo "export DATAFLOW_TEST_KAFKA_BROKERS='127.0.0.1:$KAFKA_PORT'"
    echo "export DATAFLOW_TEST_KAFKA_SASL_BROKERS='127.0.0.1:$((KAFKA_PORT + 1))'"
    echo "export DATAFLOW_TEST_KAFKA_SASL_USER='$KAFKA_SASL_USER'"
    echo "export DATAFLOW_TEST_KAFKA_SASL_PASSWORD='$KAFKA_SASL_PASSWORD'"
    echo "export DATAFLOW_TEST_KAFKA_MTLS_BROKERS='127.0.0.1:$((KAFKA_PORT + 2))'"
    echo "export DATAFLOW_TEST_KAFKA_CA='$tls/ca.pem'"
    echo "export DATAFLOW_TEST_KAFKA_CLIENT_CERT='$tls/client.pem'"
    echo "export DATAFLOW_TEST_KAFKA_CLIENT_KEY='$tls/client.key'"
}
