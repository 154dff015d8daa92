"""The code generator: each current schema becomes one Python reader and one writer.

:class:`CodeGen` turns an expanded schema tree into the source of ``_read(buf, pos)`` and
``_write(record)`` with inlined varints and a branch-free field order (and, on demand,
``_write_projection``: a record written from a dict and a tuple without building it).
They only ever return results on well-formed input; on anything else they raise and
fastavro (reader) or the validating walker (writer) take over. Everything the generated
code calls is bound in its own namespace (globals of the generated functions), never
looked up through a module. Maps of union values get map templates
(:mod:`schemas.templates`); string fields keep a cache of their encoded values.

>>> tree = {"type": "record", "name": "R", "fields": [
...     {"name": "id", "type": "string"}, {"name": "at", "type": "long"}]}
>>> read, write, source = CodeGen(finite=True).build(tree)
>>> record = {"id": "a", "at": 1714564800000}
>>> import fastavro, io
>>> reference = io.BytesIO()
>>> fastavro.schemaless_writer(reference, fastavro.parse_schema(tree), record)
>>> write(record) == reference.getvalue()
True
>>> read(write(record), 0)
({'id': 'a', 'at': 1714564800000}, 8)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from schemas.catalog import INT_MAX, INT_MIN, LONG_MAX, LONG_MIN, UnsupportedSchema, base_type
from schemas.templates import read_kinds, template_map_reader, template_map_writer, write_kinds
from schemas.walker import default_value, union_class
from schemas.wire import (
    LOW7,
    PACK_D,
    PACK_F,
    SMALL_LONGS,
    UNPACK_D,
    UNPACK_F,
    VARINT_TAILS,
    Bail,
    encode_long,
    fast_int,
    fast_long,
    read_long,
    varint_tail,
)

__all__ = ["CodeGen"]


# A string field that keeps repeating a few values (a model's name, a variant, a label)
# is written from a cache of its encoded values: one lookup instead of encoding it
# again. A field whose values fill the cache (ids) stops using it for good.
_MAX_CACHED_STRINGS = 256


def _string_cache(ns: dict[str, Any], flag: str) -> Callable[[Any], bytes]:
    """The miss path of one string field's cache (``ns[flag]`` says whether it is on)."""
    cache: dict[str, bytes] = {}

    def miss(value: Any) -> bytes:
        if type(value) is not str:
            raise Bail
        raw = value.encode()
        size = len(raw)
        encoded = (SMALL_LONGS[size + 64] if size < 64 else fast_long(size)) + raw
        if len(cache) < _MAX_CACHED_STRINGS:
            cache[value] = encoded
        else:  # the field does not repeat: go back to encoding it inline
            ns[flag] = False
            cache.clear()
        return encoded

    miss.cache = cache  # type: ignore[attr-defined]
    return miss


