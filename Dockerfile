# One image, two binaries: dataflow-operator (the entrypoint) and dataflow-processor
# (what the operator runs in each DataFlow's pod, with the built-in transforms
# embedded). Build with `make image`.

# --- build -------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# rust:*-bookworm already has a C toolchain, make, perl, libssl-dev and zlib for
# librdkafka; the Makefile adds the wasm32-wasip2 target and fetches the runtime
# builders: componentize-py (into a virtualenv) and componentize-js (with npm).
# componentize-js is tested here on Node 20; bookworm's nodejs is 18.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv nodejs npm \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make build \
 && mkdir -p /out/runtimes /out/precompiled \
 && cp target/release/dataflow-operator target/release/dataflow-processor /out/ \
 && cp target/release/runtimes/python.wasm target/release/runtimes/javascript.wasm /out/runtimes/ \
 && cp target/release/precompiled/*.cwasm /out/precompiled/

# --- run ---------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 dataflow \
 && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin dataflow
COPY --from=build /out/dataflow-operator /out/dataflow-processor /usr/local/bin/
# The script runtimes, where the processor looks from /usr/local/bin.
COPY --from=build /out/runtimes/ /usr/local/lib/dataflow/runtimes/
# The built-ins and the runtimes compiled at build time, so a new pod does not
# spend seconds compiling them (used when the node's CPU matches the build's;
# otherwise they are compiled into the cache as before).
COPY --from=build /out/precompiled/ /usr/local/lib/dataflow/precompiled/
# Compiled transforms are cached here; in a pod it is an emptyDir, since the root
# filesystem is read-only.
ENV DATAFLOW_CACHE_DIR=/var/cache/dataflow
USER 65532:65532
EXPOSE 9090 9443
ENTRYPOINT ["/usr/local/bin/dataflow-operator"]
CMD ["run"]
