"""MongoDB-style conditions (docs/DESIGN.md "Conditions").

The twin of sdk_js/src/condition.js: both must give the same answer on every vector in spec/.
Where Python and JavaScript differ by nature (bool is an int, NaN in lists, regex dialects,
string ordering by code point instead of UTF-16 unit), this module does what JavaScript does.
"""
import math
import re
from functools import lru_cache

__all__ = ["Unavailable", "eval_condition", "regex_problem"]


class _Bad(Exception):
    """A malformed condition: the whole condition is false."""


def _is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_arr(x):
    return isinstance(x, (list, tuple))


def _float(x):
    try:
        return float(x)
    except OverflowError:  # an int past the double range: JavaScript reads it as Infinity
        return math.inf if x > 0 else -math.inf


def _u16(s):
    """Order strings as JavaScript does: by UTF-16 code unit, not by code point."""
    return s.encode("utf-16-be", "surrogatepass")


_INDEX = re.compile(r"0|[1-9][0-9]*")
_DIGITS = re.compile(r"[0-9]+")


class Unavailable:
    """An attribute value no condition may read: a condition that reaches it is false as a whole
    (as a malformed one is), and the log hears `reason` (predict.<goal> without a model; the
    browser's twin is a property whose getter throws, sdk_js/src/predict.js)."""
    __slots__ = ("reason",)

    def __init__(self, reason):
        self.reason = reason


def attribute_at(obj, path):
    """The value at a dotted path (own keys; canonical integer segments index arrays), None if
    missing; an Unavailable met on the way is the answer."""
    for key in path.split("."):
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
            if type(obj) is Unavailable:
                return obj
        elif _is_arr(obj) and _INDEX.fullmatch(key) and int(key) < len(obj):
            obj = obj[int(key)]
        else:
            return None
    return obj


def _eq(a, b, i=False):
    """Deep, type-strict equality (1 never equals "1" or True); i: strings ignore case."""
    if i and isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _is_num(a) and _is_num(b):
        return _float(a) == _float(b)  # ints compare as doubles, like JavaScript's numbers
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if _is_arr(a) and _is_arr(b):
        return len(a) == len(b) and all(_eq(x, y, i) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_eq(a[k], b[k], i) for k in a)
    return False


def _match(a, e, i=False):
    """An array attribute matches a value when it equals it or one of its elements does."""
    return _eq(a, e, i) or (_is_arr(a) and any(_eq(x, e, i) for x in a))


def _some(a, f):
    return any(f(x) for x in a) if _is_arr(a) else f(a)


def _is_op(c):
    return isinstance(c, dict) and bool(c) and all(isinstance(k, str) and k.startswith("$") for k in c)


def _truthy(x):
    """JavaScript truthiness: [] and {} are true."""
    if x is None or x is False:
        return False
    if _is_num(x):
        return x == x and x != 0
    return x != ""


# JavaScript's WhiteSpace and LineTerminator, which Number(" 5 ") trims.
_JS_SPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
            "\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_JS_RADIX = re.compile(r"0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+")


def _js_number(x):
    """JavaScript's Number(x) for a scalar; NaN for anything it cannot read."""
    if x is None:
        return 0.0
    if isinstance(x, bool) or _is_num(x):
        return _float(x)
    if isinstance(x, str):
        s = x.strip(_JS_SPACE)
        if not s:
            return 0.0
        if _JS_DECIMAL.fullmatch(s):
            return float(s.replace("Infinity", "inf"))
        if _JS_RADIX.fullmatch(s):
            return _float(int(s, 0))
    return math.nan


def _js_string(x):
    """JavaScript's String(number)."""
    x = _float(x)
    if x != x:
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    r = repr(x)  # the shortest digits that round-trip, as JavaScript prints
    if "e" not in r:
        return r
    mantissa, exp = r.split("e")
    exp = int(exp)
    if -7 < exp < 0:  # JavaScript writes 0.00001 where Python writes 1e-05
        digits = mantissa.lstrip("-").replace(".", "")
        return ("-" if x < 0 else "") + "0." + "0" * (-exp - 1) + digits
    return f"{mantissa}e{'+' if exp > 0 else '-'}{abs(exp)}"


def _rel(op, a, e):
    """JavaScript's < <= > >= on scalars: numeric unless both are strings; arrays and objects never compare."""
    if _is_arr(a) or isinstance(a, dict) or _is_arr(e) or isinstance(e, dict):
        return False
    if isinstance(a, str) and isinstance(e, str):
        x, y = _u16(a), _u16(e)
    else:
        x, y = _js_number(a), _js_number(e)
    if op == "$lt":
        return x < y
    if op == "$lte":
        return x <= y
    if op == "$gt":
        return x > y
    return x >= y


