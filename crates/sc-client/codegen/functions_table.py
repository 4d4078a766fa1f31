"""Writes `src/functions/table.jsonl`: every function of PySpark's `pyspark.sql.functions`, its
parameters and how PySpark's Spark Connect client turns a call into a plan expression.

Run once with a Python that has the PySpark release to mirror (4.3) installed:

    python crates/sc-client/codegen/functions_table.py > crates/sc-client/src/functions/table.jsonl

Nothing is copied from PySpark's source: each function's signature is read with `inspect`, and
its expression is *observed* by calling `pyspark.sql.connect.functions.<name>` offline with marker
arguments (a column `__p_<param>`, a string `"__p_<param>"`, numbers 7000 + i) and reading the
protobuf expression it builds. A function whose expression is one `UnresolvedFunction` whose
arguments are parameters or constant literals is described as a template; for optional parameters
every combination (or, past four, a covering sample) is called and the template must predict
PySpark's expression for each, else the function is marked `manual` (written by hand in Rust).

The build script of sc-client turns the table into Rust functions.
"""

import inspect
import itertools
import json
import os
import re
import sys
import warnings

warnings.simplefilter("ignore")

import pyspark  # noqa: E402
import pyspark.sql.functions as F  # noqa: E402
import pyspark.sql.connect.functions as CF  # noqa: E402
from pyspark.sql.connect.column import Column  # noqa: E402
from pyspark.sql.connect.session import SparkSession  # noqa: E402

# The Python-UDF builders: they need a Python worker, out of scope for a Rust client.
UDF_BUILDERS = {"udf", "udtf", "pandas_udf", "arrow_udf", "arrow_udtf"}

RUST_KEYWORDS = {
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
}
# Not keywords, but primitive type names: a parameter called `str` would read badly.
PRIMITIVES = {"str", "char", "bool"}

spark = SparkSession.builder.remote("sc://127.0.0.1:1").create()
client = spark._client


class Manual(Exception):
    """The function does not fit the template model."""


def snake(name, param=False):
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    clash = s in RUST_KEYWORDS or (param and s in PRIMITIVES)
    return s + "_" if clash else s


def annotation_text(p):
    a = p.annotation
    s = a if isinstance(a, str) else a.__name__ if isinstance(a, type) else str(a)
    s = re.sub(r"ForwardRef\('([^']*)'\)", r"\1", s)
    s = s.replace("pyspark.sql.column.Column", "Column").replace("typing.", "")
    s = s.replace("pyspark.sql.types.", "")
    return s


def classify(p):
    """The kind of a parameter, from its annotation."""
    s = annotation_text(p)
    if "Callable" in s:
        raise Manual("lambda parameter")
    if "Mapping" in s:
        return "options"
    if "DataFrame" in s:
        raise Manual("DataFrame parameter")
    words = set(re.findall(r"[A-Za-z_]+", s))
    if p.kind == inspect.Parameter.VAR_POSITIONAL:
        if "ColumnOrName" in words:
            return "cols"
        if "Column" in words:
            return "values"
        if words <= {"str"}:
            return "strs"
        raise Manual(f"varargs of {s}")
    literal_types = words & {"int", "float", "str", "bool", "bytes", "Any", "Sequence", "Tuple"}
    if "DataType" in words or "StructType" in words or "ArrayType" in words:
        return "value"
    if "ColumnOrName" in words:
        return "col_or_value" if words & {"int", "float", "bool"} else "col"
    if "Column" in words:
        return "value" if literal_types else "column"
    if "Any" in words:
        return "value"
    if words <= {"int", "Optional", "NoneType", "Union"} and "int" in words:
        return "int"
    if words <= {"float", "Optional", "NoneType", "Union"} and "float" in words:
        return "float"
    if words <= {"str", "Optional", "NoneType", "Union"} and "str" in words:
        return "str"
    if words <= {"bool", "Optional", "NoneType", "Union"} and "bool" in words:
        return "bool"
    raise Manual(f"parameter type {s}")


