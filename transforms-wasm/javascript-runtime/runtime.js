// The dataflow JavaScript runtime: runs a user's `transform(doc, ctx)` over each
// message of a batch. Built into a component with componentize-js (SpiderMonkey),
// with sucrase bundled in to strip TypeScript types; see README.md.
//
// The host creates one Transform per `type: javascript` step with this
// configuration (JSON text): {"code": <source>, "config": <any JSON>, "step": n}.

import { transform as strip } from "sucrase";

const LOG_LINE_CHARS = 2000;

// The component imports no wasi:http, so fetch could never reach anything; without
// it, a call fails at once with "fetch is not defined" instead of a promise that
// never settles.
delete globalThis.fetch;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

// Numbers whose text JavaScript would print differently ("1.50", "1e3", integers
// past 2^53) keep their text when written back unchanged: the reviver notes them,
// the replacer writes the noted text for the same value. Needs JSON.parse's source
// text access and JSON.rawJSON; without them numbers are written as JavaScript
// prints them.
const keepsText = (() => {
  try {
    let seen = null;
    JSON.parse("1.50", (_key, value, context) => {
      seen = context && context.source;
      return value;
    });
    return seen === "1.50" && typeof JSON.rawJSON === "function";
  } catch {
    return false;
  }
})();

function parse(bytes, texts) {
  const text = decoder.decode(bytes);
  if (!keepsText) return JSON.parse(text);
  return JSON.parse(text, (_key, value, context) => {
    if (typeof value === "number" && String(value) !== context.source) {
      texts.set(value, context.source);
    }
    return value;
  });
}

function write(doc, texts) {
  const text =
    keepsText && texts.size > 0
      ? JSON.stringify(doc, (_key, value) =>
          typeof value === "number" && texts.has(value) ? JSON.rawJSON(texts.get(value)) : value,
        )
      : JSON.stringify(doc);
  if (text === undefined) throw new TypeError("the result is not JSON (undefined or a function)");
  return encoder.encode(text);
}

// The function wrapping the user's code puts its first line on line 3.
const WRAPPER_LINES = 2;

function describe(error) {
  if (error instanceof Error) {
    const line = /<transform>:(\d+)/.exec(String(error.stack || ""));
    const where = line ? ` (line ${Number(line[1]) - WRAPPER_LINES})` : "";
    return error.message ? `${error.name}${where}: ${error.message}` : `${error.name}${where}`;
  }
  return `thrown: ${String(error)}`;
}

function outOfMemory(error) {
  const text = error instanceof Error ? error.message : String(error);
  return /out of memory/i.test(text);
}

function load(code) {
  // TypeScript types go; `export` becomes an assignment to `exports`.
  const plain = strip(code, { transforms: ["typescript", "imports"], disableESTransforms: true }).code;
  const exports = {};
  const module = { exports };
  const run = new Function("exports", "module", `${plain}\n//# sourceURL=<transform>`);
  run(exports, module);
  return module.exports.transform ?? exports.transform;
}

class Context {
  constructor(config, step) {
    this.config = config;
    this.step = step;
    this.pairs = [];
    this.dict = null;
  }

  get metadata() {
    if (this.dict === null) this.dict = Object.fromEntries(this.pairs);
    return this.dict;
  }

  log(...parts) {
    const line = parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" ");
    console.log(line.replaceAll("\n", " ").slice(0, LOG_LINE_CHARS));
  }

  outputPairs() {
    if (this.dict === null) return this.pairs;
    return Object.entries(this.dict).map(([k, v]) => [String(k), String(v)]);
  }
}

const failed = (kind, message) => ({ tag: "failed", val: { kind, message, step: 0 } });

class Transform {
  constructor(fn, context) {
    this.fn = fn;
    this.context = context;
  }

  static create(config) {
    let settings;
    try {
      settings = JSON.parse(config);
    } catch (error) {
      throw `the runtime's configuration is not JSON: ${error}`;
    }
    if (!settings || typeof settings.code !== "string") {
      throw "code: the runtime needs the transform's source as a string";
    }
    let fn;
    try {
      fn = load(settings.code);
    } catch (error) {
      throw `code: ${describe(error)}`;
    }
    if (typeof fn !== "function") throw "code: it exports no function transform(doc, ctx)";
    return new Transform(fn, new Context(settings.config ?? null, settings.step ?? 0));
  }

  process(batch) {
    const outcomes = [];
    const context = this.context;
    const texts = new Map();
    for (const message of batch) {
      texts.clear();
      let doc;
      try {
        doc = parse(message.payload, texts);
      } catch (error) {
        outcomes.push(failed("invalid-data", `payload is not JSON: ${error.message}`));
        continue;
      }
      context.pairs = message.metadata;
      context.dict = null;
      let result;
      try {
        result = this.fn(doc, context);
      } catch (error) {
        // After running out of memory the engine cannot be trusted: end the call
        // (the host rebuilds the instance and finds the message that did it).
        if (outOfMemory(error)) throw error;
        outcomes.push(failed("failed", describe(error)));
        continue;
      }
      try {
        const pairs = context.outputPairs();
        const docs = result == null ? [] : Array.isArray(result) ? result : [result];
        outcomes.push({
          tag: "emitted",
          val: docs.map((d) => ({ payload: write(d, texts), metadata: pairs })),
        });
      } catch (error) {
        outcomes.push(failed("failed", `the result is not JSON: ${describe(error)}`));
      }
    }
    return outcomes;
  }
}

export const transformer = { Transform };