def _ver(v):
    """"v1.2.3-rc.1+b7" -> "    1-    2-    3-rc-    1": ordered as plain strings."""
    s = _js_string(v) if _is_num(v) else v if isinstance(v, str) and v else "0"
    if s.startswith("v"):
        s = s[1:]
    parts = re.split(r"[-.]", s.split("+")[0])
    # "1.2" means 1.2.0, so it equals "1.2.0" and ranks above "1.2.0-beta".
    while len(parts) < 3 and all(_DIGITS.fullmatch(p) for p in parts):
        parts.append("0")
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5) if _DIGITS.fullmatch(p) else p for p in parts)


def _type(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if _is_num(v):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if _is_arr(v) else "object"


_VERSION_OPS = {"$veq", "$vne", "$vgt", "$vgte", "$vlt", "$vlte"}


def _op(op, a, e):
    i = op.endswith("i")
    if op in _VERSION_OPS:
        return _op("$" + op[2:], _ver(a), _ver(e))
    if op == "$eq":
        return _match(a, e)
    if op == "$ne":
        return not _match(a, e)
    if op in ("$lt", "$lte", "$gt", "$gte"):
        return _some(a, lambda x: _rel(op, x, e))
    if op in ("$in", "$ini", "$nin", "$nini"):
        if not _is_arr(e):
            raise _Bad(op + " needs an array")
        return any(_match(a, y, i) for y in e) == (op[1] == "i")
    if op in ("$all", "$alli"):
        if not _is_arr(e):
            raise _Bad(op + " needs an array")
        return _is_arr(a) and all(any(_val(c, x, i) for x in a) for c in e)
    if op in ("$regex", "$regexi"):
        rx = _regex(e, i) if isinstance(e, str) else None
        if rx is None:
            raise _Bad(f"bad regex {e}")
        return _some(a, lambda x: isinstance(x, str) and rx.search(_astral_to_pairs(x)) is not None)
    if op == "$exists":
        return _truthy(e) == (a is not None)
    if op == "$type":
        return _type(a) == e
    if op == "$size":
        return _is_arr(a) and _val(e, len(a))
    if op == "$elemMatch":
        if not isinstance(e, dict):
            raise _Bad("$elemMatch needs an object")
        return _is_arr(a) and any(x is not None and (_val(e, x) if _is_op(e) else _cond(e, x)) for x in a)
    if op == "$not":
        return not _val(e, a)
    raise _Bad(f"unknown operator {op}")


def _val(c, v, i=False):
    if _is_op(c):
        return all(_op(o, v, e) for o, e in c.items())
    return _match(v, c, i)


def _cond(c, obj):
    if not isinstance(c, dict):
        raise _Bad("condition must be an object")
    for k, v in c.items():
        if k == "$not":
            ok = not _cond(v, obj)
        elif k in ("$and", "$or", "$nor"):
            if not _is_arr(v):
                raise _Bad(k + " needs an array")
            if k == "$and":
                ok = all(_cond(x, obj) for x in v)
            else:
                # An empty $or is true, so an empty $nor is false (GrowthBook).
                ok = (not v or any(_cond(x, obj) for x in v)) == (k == "$or")
        else:
            value = attribute_at(obj, k)
            if type(value) is Unavailable:
                raise _Bad(value.reason)
            ok = _val(v, value)
        if not ok:
            return False
    return True


def eval_condition(condition, attributes, log=None):
    """True when `attributes` satisfy `condition`. Never raises: a malformed condition is false
    as a whole (even under $not or $nor) and `log(reason)` hears why."""
    try:
        return _cond(condition, attributes)
    except Exception as exc:  # _Bad, or RecursionError from absurdly deep nesting
        if callable(log):
            log(exc.args[0] if isinstance(exc, _Bad) else f"condition error: {exc}")
        return False


# --- Regular expressions: JavaScript's RegExp (no flags but i), translated for Python's re. ---
#
# The pattern is read as JavaScript reads it without the u flag (with the web-compatibility rules
# of ECMA-262 Annex B) and rewritten so Python matches the same strings: `.` stops at \r, \u2028
# and \u2029 too; `$` is the very end; \d \w \s \b are JavaScript's sets; `(?<name>` and `\k<name>`;
# a backreference to a group that has not matched is empty; `\a` is "a"; `{,5}` and `a{` are
# literal; what JavaScript rejects (possessive `a*+`, atomic groups, inline flags...) is rejected.
# Strings and patterns are compared as UTF-16 code units, as JavaScript does.

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _astral_to_pairs(s):
    if not _ASTRAL.search(s):
        return s
    return _ASTRAL.sub(lambda m: (lambda c: chr(0xD800 + (c >> 10)) + chr(0xDC00 + (c & 0x3FF)))(
        ord(m.group()) - 0x10000), s)


_WORD = [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)]
_SETS = {
    "d": [(0x30, 0x39)],
    "w": _WORD,
    "s": [(0x09, 0x0D), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A), (0x2028, 0x2029),
          (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000), (0xFEFF, 0xFEFF)],
}
_HEX = "0123456789abcdefABCDEF"
_QUANT = re.compile(r"\{([0-9]+)(?:(,)([0-9]*))?\}")


