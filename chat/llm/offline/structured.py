"""JSON that a JSON schema accepts, made up deterministically: tool inputs and structured outputs.

The offline model has nothing to say, so it says the simplest thing the schema allows: every required property
(and, for an output format, every property), the first enum value, the schema's default or example when it
gives one, strings that say they are offline. The same schema always gets the same value. `$ref` into `$defs`
(what pydantic writes for nested models) is followed, with a depth bound so a recursive schema still ends.

The schema is the client's, so its cost is bounded: a value of more than MAX_NODES values (a recursive schema
with several required properties grows exponentially with depth; `minItems: 1e9`), or a string longer than
MAX_STRING_CHARS (`minLength`), is refused as a schema too complex, a 400 like the API's for schemas it
cannot compile. Malformed keywords (a `minimum` that is not a number) are ignored.
"""

import math

from chat.llm.offline.validation import InvalidRequest

MAX_DEPTH = 12
MAX_NODES = 10_000
MAX_STRING_CHARS = 10_000
OFFLINE_STRING = "offline value"
STRING_FORMATS = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "offline@example.com",
    "uri": "https://example.com/offline",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def value_for_schema(schema: object, *, every_property: bool = False) -> object:
    """A value valid against `schema`. `every_property`: fill optional properties too (a structured output
    reads better whole); a tool input gets only what it requires, as a model that is asked little would send."""
    root = schema if isinstance(schema, dict) else {}
    return _value(root, root, every_property, 0, "value", [0])


def check_schema(schema: object, *, every_property: bool = False) -> None:
    """Refuses, as prompt.py reads the request, a schema whose value would cost too much to make (the reply
    makes it later, for a Message or a batch result alike)."""
    value_for_schema(schema, every_property=every_property)


def _value(schema: object, root: dict, every: bool, depth: int, name: str, nodes: list[int]) -> object:
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    nodes[0] += 1  # values made so far, shared by the whole walk
    if nodes[0] > MAX_NODES:
        raise InvalidRequest(f"The JSON schema is too complex: a value of it would hold over {MAX_NODES} values.")
    if isinstance(ref := schema.get("$ref"), str):
        return _value(_resolve(ref, root), root, every, depth + 1, name, nodes)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            choices = [choice for choice in schema[key] if not _is_null(choice)] or schema[key]
            return _value(choices[0], root, every, depth + 1, name, nodes)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    if kind == "object":
        return _object(schema, root, every, depth, nodes)
    if kind == "array":
        count = max(1, _whole(schema.get("minItems")))  # past MAX_NODES items, _value refuses
        return [_value(schema.get("items", {}), root, every, depth + 1, name, nodes) for _ in range(count)]
    if kind == "string":
        return _string(schema, name)
    if kind in ("integer", "number"):
        return _number(schema, kind)
    if kind == "boolean":
        return True
    return None


def _object(schema: dict, root: dict, every: bool, depth: int, nodes: list[int]) -> dict:
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    required = [name for name in required if isinstance(name, str)]
    names = list(properties) if every else [name for name in properties if name in required]
    names += [name for name in required if name not in names]
    return {name: _value(properties.get(name, {}), root, every, depth + 1, name, nodes) for name in names}


def _string(schema: dict, name: str) -> str:
    if schema.get("format") in STRING_FORMATS:
        return STRING_FORMATS[schema["format"]]
    text = f"offline {name}" if name != "value" else OFFLINE_STRING
    least, most = _whole(schema.get("minLength")), schema.get("maxLength")
    if least > MAX_STRING_CHARS:
        raise InvalidRequest(f"The JSON schema is too complex: minLength {least} > {MAX_STRING_CHARS}.")
    text = text.ljust(least, "x")
    return text[:most] if isinstance(most, int) else text


def _number(schema: dict, kind: str) -> int | float:
    low = _number_or_none(schema.get("minimum", schema.get("exclusiveMinimum")))
    high = _number_or_none(schema.get("maximum", schema.get("exclusiveMaximum")))
    value = 1 if low is None else low + (1 if "exclusiveMinimum" in schema and "minimum" not in schema else 0)
    if high is not None and value > high:
        value = high
    return int(value) if kind == "integer" else float(value)


def _whole(value: object) -> int:
    """A count keyword (minItems, minLength) as a non-negative int; 0 when it is not a number."""
    number = _number_or_none(value)
    return max(0, int(number)) if number is not None else 0


def _number_or_none(value: object) -> int | float | None:
    """A numeric keyword's value; None when it is not a finite number (then it bounds nothing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def _resolve(ref: str, root: dict) -> object:
    """A local reference such as `#/$defs/Address`; anything else resolves to an empty schema."""
    if not ref.startswith("#/"):
        return {}
    node: object = root
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _is_null(schema: object) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"
