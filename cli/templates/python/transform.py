"""A dataflow transform, run once per message in the sandboxed Python runtime.

Return the document (changed or not), a list of documents (one message each), or
None to drop the message. Raise an exception to send only this message to the
error sink. `ctx.config` is the step's `config:` (see dataflow-transform.yaml),
`ctx.metadata` the message's metadata (topic, key, headers...), and `ctx.log(...)`
writes to the processor's log. There is no file system and no network.
"""


def transform(doc: dict, ctx) -> dict | None:
    if doc.get("test"):
        return None
    amount = doc.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise ValueError(f"amount must be a number, got {amount!r}")
    if "email" in doc:
        doc["email"] = doc["email"].strip().lower()
    doc["currency"] = ctx.config.get("currency", "EUR")
    doc["large"] = amount >= ctx.config.get("largeAmount", 1000)
    return doc