def marker(kind, name, idx, flip=False):
    tag = f"__p_{name}"
    if kind in ("col", "col_or_value"):
        return tag
    if kind in ("column", "value"):
        return CF.col(tag)
    if kind == "int":
        return 7000 + idx
    if kind == "float":
        return 7000.5 + idx
    if kind == "str":
        return tag
    if kind == "bool":
        return not flip
    if kind == "cols":
        return [f"{tag}_0", f"{tag}_1"]
    if kind == "values":
        return [CF.col(f"{tag}_0"), CF.col(f"{tag}_1")]
    if kind == "strs":
        return [f"{tag}_0", f"{tag}_1"]
    if kind == "options":
        return {f"{tag}_k": f"{tag}_v"}
    raise AssertionError(kind)


def literal_of(e):
    """A JSON description of a constant literal expression, or None."""
    if e.WhichOneof("expr_type") != "literal":
        return None
    lt = e.literal
    k = lt.WhichOneof("literal_type")
    if k in ("integer", "long", "double", "float", "string", "boolean", "short", "byte"):
        return {"type": k, "value": getattr(lt, k)}
    if k == "null":
        return {"type": "null"}
    if k == "decimal":
        d = lt.decimal
        return {"type": "decimal", "value": d.value, "precision": d.precision, "scale": d.scale}
    return None


def describe_arg(e, params, flipped=None):
    """What an argument of the top-level call is: a parameter reference or a constant."""
    kind = e.WhichOneof("expr_type")
    if kind == "unresolved_attribute":
        ident = e.unresolved_attribute.unparsed_identifier
        m = re.fullmatch(r"__p_(\w+?)(?:_(\d))?", ident)
        if m:
            return {"param": m.group(1), "part": m.group(2), "as": "attribute"}
    if kind == "literal":
        lt = e.literal
        k = lt.WhichOneof("literal_type")
        if k == "string":
            m = re.fullmatch(r"__p_(\w+?)(?:_(\d))?", lt.string)
            if m:
                return {"param": m.group(1), "part": m.group(2), "as": "literal"}
        if k in ("integer", "long") and 7000 <= getattr(lt, k) < 7100:
            return {"param": params[getattr(lt, k) - 7000]["py"], "part": None, "as": "literal"}
        if k == "double" and 7000 <= lt.double < 7100 and lt.double % 1 == 0.5:
            return {"param": params[int(lt.double) - 7000]["py"], "part": None, "as": "literal"}
    if "__p_" in str(e) or re.search(r"\b70\d\d\b", str(e)):
        raise Manual("a parameter is nested inside another expression")
    c = literal_of(e)
    if c is None:
        raise Manual(f"constant argument that is not a literal: {kind}")
    return {"const": c}


def call(fn, params, present, flip=None):
    """Calls the PySpark function with markers for the required and `present` optional params."""
    args, kwargs = [], {}
    positional = True
    for i, p in enumerate(params):
        given = p["required"] or p["py"] in present or p["kind"] in ("cols", "values", "strs")
        if not given:
            positional = False
            continue
        v = marker(p["kind"], p["py"], i, flip == p["py"])
        if p["kind"] in ("cols", "values", "strs"):
            args.extend(v)
            positional = False
        elif positional:
            args.append(v)
        else:
            kwargs[p["py"]] = v
    c = fn(*args, **kwargs)
    if not isinstance(c, Column):
        raise Manual(f"returns {type(c).__name__}")
    return c._expr.to_plan(client)


def template_of(expr, params):
    if expr.WhichOneof("expr_type") != "unresolved_function":
        raise Manual(f"builds a {expr.WhichOneof('expr_type')}")
    f = expr.unresolved_function
    if f.is_user_defined_function:
        raise Manual("user-defined function call")
    return f.function_name, bool(f.is_distinct), [describe_arg(a, params) for a in f.arguments]


def slots_of(args, params):
    """Folds the parts of a varargs parameter into one slot."""
    out = []
    for a in args:
        if "param" in a and a["part"] is not None:
            if out and out[-1].get("param") == a["param"]:
                continue
            out.append({"param": a["param"], "as": a["as"]})
        elif "param" in a:
            out.append({"param": a["param"], "as": a["as"]})
        else:
            out.append(a)
    return out


