// A dataflow transform, run once per message in the sandboxed JavaScript runtime
// (types are stripped when it loads; plain JavaScript works too).
//
// Return the document (changed or not), an array of documents (one message each),
// or null to drop the message. Throw to send only this message to the error sink.
// `ctx.config` is the step's `config:` (see dataflow-transform.yaml), `ctx.metadata`
// the message's metadata (topic, key, headers...), and `ctx.log(...)` writes to the
// processor's log. There is no file system, no network and no fetch.

interface Order {
  id: number;
  email?: string;
  amount?: unknown;
  test?: boolean;
  currency?: string;
  large?: boolean;
}

interface Context {
  config: { currency?: string; largeAmount?: number };
  metadata: Record<string, string>;
  log: (...args: unknown[]) => void;
}

export function transform(doc: Order, ctx: Context): Order | null {
  if (doc.test) {
    return null;
  }
  if (typeof doc.amount !== "number") {
    throw new TypeError(`amount must be a number, got ${JSON.stringify(doc.amount)}`);
  }
  if (doc.email !== undefined) {
    doc.email = doc.email.trim().toLowerCase();
  }
  doc.currency = ctx.config.currency ?? "EUR";
  doc.large = doc.amount >= (ctx.config.largeAmount ?? 1000);
  return doc;
}
