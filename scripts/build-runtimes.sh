#!/usr/bin/env bash
# Builds the script runtimes: components that run a user's function.
#   scripts/build-runtimes.sh python|javascript OUT.wasm
# and, for the tests, a JavaScript module written against wit/transform.wit as a
# stock componentize-js component (every feature on, so it imports wasi:http):
#   scripts/build-runtimes.sh javascript-component OUT.wasm MODULE.js
# The tools are fetched once into a cache outside the clone (DATAFLOW_BUILD_CACHE,
# default ~/.cache/dataflow-build): componentize-py from PyPI into a virtualenv;
# componentize-js, esbuild and sucrase from npm.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
ESBUILD_VERSION=0.28.2
SUCRASE_VERSION=3.35.1
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${DATAFLOW_BUILD_CACHE:-$HOME/.cache/dataflow-build}"

runtime="${1:?usage: build-runtimes.sh python|javascript OUT.wasm}"
out="${2:?usage: build-runtimes.sh python|javascript OUT.wasm}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"

js_tools() {
    for tool in node npm; do
      command -v "$tool" >/dev/null || { echo "building JavaScript components needs $tool (Node 20 with npm)" >&2; exit 1; }
    done
    tools="$cache/js-tools-$COMPONENTIZE_JS_VERSION-$ESBUILD_VERSION-$SUCRASE_VERSION"
    if [ ! -x "$tools/node_modules/.bin/esbuild" ] || [ ! -f "$tools/node_modules/@bytecodealliance/componentize-js/src/cli.js" ]; then
      echo "installing componentize-js $COMPONENTIZE_JS_VERSION, esbuild, sucrase into $tools" >&2
      rm -rf "$tools"
      mkdir -p "$tools"
      echo '{"name": "dataflow-js-tools", "private": true}' > "$tools/package.json"
      (cd "$tools" && npm install --no-audit --no-fund --loglevel=error \
          "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION" \
          "esbuild@$ESBUILD_VERSION" "sucrase@$SUCRASE_VERSION" >&2)
    fi
}

case "$runtime" in
  python)
    venv="$cache/componentize-py-$COMPONENTIZE_PY_VERSION"
    if [ ! -x "$venv/bin/componentize-py" ]; then
      echo "installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
      rm -rf "$venv"
      python3 -m venv "$venv"
      "$venv/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION"
    fi
    # componentize-py writes its bindings next to the app; keep the sources clean.
    cp "$root"/transforms-wasm/python-runtime/*.py "$work/"
    (cd "$work" && "$venv/bin/componentize-py" --wit-path "$root/wit" --world transform-component \
        componentize app --output runtime.wasm >&2)
    mv "$work/runtime.wasm" "$out"
    echo "built $out ($(stat -c %s "$out") bytes)" >&2
    ;;
  javascript)
    js_tools
    # One module: the runtime with sucrase (the TypeScript type stripper) bundled in.
    NODE_PATH="$tools/node_modules" "$tools/node_modules/.bin/esbuild" \
        "$root/transforms-wasm/javascript-runtime/runtime.js" --bundle --format=esm \
        --platform=neutral --main-fields=module,main --log-level=warning \
        --outfile="$work/runtime.js"
    # A pure component: no wasi:http, no fetch; stdout stays for ctx.log.
    node "$tools/node_modules/@bytecodealliance/componentize-js/src/cli.js" "$work/runtime.js" \
        --wit "$root/wit" --world-name transform-component \
        --disable http --disable fetch-event --out "$work/runtime.wasm" >&2
    mv "$work/runtime.wasm" "$out"
    echo "built $out ($(stat -c %s "$out") bytes)" >&2
    ;;
  javascript-component)
    module="${3:?usage: build-runtimes.sh javascript-component OUT.wasm MODULE.js}"
    js_tools
    node "$tools/node_modules/@bytecodealliance/componentize-js/src/cli.js" "$module" \
        --wit "$root/wit" --world-name transform-component --out "$work/component.wasm" >&2
    mv "$work/component.wasm" "$out"
    echo "built $out ($(stat -c %s "$out") bytes)" >&2
    ;;
  *)
    echo "unknown runtime $runtime (known: python, javascript, javascript-component)" >&2
    exit 2
    ;;
esac