def _group_name(name):
    return name.replace("$", "_").isidentifier()


def _ranges(rs):
    return "".join(f"\\u{lo:04x}" if lo == hi else f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in rs)


_W = "[" + _ranges(_WORD) + "]"
_BOUNDARY = f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))"
_NOT_BOUNDARY = f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))"


def _char_escape(p, j, in_class):
    """The code unit of the escape whose letter is p[j]; returns (code, next index)."""
    c = p[j]
    simple = {"n": 10, "r": 13, "t": 9, "f": 12, "v": 11}
    if c in simple:
        return simple[c], j + 1
    if "0" <= c <= "7":  # Annex B legacy octal: at most \377
        k = j + 1
        limit = 3 if c <= "3" else 2
        while k < len(p) and k - j < limit and "0" <= p[k] <= "7":
            k += 1
        return int(p[j:k], 8), k
    for letter, size in (("x", 2), ("u", 4)):
        digits = p[j + 1:j + 1 + size]
        if c == letter and len(digits) == size and all(h in _HEX for h in digits):
            return int(digits, 16), j + 1 + size
    if c == "c":
        n = p[j + 1] if j + 1 < len(p) else ""
        if n.isascii() and (n.isalpha() or (in_class and (n.isdigit() or n == "_"))):
            return ord(n) % 32, j + 2
        return 0x5C, j  # "\c" without a control letter is a backslash, then "c"
    return ord(c), j + 1  # identity escape: "\a" is "a"


def _class(p, j, names):
    """Translate the class whose body starts at p[j]; returns (python, next index)."""
    neg = j < len(p) and p[j] == "^"
    if neg:
        j += 1
    items, negated = [], []

    def atom(j):
        if p[j] != "\\":
            return ("c", ord(p[j])), j + 1
        if j + 1 >= len(p):
            raise _Bad("unterminated class")
        c = p[j + 1]
        if c in "dwsDWS":
            return ("s", c), j + 2
        if c == "b":
            return ("c", 8), j + 2
        if c == "k" and names:
            raise _Bad("\\k in a class")
        code, k = _char_escape(p, j + 1, True)
        return ("c", code), k

    def add(a):
        if a[0] == "c":
            items.append((a[1], a[1]))
        elif a[1].islower():
            items.extend(_SETS[a[1]])
        else:
            negated.append(_SETS[a[1].lower()])

    while True:
        if j >= len(p):
            raise _Bad("unterminated class")
        if p[j] == "]":
            j += 1
            break
        a, j = atom(j)
        if j + 1 < len(p) and p[j] == "-" and p[j + 1] != "]":
            b, k = atom(j + 1)
            if a[0] == "s" or b[0] == "s":  # Annex B: [\d-z] is \d, "-" and "z"
                add(a)
                add(("c", 0x2D))
                add(b)
            elif a[1] > b[1]:
                raise _Bad("range out of order")
            else:
                items.append((a[1], b[1]))
            j = k
        else:
            add(a)
    alts = ([f"[{_ranges(items)}]"] if items else []) + [f"[^{_ranges(n)}]" for n in negated]
    if not alts:
        return ("(?s:.)" if neg else "(?!)"), j
    union = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    if neg:
        return (f"[^{_ranges(items)}]" if not negated else f"(?:(?!{union})(?s:.))"), j
    return union, j


