"""The world's entry module: componentize-py looks the exported interfaces up by
name; the `transformer` interface's resource lives in `transformer.py`."""


class TransformComponent:
    """The `transform-component` world has no world-level functions."""