class CodeGen:
    """Generates the source of a fast reader and writer for one expanded schema."""

    def __init__(self, finite: bool) -> None:
        self.finite = finite
        self.ns: dict[str, Any] = {
            "_Bail": Bail,
            "_rlong": read_long,
            "_ud": UNPACK_D,
            "_uf": UNPACK_F,
            "_pd": PACK_D,
            "_pf": PACK_F,
            "_ZZ": SMALL_LONGS,
            "_wlong": fast_long,
            "_wint": fast_int,
            "_LOW7": LOW7,
            "_VT": VARINT_TAILS,
            "_vtail": varint_tail,
        }
        self.counter = 0
        self.functions: list[list[str]] = []
        self.bindings: list[tuple[str, Callable[[dict], Any]]] = []

    def tmp(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any, prefix: str = "K") -> str:
        name = self.tmp("_" + prefix)
        self.ns[name] = value
        return name

    # -- reader ------------------------------------------------------------------

    def r_long(self, out: list, ind: str, target: str) -> None:
        out += [
            f"{ind}b = buf[pos]",
            f"{ind}if b < 128:",
            f"{ind}    {target} = (b >> 1) ^ -(b & 1)",
            f"{ind}    pos += 1",
            f"{ind}else:",
            f"{ind}    {target}, pos = _rlong(buf, pos)",
        ]

    def r_sized(self, out: list, ind: str, target: str, decode: bool) -> None:
        out += [
            f"{ind}b = buf[pos]",
            f"{ind}if not b & 0x81:",  # one byte, non-negative: the usual short string
            f"{ind}    e = pos + 1 + (b >> 1)",
            f"{ind}    pos += 1",
            f"{ind}else:",
            f"{ind}    L, pos = _rlong(buf, pos)",
            f"{ind}    if L < 0:",
            f"{ind}        raise _Bail",
            f"{ind}    e = pos + L",
            # no bounds check: a slice past the end leaves pos > len(buf), and the
            # caller accepts a result only when the record ends exactly at the end
            f"{ind}{target} = buf[pos:e]{'.decode()' if decode else ''}",
            f"{ind}pos = e",
        ]

    def container(self, side: str, kind: dict, out: list, ind: str, name: str) -> None:
        """Read or write (`side`) a map or an array: a map whose values fit a template in
        one piece, any other item by item in blocks."""
        is_map = kind["type"] == "map"
        if is_map:
            kinds = (read_kinds if side == "read" else write_kinds)(kind["values"])
            if kinds:
                self.template_map(side, kind, out, ind, name, kinds)
                return
        getattr(self, f"{side}_block")(kind, out, ind, name, is_map=is_map)

    def read(self, node: Any, out: list, ind: str, target: str) -> None:
        kind, logical = base_type(node)
        if isinstance(kind, list):
            if len(kind) > 63:
                raise UnsupportedSchema("union too wide")
            out += [f"{ind}b = buf[pos]", f"{ind}pos += 1"]
            for i, branch in enumerate(kind):
                out.append(f"{ind}{'if' if i == 0 else 'elif'} b == {2 * i}:")
                before = len(out)
                self.read(branch, out, ind + "    ", target)
                if len(out) == before:
                    out.append(f"{ind}    pass")
            out += [f"{ind}else:", f"{ind}    raise _Bail"]
            return
        if isinstance(kind, dict):
            t = kind["type"]
            if t in ("record", "error"):
                names = []
                for f in kind["fields"]:
                    var = self.tmp("f")
                    self.read(f["type"], out, ind, var)
                    names.append((f["name"], var))
                out.append(f"{ind}{target} = {{{', '.join(f'{k!r}: {v}' for k, v in names)}}}")
                return
            if t == "enum":
                syms = self.const(tuple(kind["symbols"]), "S")
                self.r_long(out, ind, "L")
                out += [
                    f"{ind}if not 0 <= L < {len(kind['symbols'])}:",
                    f"{ind}    raise _Bail",
                    f"{ind}{target} = {syms}[L]",
                ]
                return
            if t == "fixed":
                out += [
                    f"{ind}e = pos + {kind['size']}",
                    f"{ind}if e > n:",
                    f"{ind}    raise _Bail",
                    f"{ind}{target} = buf[pos:e]",
                    f"{ind}pos = e",
                ]
                return
            if t in ("map", "array"):
                self.container("read", kind, out, ind, target)
                return
            raise UnsupportedSchema(t)
        if kind == "null":
            out.append(f"{ind}{target} = None")
        elif kind == "boolean":
            out += [
                f"{ind}b = buf[pos]",
                f"{ind}pos += 1",
                f"{ind}if b > 1:",
                f"{ind}    raise _Bail",
                f"{ind}{target} = b == 1",
            ]
        elif kind in ("int", "long"):
            self.r_long(out, ind, target)
        elif kind in ("double", "float"):
            size, fn = (8, "_ud") if kind == "double" else (4, "_uf")
            out += [f"{ind}{target} = {fn}(buf, pos)[0]", f"{ind}pos += {size}"]
            if self.finite:
                out += [f"{ind}if {target} - {target}:", f"{ind}    raise _Bail"]
        elif kind == "string":
            self.r_sized(out, ind, target, decode=True)
        elif kind == "bytes":
            self.r_sized(out, ind, target, decode=False)
        else:
            raise UnsupportedSchema(str(kind))

    def read_block(self, kind: dict, out: list, ind: str, target: str, is_map: bool) -> None:
        count, key, item = self.tmp("c"), self.tmp("k"), self.tmp("x")
        out.append(f"{ind}{target} = {{}}" if is_map else f"{ind}{target} = []")
        out.append(f"{ind}while True:")
        inner = ind + "    "
        self.r_long(out, inner, count)
        out += [
            f"{inner}if not {count}:",
            f"{inner}    break",
            f"{inner}if {count} < 0:",
            f"{inner}    {count} = -{count}",
        ]
        self.r_long(out, inner + "    ", "L")
        out += [
            f"{inner}if {count} > n - pos:",
            f"{inner}    raise _Bail",
            f"{inner}for _ in range({count}):",
        ]
        body = inner + "    "
        if is_map:
            self.r_sized(out, body, key, decode=True)
            self.read(kind["values"], out, body, item)
            out.append(f"{body}{target}[{key}] = {item}")
        else:
            self.read(kind["items"], out, body, item)
            out.append(f"{body}{target}.append({item})")

    def template_map(
        self, side: str, kind: dict, out: list, ind: str, name: str, kinds: dict
    ) -> None:
        """Read or write (`side`) a map whose values fit a template: the generic block code
        becomes a function of its own, which the template's fast path wraps (and falls
        back to)."""
        reading = side == "read"
        fn_name = self.tmp("_gmap" if reading else "_gwmap")
        fn = [f"def {fn_name}(buf, pos, n):" if reading else f"def {fn_name}(w, V):"]
        getattr(self, f"{side}_block")(kind, fn, "    ", "T" if reading else "V", is_map=True)
        if reading:
            fn.append("    return T, pos")
        self.functions.append(fn)
        tname = self.tmp("_tmap" if reading else "_twmap")
        wrap = template_map_reader if reading else template_map_writer
        finite = self.finite
        self.bindings.append((tname, lambda ns, fn_name=fn_name: wrap(ns[fn_name], kinds, finite)))
        out.append(
            f"{ind}{name}, pos = {tname}(buf, pos, n)" if reading else f"{ind}{tname}(w, {name})"
        )

    # -- writer ------------------------------------------------------------------

    def w_long(self, out: list, ind: str, value: str, kind: str) -> None:
        slow = "_wint" if kind == "int" else "_wlong"
        out += [
            f"{ind}if type({value}) is int and -64 <= {value} < 64:",
            f"{ind}    w += _ZZ[{value} + 64]",
        ]
        if kind == "long":
            # Times and other large positive longs, inlined (see fast_long): the zig-zag n
            # of v >= 0 is 2v, so n & 0x7F is (v << 1) & 0x7F and n >> 7 is v >> 6.
            out += [
                f"{ind}elif type({value}) is int and 0x2000 <= {value} < 0x4000000000000000:",
                f"{ind}    w += _LOW7[({value} << 1) & 0x7F]",
                f"{ind}    w += _VT.get({value} >> 6) or _vtail({value} >> 6)",
            ]
        out += [
            f"{ind}else:",
            f"{ind}    w += {slow}({value})",
        ]

    def w_double(self, out: list, ind: str, value: str, kind: str) -> None:
        out += [
            f"{ind}if type({value}) is not float:",
            f"{ind}    if type({value}) is not int:",
            f"{ind}        raise _Bail",
            f"{ind}    {value} = float({value})",
        ]
        if self.finite:
            out += [f"{ind}if {value} - {value}:", f"{ind}    raise _Bail"]
        out.append(f"{ind}w += {'_pd' if kind == 'double' else '_pf'}({value})")

    def w_str(self, out: list, ind: str, value: str) -> None:
        flag, miss, cache = self.tmp("_SON"), self.tmp("_smiss"), self.tmp("_SC")
        self.ns[flag] = True
        self.bindings.append((miss, lambda ns, flag=flag: _string_cache(ns, flag)))
        self.bindings.append((cache, lambda ns, miss=miss: ns[miss].cache))
        out += [
            f"{ind}if {flag}:",
            f"{ind}    w += {cache}.get({value}) or {miss}({value})",
            f"{ind}else:",
            f"{ind}    if type({value}) is not str:",
            f"{ind}        raise _Bail",
            f"{ind}    s = {value}.encode()",
            f"{ind}    L = len(s)",
            f"{ind}    w += _ZZ[L + 64] if L < 64 else _wlong(L)",
            f"{ind}    w += s",
        ]

    def field_of(self, record: str, f: dict, out: list, ind: str) -> str:
        """A new variable bound to field `f` of the dict `record` (its default when the
        field is absent; a KeyError, so a bail, when it has none)."""
        var = self.tmp("v")
        if "default" in f:
            default = self.const(default_value(f["type"], f["default"]), "D")
            out.append(f"{ind}{var} = {record}.get({f['name']!r}, {default})")
        else:
            out.append(f"{ind}{var} = {record}[{f['name']!r}]")
        return var

    def write(self, node: Any, out: list, ind: str, value: str) -> None:
        kind, logical = base_type(node)
        if isinstance(kind, list):
            self.write_union(kind, out, ind, value)
            return
        if isinstance(kind, dict):
            t = kind["type"]
            if t in ("record", "error"):
                names = self.const(frozenset(f["name"] for f in kind["fields"]), "F")
                out += [
                    f"{ind}if type({value}) is not dict or not {value}.keys() <= {names}:",
                    f"{ind}    raise _Bail",
                ]
                for f in kind["fields"]:
                    self.write(f["type"], out, ind, self.field_of(value, f, out, ind))
                return
            if t in ("map", "array"):
                self.container("write", kind, out, ind, value)
                return
            if t == "enum":
                table = self.const({s: encode_long(i) for i, s in enumerate(kind["symbols"])}, "E")
                out.append(f"{ind}w += {table}[{value}]")
                return
            if t == "fixed":
                out += [
                    f"{ind}if type({value}) is not bytes or len({value}) != {kind['size']}:",
                    f"{ind}    raise _Bail",
                    f"{ind}w += {value}",
                ]
                return
            raise UnsupportedSchema(t)
        if kind == "null":
            out += [f"{ind}if {value} is not None:", f"{ind}    raise _Bail"]
        elif kind == "boolean":
            out += [
                f"{ind}if {value} is True:",
                f"{ind}    w.append(1)",
                f"{ind}elif {value} is False:",
                f"{ind}    w.append(0)",
                f"{ind}else:",
                f"{ind}    raise _Bail",
            ]
        elif kind in ("int", "long"):
            self.w_long(out, ind, value, kind)
        elif kind in ("double", "float"):
            self.w_double(out, ind, value, kind)
        elif kind == "string":
            self.w_str(out, ind, value)
        elif kind == "bytes":
            out += [
                f"{ind}if type({value}) is not bytes:",
                f"{ind}    raise _Bail",
                f"{ind}L = len({value})",
                f"{ind}w += _ZZ[L + 64] if L < 64 else _wlong(L)",
                f"{ind}w += {value}",
            ]
        else:
            raise UnsupportedSchema(str(kind))

    def write_block(self, kind: dict, out: list, ind: str, value: str, is_map: bool) -> None:
        pytype = "dict" if is_map else "list"
        item = self.tmp("x")
        out += [
            f"{ind}if type({value}) is not {pytype}:",
            f"{ind}    raise _Bail",
            f"{ind}if {value}:",
            f"{ind}    L = len({value})",
            f"{ind}    w += _ZZ[L + 64] if L < 64 else _wlong(L)",
        ]
        body = ind + "        "
        if is_map:
            key = self.tmp("k")
            out.append(f"{ind}    for {key}, {item} in {value}.items():")
            self.w_str(out, body, key)
            self.write(kind["values"], out, body, item)
        else:
            out.append(f"{ind}    for {item} in {value}:")
            self.write(kind["items"], out, body, item)
        out.append(f"{ind}w.append(0)")

    def write_union(self, branches: list, out: list, ind: str, value: str) -> None:
        if len(branches) > 63:
            raise UnsupportedSchema("union too wide")
        by_class: dict[str, list[tuple[int, Any, str]]] = {}
        for i, branch in enumerate(branches):
            kind, _ = base_type(branch)
            cls = union_class(branch)
            if cls in ("dict", "list", "bytes") and cls in by_class:
                raise UnsupportedSchema("union with two branches of one Python type")
            if isinstance(kind, dict) and kind["type"] == "enum":
                raise UnsupportedSchema("enum in a union")
            by_class.setdefault(cls, []).append((i, branch, kind))
        if "none" in by_class:
            out += [
                f"{ind}if {value} is None:",
                f"{ind}    w.append(0)"
                if by_class["none"][0][0] == 0
                else f"{ind}    w += {self.const(bytes([2 * by_class['none'][0][0]]), 'B')}",
                f"{ind}else:",
            ]
            ind += "    "
        out.append(f"{ind}t = type({value})")
        first = True
        for cls, pytypes in (
            ("num", ("float",)),
            ("num", ("int",)),
            ("str", ("str",)),
            ("bool", ("bool",)),
            ("bytes", ("bytes",)),
            ("dict", ("dict",)),
            ("list", ("list",)),
        ):
            cands = by_class.get(cls)
            if not cands:
                continue
            if pytypes == ("float",):
                cands = [c for c in cands if c[2] in ("float", "double")]
                if not cands:
                    continue
            out.append(f"{ind}{'if' if first else 'elif'} t is {pytypes[0]}:")
            first = False
            body = ind + "    "
            if pytypes == ("int",):
                self.write_int_chain(cands, out, body, value)
                continue
            i, branch, _ = cands[0]
            out.append(f"{body}w += {self.const(bytes([2 * i]), 'B')}")
            self.write(branch, out, body, value)
        out.append(f"{ind}{'raise _Bail' if first else 'else:'}")
        if not first:
            out.append(f"{ind}    raise _Bail")

    def write_int_chain(self, cands: list, out: list, ind: str, value: str) -> None:
        first = True
        for i, _branch, kind in cands:
            tag = self.const(bytes([2 * i]), "B")
            if kind in ("int", "long"):
                low, high = (INT_MIN, INT_MAX) if kind == "int" else (LONG_MIN, LONG_MAX)
                out.append(f"{ind}{'if' if first else 'elif'} {low} <= {value} <= {high}:")
                out.append(f"{ind}    w += {tag}")
                self.w_long(out, ind + "    ", value, kind)
                first = False
            else:  # float or double takes every int
                if first:
                    out.append(f"{ind}w += {tag}")
                    self.w_double(out, ind, value, kind)
                else:
                    out.append(f"{ind}else:")
                    out.append(f"{ind}    w += {tag}")
                    self.w_double(out, ind + "    ", value, kind)
                return
        out += [f"{ind}else:", f"{ind}    raise _Bail"]

    # -- assembly ----------------------------------------------------------------

    def build(self, tree: Any) -> tuple[Callable, Callable, str]:
        reader = ["def _read(buf, pos):", "    n = len(buf)"]
        self.read(tree, reader, "    ", "R")
        reader.append("    return R, pos")
        writer = ["def _write(R):", "    w = bytearray()"]
        self.write(tree, writer, "    ", "R")
        writer.append("    return bytes(w)")
        ns, source = self._assemble([reader, writer])
        return ns["_read"], ns["_write"], source

    def build_projection(self, tree: Any, given: Sequence[str]) -> Callable:
        """``_write_projection(R, X)``: the record whose fields named in `given` are the
        values in the tuple X (in that order), and whose other fields are R's; R's keys
        that are not fields are ignored. No record dict is built (a prediction from its
        request, ~0.9 µs less)."""
        kind, _ = base_type(tree)
        if not isinstance(kind, dict) or kind["type"] not in ("record", "error"):
            raise UnsupportedSchema("not a record")
        fields = [f["name"] for f in kind["fields"]]
        unknown = [name for name in given if name not in fields]
        if unknown:
            raise ValueError(f"{kind['name']} has no field {unknown[0]!r}")
        params = {name: f"X{i}" for i, name in enumerate(given)}
        writer = ["def _write_projection(R, X):", "    w = bytearray()"]
        if params:
            writer.append(f"    {', '.join(params.values())}, = X")
        writer += ["    if type(R) is not dict:", "        raise _Bail"]
        for f in kind["fields"]:
            var = params.get(f["name"]) or self.field_of("R", f, writer, "    ")
            self.write(f["type"], writer, "    ", var)
        writer.append("    return bytes(w)")
        ns, _ = self._assemble([writer])
        return ns["_write_projection"]

    def _assemble(self, functions: list[list[str]]) -> tuple[dict[str, Any], str]:
        source = "\n\n".join("\n".join(fn) for fn in [*self.functions, *functions]) + "\n"
        ns = dict(self.ns)
        exec(compile(source, "<lastmile codec>", "exec"), ns)  # noqa: S102 - generated from our schema
        for name, factory in self.bindings:
            ns[name] = factory(ns)
        return ns, source