def _translate(p, total, names):
    """One pass over a JavaScript pattern. Returns (python pattern, group count, group names)."""
    out, stack, closed, found = [], [], set(), {}
    groups, last, j, n = 0, None, 0, len(p)  # last: what a quantifier would apply to
    while j < n:
        c = p[j]
        j += 1
        if c == "\\":
            if j >= n:
                raise _Bad("\\ at end of pattern")
            e = p[j]
            if e in "bB":
                out.append(_BOUNDARY if e == "b" else _NOT_BOUNDARY)
                last, j = "assert", j + 1
                continue
            if e in "dwsDWS":
                rs = _ranges(_SETS[e.lower()])
                out.append(f"[{rs}]" if e.islower() else f"[^{rs}]")
                last, j = "atom", j + 1
                continue
            ref = None
            if "1" <= e <= "9":
                k = j
                while k < n and p[k].isascii() and p[k].isdigit():
                    k += 1
                if total is not None and int(p[j:k]) <= total:
                    ref, j = int(p[j:k]), k
            elif e == "k" and names:
                m = re.match(r"<([^>]*)>", p[j + 1:])
                if not m or m.group(1) not in names:
                    raise _Bad("bad named reference")
                ref, j = names[m.group(1)], j + 1 + m.end()
            if ref is not None:
                # JavaScript: a group that has not matched (yet) matches the empty string.
                out.append(f"(?({ref})\\{ref})" if ref in closed else "(?:)")
                last = "atom"
                continue
            code, j = _char_escape(p, j, False)
            out.append(re.escape(chr(code)))
            last = "atom"
        elif c == "(":
            if p.startswith("?", j):
                if p.startswith((":", "=", "!"), j + 1):
                    out.append("(?" + p[j + 1])
                    stack.append(("group", None))
                    j += 2
                elif p.startswith(("<=", "<!"), j + 1):
                    out.append("(?" + p[j + 1:j + 3])
                    stack.append(("behind", None))
                    j += 3
                else:
                    m = re.match(r"<([^>]*)>", p[j + 1:])
                    if not m or not _group_name(m.group(1)) or m.group(1) in found:
                        raise _Bad("bad group")
                    groups += 1
                    found[m.group(1)] = groups
                    out.append("(")
                    stack.append(("cap", groups))
                    j += 1 + m.end()
            else:
                groups += 1
                out.append("(")
                stack.append(("cap", groups))
            last = None
        elif c == ")":
            if not stack:
                raise _Bad("unmatched )")
            kind, num = stack.pop()
            out.append(")")
            if kind == "cap":
                closed.add(num)
            last = "assert" if kind == "behind" else "atom"
        elif c == "|":
            out.append("|")
            last = None
        elif c in "^$":
            out.append("^" if c == "^" else r"\Z")
            last = "assert"
        elif c == ".":
            out.append("[^\\n\\r\\u2028\\u2029]")
            last = "atom"
        elif c == "[":
            cls, j = _class(p, j, names)
            out.append(cls)
            last = "atom"
        elif c in "*+?" or (c == "{" and _QUANT.match(p, j - 1)):
            q = c
            if c == "{":
                m = _QUANT.match(p, j - 1)
                lo, comma, hi = m.groups()
                if hi and int(lo) > int(hi):
                    raise _Bad("numbers out of order in quantifier")
                q, j = m.group(), m.end()
            if last != "atom":
                raise _Bad("nothing to repeat")
            if p.startswith("?", j):
                q, j = q + "?", j + 1
            out.append(q)
            last = "quant"
        else:
            out.append(re.escape(c))  # Annex B: a lone { } or ] is a literal
            last = "atom"
    if stack:
        raise _Bad("unterminated group")
    return "".join(out), groups, found


def _python_regex(pattern, insensitive):
    p = _astral_to_pairs(pattern)
    _, total, names = _translate(p, None, None)
    python, _, _ = _translate(p, total, names)
    return re.compile(python, re.IGNORECASE if insensitive else 0)


@lru_cache(maxsize=512)
def _regex(pattern, insensitive):
    """The compiled Python twin of JavaScript's `new RegExp(pattern, insensitive ? "i" : "")`,
    or None where JavaScript throws (or, rarely, where Python cannot follow: see DESIGN.md)."""
    try:
        return _python_regex(pattern, insensitive)
    except (_Bad, re.error, OverflowError, RecursionError, ValueError):
        return None


def regex_problem(pattern):
    """Why `new RegExp(pattern)` fails (so a $regex condition on it is always false), or None.
    Config validation asks this, so it refuses exactly what the evaluators cannot run."""
    try:
        _python_regex(pattern, False)
    except _Bad as e:
        return e.args[0]
    except re.error as e:
        return str(e)
    except (OverflowError, RecursionError, ValueError):
        return "too large or too deeply nested"
    return None
