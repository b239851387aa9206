# A Kubernetes control plane for the tests, sourced by scripts/services.sh (which
# defines log, alive, pidof_file, stop_by_pid_file, STATE and CACHE).
#
# etcd and kube-apiserver (with kubectl beside them) are built once from the Go
# module proxy and cached under $CACHE/kube-<version>/:
#   etcd            127.0.0.1:$ETCD_PORT (client, plain HTTP; peers on +1)
#   kube-apiserver  https://127.0.0.1:$KUBE_PORT, RBAC on, x509 client certificates
#                   and ServiceAccount tokens
# No kubelet, scheduler or controller manager runs: the tests play the node.
# A CA, the server's certificate, an admin client certificate (group
# system:masters) and the ServiceAccount signing key are made with openssl. The
# cluster starts empty: etcd's data is wiped whenever etcd itself is started.

KUBE_VERSION="${DATAFLOW_KUBE_VERSION:-1.36.3}"
ETCD_VERSION="${DATAFLOW_ETCD_VERSION:-3.6.16}"
ETCD_PORT="${DATAFLOW_ETCD_PORT:-12379}"
KUBE_PORT="${DATAFLOW_KUBE_PORT:-16443}"
KUBE_BIN="$CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION"
KUBE_DIR="$STATE/kube"

# Builds one Go program from a throwaway main module that requires `module`; a
# module whose own go.mod replaces its siblings by path (Kubernetes' staging
# repositories, etcd's submodules) cannot be `go install`ed, but can be built
# this way with the replacements spelled as published versions.
kube_go_build() {
    local workdir="$1" module="$2" replaces="$3" ldflags="$4"; shift 4
    mkdir -p "$workdir"
    {
        echo "module dataflow.test/build"
        echo
        echo "go 1.26.0"
        echo
        echo "require $module"
        if [ -n "$replaces" ]; then
            echo "replace ("
            echo "$replaces"
            echo ")"
        fi
    } >"$workdir/go.mod"
    {
        echo "//go:build tools"
        echo
        echo "package tools"
        echo
        for package in "$@"; do echo "import _ \"$package\""; done
    } >"$workdir/tools.go"
    (cd "$workdir" && go mod tidy >&2 && go build -trimpath -ldflags="-s -w $ldflags" -o "$KUBE_BIN/" "$@" >&2)
}

