"""The dataflow Python runtime: runs a user's `transform(doc, ctx)` function over
each message of a batch.

The host creates one `Transform` per `type: python` step with this configuration
(JSON text): `{"code": <the user's source>, "config": <any JSON>, "step": <index>}`.
The user's code is compiled once, at creation; a syntax error, an exception while
the module runs, or a missing `transform` function is a configuration error.

Per message: the payload is parsed as JSON, `transform(doc, ctx)` is called and
its result written back: a document (one message), a list (one message per item,
in order) or None (the message is dropped). An exception in the user's code fails
only that message, with the exception in the error record; the batch goes on, so
the host never replays it. Only the host's limits (time, memory) end a call.

Numbers the user does not touch keep their text: integers are Python ints (any
size), and a decimal whose text is not what Python would print for it (`1.50`,
`1e3`) is a float that remembers its text; arithmetic on it gives a plain float.
"""

import json
import sys
from json import encoder as _encoder

from componentize_py_types import Err
from wit_world.imports.types import (
    ErrorKind,
    Message,
    Outcome_Emitted,
    Outcome_Failed,
    TransformError,
)

# Largest log line kept, in characters (the host samples lines as well).
_LOG_LINE_CHARS = 2000


class _Decimal(float):
    """A float parsed from JSON text that Python would print differently."""

    __slots__ = ("text",)


class _Parse:
    """Parses payloads, noting whether a decimal needs its text kept."""

    def __init__(self):
        self.kept_text = False
        self.decoder = json.JSONDecoder(parse_float=self._float)

    def _float(self, text):
        value = float(text)
        if repr(value) == text:
            return value
        kept = _Decimal(text)
        kept.text = text
        self.kept_text = True
        return kept

    def __call__(self, payload):
        self.kept_text = False
        return self.decoder.decode(payload.decode("utf-8"))


def _float_text(value, _repr=float.__repr__):
    if type(value) is _Decimal:
        return value.text
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{value!r} is not a JSON number")
    return _repr(value)


class _KeepTextEncoder(json.JSONEncoder):
    """The standard encoder, except that decimals keep their text (the C encoder
    would print them as Python does)."""

    def iterencode(self, o, _one_shot=False):
        return _encoder._make_iterencode(
            {},
            self.default,
            _encoder.py_encode_basestring,
            None,
            _float_text,
            ":",
            ",",
            False,
            False,
            _one_shot,
        )(o, 0)


_fast = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_keep_text = _KeepTextEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Context:
    """What `transform(doc, ctx)` gets besides the document: the step's `config`,
    its `step` index, the message's `metadata` (a dict; changes to it go with the
    message's outputs) and `log`."""

    __slots__ = ("config", "step", "_pairs", "_metadata")

    def __init__(self, config, step):
        self.config = config
        self.step = step
        self._pairs = []
        self._metadata = None

    def _start(self, pairs):
        self._pairs = pairs
        self._metadata = None

    def _output_pairs(self):
        """The metadata the outputs carry: the input's, unless the user asked for
        the dict (and so may have changed it)."""
        if self._metadata is None:
            return self._pairs
        return [(str(k), str(v)) for k, v in self._metadata.items()]

    @property
    def metadata(self):
        """The message's metadata as a dict, made when first asked for."""
        if self._metadata is None:
            self._metadata = dict(self._pairs)
        return self._metadata

    def log(self, *parts):
        """Writes one line to the processor's log (sampled by the host)."""
        line = " ".join(str(p) for p in parts).replace("\n", " ")
        sys.stdout.write(line[:_LOG_LINE_CHARS] + "\n")
        sys.stdout.flush()


def _failed(kind, text):
    return Outcome_Failed(TransformError(kind, text, 0))


def _describe(error):
    """The exception as the error record shows it: type, message and the line of
    the user's code it came from."""
    line = None
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<transform>":
            line = trace.tb_lineno
        trace = trace.tb_next
    where = f" (line {line})" if line is not None else ""
    text = str(error)
    return f"{type(error).__name__}{where}: {text}" if text else f"{type(error).__name__}{where}"


class Transform:
    """One `type: python` step."""

    def __init__(self, function, context):
        self.function = function
        self.context = context
        self.parse = _Parse()

    @classmethod
    def create(cls, config: str):
        try:
            settings = json.loads(config)
        except ValueError as error:
            raise Err(f"the runtime's configuration is not JSON: {error}")
        if not isinstance(settings, dict) or not isinstance(settings.get("code"), str):
            raise Err("code: the runtime needs the transform's source as a string")
        namespace = {"__name__": "transform", "__builtins__": __builtins__}
        try:
            compiled = compile(settings["code"], "<transform>", "exec")
            exec(compiled, namespace)
        except SyntaxError as error:
            raise Err(f"code: line {error.lineno}: {error.msg}")
        except BaseException as error:  # the module's own code raised
            raise Err(f"code: while loading: {_describe(error)}")
        function = namespace.get("transform")
        if not callable(function):
            raise Err("code: it defines no function transform(doc, ctx)")
        step = settings.get("step", 0)
        return cls(function, Context(settings.get("config"), step))

    def process(self, batch):
        outcomes = []
        append = outcomes.append
        function = self.function
        context = self.context
        parse = self.parse
        for message in batch:
            try:
                doc = parse(message.payload)
            except (ValueError, UnicodeDecodeError) as error:
                append(_failed(ErrorKind.INVALID_DATA, f"payload is not JSON: {error}"))
                continue
            context._start(message.metadata)
            try:
                result = function(doc, context)
            except RecursionError:
                append(_failed(ErrorKind.FAILED, "RecursionError: maximum recursion depth exceeded"))
                continue
            except MemoryError:
                append(_failed(ErrorKind.FAILED, "MemoryError: the transform ran out of memory"))
                continue
            except BaseException as error:
                append(_failed(ErrorKind.FAILED, _describe(error)))
                continue
            try:
                append(Outcome_Emitted(_messages(result, context._output_pairs(), parse.kept_text)))
            except (TypeError, ValueError, RecursionError) as error:
                append(_failed(ErrorKind.FAILED, f"the result is not JSON: {error}"))
        return outcomes


def _messages(result, pairs, kept_text):
    """The messages a result stands for: none, one, or one per list item."""
    if result is None:
        return []
    encoder = _keep_text if kept_text else _fast
    if isinstance(result, list):
        return [Message(encoder.encode(doc).encode("utf-8"), pairs) for doc in result]
    return [Message(encoder.encode(result).encode("utf-8"), pairs)]