def predict(slots, params, present):
    by = {p["py"]: p for p in params}
    out = []
    tail = True
    for s in reversed(slots):
        if "param" not in s:
            out.append({"const": s["const"]})
            continue
        p = by[s["param"]]
        if p["required"] or p["py"] in present or p["kind"] in ("cols", "values", "strs"):
            out.append({"param": p["py"], "as": s["as"]})
            tail = False
            continue
        fill = p["absent_trailing"] if tail else p["absent_middle"]
        if fill == "drop":
            continue
        if fill == "random_seed":
            out.append({"seed": True})
            continue
        out.append({"const": fill})
    return list(reversed(out))


def matches(want, got, params):
    """Whether PySpark's layout `got` is the predicted `want`; a bool parameter given `True` shows
    in `got` as the constant `true`."""
    if len(want) != len(got):
        return False
    kinds = {p["py"]: p["kind"] for p in params}
    for w, g in zip(want, got):
        if "param" in g:
            g = {"param": g["param"], "as": g["as"]}
        if w == g:
            continue
        if "param" in w and kinds[w["param"]] == "bool" and g == {"const": {"type": "boolean", "value": True}}:
            continue
        return False
    return True


def analyze(name):
    fn = getattr(CF, name)
    sig = inspect.signature(fn)
    params = []
    for p in sig.parameters.values():
        if p.kind == inspect.Parameter.VAR_KEYWORD:
            raise Manual("keyword varargs")
        kind = classify(p)
        required = p.default is inspect.Parameter.empty and p.kind != inspect.Parameter.VAR_POSITIONAL
        default = None
        if not required and p.kind != inspect.Parameter.VAR_POSITIONAL:
            default = p.default
            if default is not None and not isinstance(default, (int, float, str, bool)):
                raise Manual(f"default {default!r}")
        params.append({"py": p.name, "rust": snake(p.name, param=True), "kind": kind, "required": required,
                       "default": default, "annotation": annotation_text(p)})
    if any(p["kind"] == "options" for p in params):
        raise Manual("options map parameter")
    optional = [p["py"] for p in params if not p["required"] and p["kind"] not in ("cols", "values", "strs")]

    # The template from a call with every parameter given.
    spark_name, distinct, args = template_of(call(fn, params, set(optional)), params)
    # Each bool parameter: flip it and find the argument that changes.
    for p in params:
        if p["kind"] != "bool":
            continue
        _, _, flipped = template_of(call(fn, params, set(optional), flip=p["py"]), params)
        idx = [i for i, (a, b) in enumerate(zip(args, flipped)) if a != b]
        if len(idx) != 1 or len(args) != len(flipped):
            raise Manual(f"bool parameter {p['py']} not found in the call")
        args[idx[0]] = {"param": p["py"], "part": None, "as": "literal"}
    slots = slots_of(args, params)
    seen = [s["param"] for s in slots if "param" in s]
    if sorted(seen) != sorted(p["py"] for p in params) or len(set(seen)) != len(seen):
        raise Manual("parameters are not each one argument of the call")
    expected_as = {"col": "attribute", "col_or_value": "attribute", "column": "attribute",
                   "value": "attribute", "cols": "attribute", "values": "attribute",
                   "int": "literal", "float": "literal", "str": "literal", "bool": "literal",
                   "strs": "literal"}
    for s in slots:
        if "param" in s:
            p = next(p for p in params if p["py"] == s["param"])
            if expected_as[p["kind"]] != s["as"]:
                raise Manual(f"parameter {p['py']} of kind {p['kind']} arrives as {s['as']}")
    # A string passed where a literal is also accepted: a literal, or a column name?
    for i, p in enumerate(params):
        if p["kind"] != "value":
            continue
        probe = params.copy()
        probe[i] = dict(p, kind="str")
        try:
            _, _, probed = template_of(call(fn, probe, set(optional)), probe)
        except Manual:
            raise
        except Exception:  # noqa: BLE001 - PySpark refuses a string here: not a column name
            continue
        found = [a for a in probed if a.get("param") == p["py"]]
        if found and found[0]["as"] == "attribute":
            # A string names a column; numbers and booleans are still literals.
            numeric = set(re.findall(r"[A-Za-z_]+", p["annotation"])) & {"int", "float", "bool"}
            p["kind"] = "col_or_value" if numeric else "col"

    # Optional parameters: how each is filled when absent, checked against every combination.
    by = {p["py"]: p for p in params}
    combos = []
    if len(optional) <= 4:
        for r in range(len(optional) + 1):
            combos.extend(set(c) for c in itertools.combinations(optional, r))
    else:
        combos = [set(), set(optional)] + [{o} for o in optional] + [set(optional) - {o} for o in optional]
    observed = {}
    for present in combos:
        try:
            observed[frozenset(present)] = slots_of(template_of(call(fn, params, present), params)[2], params)
        except Manual:
            raise
        except Exception:  # PySpark rejects this combination
            observed[frozenset(present)] = None
    order = [s["param"] for s in slots if "param" in s and s["param"] in optional]

    def fill_candidates(present):
        got = observed.get(frozenset(present))
        if got is None:
            got = slots_of(template_of(call(fn, params, present), params)[2], params)
        return got

    # From the last optional parameter to the first: the trailing fill (nothing given after it),
    # then the middle fill (something given after it), each the reading that predicts PySpark.
    for k in range(len(order) - 1, -1, -1):
        o = order[k]
        p = by[o]
        for key, present in (("absent_trailing", set(order[:k])), ("absent_middle", set(optional) - {o})):
            if key == "absent_middle" and k == len(order) - 1:
                p[key] = p["absent_trailing"]
                continue
            try:
                got = fill_candidates(present)
            except Manual:
                raise
            except Exception:
                p[key] = p.get("absent_trailing", "drop") if key == "absent_middle" else "drop"
                continue
            candidates = ["drop"] + [g["const"] for g in got if "const" in g]
            p["absent_middle"] = p.get("absent_middle", "drop")
            for cand in candidates:
                p[key] = cand
                if matches(predict(slots, params, present), got, params):
                    break
            else:
                raise Manual(f"cannot tell how {o} is filled when absent")
    # A fill that changes from call to call is a random seed (drawn per call, as PySpark does).
    for k, o in enumerate(order):
        p = by[o]
        if p["absent_trailing"] == "drop" or p["kind"] not in ("int", "value", "col_or_value"):
            continue
        a = slots_of(template_of(call(fn, params, set(order[:k])), params)[2], params)
        b = slots_of(template_of(call(fn, params, set(order[:k])), params)[2], params)
        if a != b:
            p["absent_trailing"] = p["absent_middle"] = "random_seed"
            observed = {}  # the recorded layouts hold one draw each: nothing more to compare
    for present, got in observed.items():
        if got is None:
            continue
        want = predict(slots, params, set(present))
        if not matches(want, got, params):
            raise Manual(f"optional parameters do not follow the model (with {sorted(present)})")
    rejected = sorted(sorted(k) for k, v in observed.items() if v is None)
    return {"spark": spark_name, "distinct": distinct, "params": params, "slots": slots,
            "rejected_combinations": rejected}