install_kube() {
    if [ -x "$KUBE_BIN/kube-apiserver" ] && [ -x "$KUBE_BIN/kubectl" ] && [ -x "$KUBE_BIN/etcd" ]; then
        return
    fi
    command -v go >/dev/null 2>&1 || { log "no Go toolchain: cannot build kube-apiserver"; exit 1; }
    local work="$CACHE/kube-build" gomod replaces version_flags=""
    mkdir -p "$KUBE_BIN"
    log "building etcd $ETCD_VERSION from the Go module proxy (once)"
    kube_go_build "$work/etcd" "go.etcd.io/etcd/server/v3 v$ETCD_VERSION" "" "" \
        go.etcd.io/etcd/server/v3
    # go names the binary after the path without its major version: `server`.
    mv "$KUBE_BIN/server" "$KUBE_BIN/etcd"
    log "building kube-apiserver and kubectl $KUBE_VERSION from the Go module proxy (once, several minutes)"
    gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" \
        | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
    # Each `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.<minor>.<patch>`.
    replaces="$(sed -n 's#^\t\(k8s.io/[a-z-]*\) => ./staging/src/.*#\t\1 => \1 v0.'"${KUBE_VERSION#1.}"'#p' "$gomod")"
    # The version Kubernetes' own build stamps in (helm checks a chart's kubeVersion against it).
    for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        version_flags+=" -X $package.gitVersion=v$KUBE_VERSION -X $package.gitMajor=${KUBE_VERSION%%.*}"
        version_flags+=" -X $package.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $package.gitTreeState=clean"
    done
    kube_go_build "$work/kubernetes" "k8s.io/kubernetes v$KUBE_VERSION" "$replaces" "$version_flags" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
    rm -rf "$work"
}

kube_certificates() {
    local dir="$KUBE_DIR/pki"
    if [ -s "$dir/admin-client.key" ]; then return; fi
    mkdir -p "$dir"
    (
        cd "$dir"
        openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 3650 \
            -subj "/CN=dataflow-test-kube-ca" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=kube-apiserver" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
            -days 3650 -extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,IP:10.96.0.1') 2>/dev/null
        # Extensions make it an X.509 v3 certificate; rustls refuses v1.
        openssl req -newkey rsa:2048 -nodes -keyout admin-client.key.tmp -out admin.csr \
            -subj "/O=system:masters/CN=dataflow-test-admin" 2>/dev/null
        openssl x509 -req -in admin.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out admin-client.pem \
            -days 3650 -extfile <(printf 'extendedKeyUsage=clientAuth') 2>/dev/null
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        rm -f ./*.csr
        mv admin-client.key.tmp admin-client.key
    )
}

kube_admin_config() {
    cat >"$KUBE_DIR/admin.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
  - name: dataflow-test
    cluster:
      server: https://127.0.0.1:$KUBE_PORT
      certificate-authority: $KUBE_DIR/pki/ca.pem
users:
  - name: admin
    user:
      client-certificate: $KUBE_DIR/pki/admin-client.pem
      client-key: $KUBE_DIR/pki/admin-client.key
contexts:
  - name: dataflow-test
    context: {cluster: dataflow-test, user: admin}
current-context: dataflow-test
YAML
}

kube_fail() {
    log "$1 did not come up; the end of $2:"
    tail -30 "$2" >&2 || true
    exit 1
}

start_etcd() {
    if alive "$(pidof_file "$STATE/etcd.pid")"; then
        log "etcd already running"
        return
    fi
    rm -rf "$KUBE_DIR/etcd"
    mkdir -p "$KUBE_DIR/etcd"
    log "starting etcd on 127.0.0.1:$ETCD_PORT"
    nohup "$KUBE_BIN/etcd" --name default --data-dir "$KUBE_DIR/etcd/data" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
        --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 1))" \
        --unsafe-no-fsync --log-level warn >"$KUBE_DIR/etcd/log" 2>&1 &
    echo $! >"$STATE/etcd.pid"
    for _ in $(seq 1 120); do
        if curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1; then return; fi
        alive "$(pidof_file "$STATE/etcd.pid")" || break
        sleep 0.25
    done
    kube_fail etcd "$KUBE_DIR/etcd/log"
}

start_kube_apiserver() {
    local pki="$KUBE_DIR/pki"
    if alive "$(pidof_file "$STATE/kube-apiserver.pid")"; then
        log "kube-apiserver already running"
        return
    fi
    log "starting kube-apiserver $KUBE_VERSION on 127.0.0.1:$KUBE_PORT"
    nohup "$KUBE_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$KUBE_PORT" \
        --cert-dir "$KUBE_DIR/certs" \
        --tls-cert-file "$pki/server.pem" --tls-private-key-file "$pki/server.key" \
        --client-ca-file "$pki/ca.pem" \
        --service-account-issuer https://kubernetes.default.svc \
        --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" \
        --api-audiences https://kubernetes.default.svc \
        --service-cluster-ip-range 10.96.0.0/16 \
        --authorization-mode RBAC \
        --profiling=false \
        >"$KUBE_DIR/apiserver.log" 2>&1 &
    echo $! >"$STATE/kube-apiserver.pid"
    for _ in $(seq 1 240); do
        if curl -sf --cacert "$pki/ca.pem" --cert "$pki/admin-client.pem" --key "$pki/admin-client.key" \
            "https://127.0.0.1:$KUBE_PORT/readyz" >/dev/null 2>&1; then
            return
        fi
        alive "$(pidof_file "$STATE/kube-apiserver.pid")" || break
        sleep 0.5
    done
    kube_fail kube-apiserver "$KUBE_DIR/apiserver.log"
}

start_kube() {
    install_kube
    kube_certificates
    kube_admin_config
    start_etcd
    start_kube_apiserver
}

stop_kube() {
    stop_by_pid_file kube-apiserver
    stop_by_pid_file etcd
}

kube_env() {
    echo "export DATAFLOW_TEST_KUBECONFIG='$KUBE_DIR/admin.kubeconfig'"
    echo "export DATAFLOW_TEST_KUBECTL='$KUBE_BIN/kubectl'"
}