def since_of(name):
    doc = getattr(F, name).__doc__ or ""
    m = re.search(r"versionadded::\s*([\d.]+)", doc)
    return m.group(1) if m else None


def deprecated_of(name):
    doc = getattr(F, name).__doc__ or ""
    m = re.search(r"deprecated::\s*([\d.]+)", doc)
    return m.group(1) if m else None


def main():
    names = sorted(n for n in F.__all__ if n[0].islower() and n not in UDF_BUILDERS)
    for name in names:
        row = {"name": name, "rust": snake(name), "since": since_of(name), "deprecated": deprecated_of(name)}
        try:
            row.update(analyze(name))
        except Exception as e:  # noqa: BLE001 - any failure means: not a template
            row["manual"] = str(e) if isinstance(e, Manual) else f"{type(e).__name__}: {e}"[:200]
            try:
                sig = inspect.signature(getattr(CF, name))
                row["params"] = [{"py": p.name, "rust": snake(p.name, param=True), "annotation": annotation_text(p),
                                  "required": p.default is inspect.Parameter.empty}
                                 for p in sig.parameters.values()]
            except (TypeError, ValueError):
                pass
        for p in row.get("params", []):
            if isinstance(p.get("default"), float) and p["default"] != p["default"]:
                p["default"] = None
        sys.stdout.write(json.dumps(row, sort_keys=True) + "\n")
    sys.stdout.write(json.dumps({"pyspark": pyspark.__version__, "count": len(names)}) + "\n")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
