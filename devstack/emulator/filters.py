"""Subscription rules: TrueFilter, CorrelationFilter, SqlFilter (the common SQL-92 subset) and SqlRuleAction.

Semantics follow the Service Bus filter docs ("Topic filters and actions", "SQL filter syntax"):
a message is copied to a subscription when any of its rules matches; a rule's action (SET/REMOVE of
user properties) changes only that subscription's copy. SQL uses three-valued logic: a comparison
with a missing property is unknown, and unknown never matches. `sys.<Name>` reads a system property
(Label/Subject, MessageId, CorrelationId, To, ReplyTo, SessionId, ReplyToSessionId, ContentType);
`user.<name>` or a bare name reads an application property.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import frames
from .codec import Described, build_map_raw, decode, encode_bytes, map_entries_raw
from .message import Message


class FilterError(ValueError):
    """A filter or action the emulator cannot compile."""


# ---------------------------------------------------------------------------------------- message view
_SYS_INDEX = {
    "messageid": 0,
    "to": 2,
    "label": 3,
    "replyto": 4,
    "correlationid": 5,
    "contenttype": 6,
    "sessionid": 10,
    "replytosessionid": 12,
}


_SYS_ALIASES = {"subject": "label"}  # the AMQP name; Service Bus calls it Label (SDK: subject)


@dataclass
class MessageView:
    """System and application properties of a message, decoded once per fan-out."""

    system: dict[str, Any]
    user: dict[str, Any]

    @classmethod
    def of(cls, m: Message) -> MessageView:
        """Decode the properties and application-properties sections."""
        system: dict[str, Any] = {}
        if m.properties_raw:
            props, _ = decode(m.properties_raw, 0)
            fields_ = props.value if isinstance(props, Described) else []
            for name, idx in _SYS_INDEX.items():
                v = frames.field(fields_, idx)
                if v is not None:
                    system[name] = str(v) if not isinstance(v, (str, int, float, bool)) else v
        user: dict[str, Any] = {}
        if m.app_raw:
            value, _ = decode(m.app_raw, 3)
            if isinstance(value, dict):
                user = {str(k): v for k, v in value.items()}
        return cls(system, user)


# ---------------------------------------------------------------------------------------- correlation
_CORRELATION_KEYS = {
    "ContentType": "contenttype",
    "CorrelationId": "correlationid",
    "Label": "label",
    "Subject": "label",
    "MessageId": "messageid",
    "ReplyTo": "replyto",
    "ReplyToSessionId": "replytosessionid",
    "SessionId": "sessionid",
    "To": "to",
}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return bool(a == b)


def compile_correlation(spec: Any) -> Callable[[MessageView], bool]:
    """Every given system property and user property must be equal (no wildcards, like the service)."""
    if not isinstance(spec, dict) or not spec:
        raise FilterError("CorrelationFilter must be a non-empty object")
    system: list[tuple[str, Any]] = []
    user: list[tuple[str, Any]] = []
    for key, value in spec.items():
        if key == "Properties":
            if not isinstance(value, dict):
                raise FilterError("CorrelationFilter.Properties must be an object")
            user.extend(value.items())
        elif key in _CORRELATION_KEYS:
            system.append((_CORRELATION_KEYS[key], value))
        else:
            raise FilterError(f"unknown CorrelationFilter field {key!r}")

    def match(v: MessageView) -> bool:
        for name, want in system:
            if name not in v.system or not _equal(v.system[name], want):
                return False
        return all(name in v.user and _equal(v.user[name], want) for name, want in user)

    return match


# ---------------------------------------------------------------------------------------- SQL
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?)
    | (?P<str>'(?:[^']|'')*')
    | (?P<ident>(?:[A-Za-z_][A-Za-z0-9_]*|\[[^\]]+\])(?:\.(?:[A-Za-z_][A-Za-z0-9_-]*|\[[^\]]+\]))?)
    | (?P<op><>|!=|<=|>=|=|<|>|\(|\)|,|\+|-|\*|/|%|;)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "LIKE",
    "ESCAPE",
    "EXISTS",
    "TRUE",
    "FALSE",
    "SET",
    "REMOVE",
}

Expr = Callable[[MessageView], Any]


@dataclass
class _Tok:
    kind: str  # num | str | ident | kw | op | end
    text: str


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FilterError(f"unexpected character at {pos}: {text[pos : pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        tok = m.group(kind)
        if kind == "ident" and tok.upper() in _KEYWORDS:
            out.append(_Tok("kw", tok.upper()))
        else:
            out.append(_Tok(kind, tok))
    out.append(_Tok("end", ""))
    return out


def _property_ref(ident: str) -> tuple[str, str]:
    """'sys.Label' -> ('sys', 'label'); 'user.x' / 'x' / '[x y]' -> ('user', 'x')."""
    scope, _, name = ident.partition(".")
    if not name:
        scope, name = "user", scope
    scope = scope.lower()
    name = name[1:-1] if name.startswith("[") else name
    if scope == "sys":
        key = _SYS_ALIASES.get(name.lower(), name.lower())
        if key not in _SYS_INDEX:
            raise FilterError(f"unsupported system property sys.{name}")
        return "sys", key
    if scope != "user":
        raise FilterError(f"unknown property scope {scope!r}")
    return "user", name


def _like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape and ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    if _num(a) and _num(b):
        a, b = float(a), float(b)
    elif type(a) is not type(b):
        return False if op in ("=",) else (True if op in ("<>", "!=") else None)
    try:
        if op == "=":
            return bool(a == b)
        if op in ("<>", "!="):
            return bool(a != b)
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)
    except TypeError:
        return None


def _three_valued(a: bool | None, b: bool | None, absorbing: bool) -> bool | None:
    """SQL AND (absorbing False) or OR (absorbing True): unknown (None) only when it can change the result."""
    if a is absorbing or b is absorbing:
        return absorbing
    if a is None or b is None:
        return None
    return not absorbing


class _Parser:
    """Recursive descent over the filter grammar; builds closures evaluated per message."""

    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0

    # -- token helpers
    def peek(self, offset: int = 0) -> _Tok:
        return self.toks[min(self.i + offset, len(self.toks) - 1)]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def accept(self, kind: str, text: str | None = None) -> bool:
        t = self.peek()
        if t.kind == kind and (text is None or t.text == text):
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        t = self.peek()
        if t.kind != kind or (text is not None and t.text != text):
            raise FilterError(f"expected {text or kind}, found {t.text or 'end of expression'!r}")
        self.i += 1
        return t

    # -- grammar
    def condition(self) -> Expr:
        return self._chain(self.conjunction, "OR", absorbing=True)

    def conjunction(self) -> Expr:
        return self._chain(self.negation, "AND", absorbing=False)

    def _chain(
        self,
        operand: Callable[[], Expr],
        keyword: str,
        *,
        absorbing: bool,
    ) -> Expr:
        """operand (keyword operand)*, folded left with three-valued AND (absorbing False) or OR (True)."""
        left = operand()
        while self.accept("kw", keyword):
            right = operand()
            left = (lambda a, b: lambda v: _three_valued(a(v), b(v), absorbing))(left, right)
        return left

    def negation(self) -> Expr:
        if self.accept("kw", "NOT"):
            inner = self.negation()
            return lambda v: None if (r := inner(v)) is None else not r
        return self.predicate()

    def predicate(self) -> Expr:
        if self.accept("kw", "EXISTS"):
            self.expect("op", "(")
            scope, name = _property_ref(self.expect("ident").text)
            self.expect("op", ")")
            return lambda v: name in (v.system if scope == "sys" else v.user)
        left = self.additive()
        negate = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.expect("op", "(")
            items = [self.additive()]
            while self.accept("op", ","):
                items.append(self.additive())
            self.expect("op", ")")

            def in_list(v: MessageView) -> bool | None:
                x = left(v)
                if x is None:
                    return None
                hit = any(_compare("=", x, item(v)) for item in items)
                return hit != negate

            return in_list
        if self.accept("kw", "LIKE"):
            pattern = self.expect("str").text[1:-1].replace("''", "'")
            esc = None
            if self.accept("kw", "ESCAPE"):
                esc = self.expect("str").text[1:-1].replace("''", "'")
            rx = _like_regex(pattern, esc)

            def like(v: MessageView) -> bool | None:
                x = left(v)
                if not isinstance(x, str):
                    return None
                return (rx.fullmatch(x) is not None) != negate

            return like
        if negate:
            raise FilterError("NOT must be followed by IN or LIKE here")
        if self.accept("kw", "IS"):
            is_not = self.accept("kw", "NOT")
            self.expect("kw", "NULL")
            return lambda v: (left(v) is None) != is_not
        t = self.peek()
        if t.kind == "op" and t.text in ("=", "<>", "!=", "<", "<=", ">", ">="):
            self.take()
            right = self.additive()
            op = t.text
            return lambda v: _compare(op, left(v), right(v))
        return left  # a bare boolean operand (TRUE, FALSE, a boolean property, a parenthesised condition)

    def additive(self) -> Expr:
        left = self.multiplicative()
        while self.peek().kind == "op" and self.peek().text in ("+", "-"):
            op = self.take().text
            right = self.multiplicative()
            left = self._arith(op, left, right)
        return left

    def multiplicative(self) -> Expr:
        left = self.unary()
        while self.peek().kind == "op" and self.peek().text in ("*", "/", "%"):
            op = self.take().text
            right = self.unary()
            left = self._arith(op, left, right)
        return left

    @staticmethod
    def _arith(op: str, a: Expr, b: Expr) -> Expr:
        def run(v: MessageView) -> Any:
            x, y = a(v), b(v)
            if op == "+" and isinstance(x, str) and isinstance(y, str):
                return x + y
            if not (_num(x) and _num(y)):
                return None
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            if y == 0:
                return None
            if op == "/":
                return x / y if isinstance(x, float) or isinstance(y, float) else int(x / y)
            return x % y

        return run

    def unary(self) -> Expr:
        if self.accept("op", "-"):
            inner = self.unary()
            return lambda v: -x if _num(x := inner(v)) else None
        if self.accept("op", "+"):
            return self.unary()
        return self.primary()

    def primary(self) -> Expr:
        t = self.take()
        if t.kind == "num":
            value: Any = float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
            return lambda v: value
        if t.kind == "str":
            s = t.text[1:-1].replace("''", "'")
            return lambda v: s
        if t.kind == "kw" and t.text in ("TRUE", "FALSE"):
            b = t.text == "TRUE"
            return lambda v: b
        if t.kind == "kw" and t.text == "NULL":
            return lambda v: None
        if t.kind == "ident":
            scope, name = _property_ref(t.text)
            if scope == "sys":
                return lambda v: v.system.get(name)
            return lambda v: v.user.get(name)
        if t.kind == "op" and t.text == "(":
            inner = self.condition()
            self.expect("op", ")")
            return inner
        raise FilterError(f"unexpected {t.text or 'end of expression'!r}")


def compile_sql(text: Any) -> Callable[[MessageView], bool]:
    """Compile a SqlFilter expression; only a definite TRUE matches."""
    if not isinstance(text, str) or not text.strip():
        raise FilterError("SqlFilter.SqlExpression must be a non-empty string")
    p = _Parser(text)
    expr = p.condition()
    p.expect("end")
    return lambda v: expr(v) is True


@dataclass
class _Assignment:
    name: str
    value: Expr | None  # None = REMOVE


def compile_action(text: str) -> list[_Assignment]:
    """SqlRuleAction: `SET user.p = <expr>` / `REMOVE p`, separated by ';' (user properties only)."""
    p = _Parser(text)
    out: list[_Assignment] = []
    while p.peek().kind != "end":
        if p.accept("kw", "SET"):
            scope, name = _property_ref(p.expect("ident").text)
            if scope != "user":
                raise FilterError("only user properties can be SET by this emulator")
            p.expect("op", "=")
            out.append(_Assignment(name, p.additive()))
        elif p.accept("kw", "REMOVE"):
            scope, name = _property_ref(p.expect("ident").text)
            if scope != "user":
                raise FilterError("only user properties can be REMOVEd by this emulator")
            out.append(_Assignment(name, None))
        else:
            raise FilterError(f"expected SET or REMOVE, found {p.peek().text!r}")
        if not p.accept("op", ";"):
            break
    p.expect("end")
    if not out:
        raise FilterError("empty action")
    return out


# ---------------------------------------------------------------------------------------- rules
@dataclass
class Rule:
    """A compiled rule: name, match predicate, optional action."""

    name: str
    match: Callable[[MessageView], bool]
    action: list[_Assignment] = field(default_factory=list)

    def apply_action(self, m: Message, view: MessageView) -> None:
        """Run SET/REMOVE on the subscription's copy (other subscriptions keep the original)."""
        if not self.action:
            return
        updates: dict[str, Any] = {}
        removed: set[str] = set()
        for a in self.action:
            if a.value is None:
                removed.add(a.name)
            else:
                updates[a.name] = a.value(view)
        existing: list[tuple[Any, bytes]] = []
        if m.app_raw:
            existing, _ = map_entries_raw(m.app_raw, 3)
        drop = removed | set(updates)
        keep = [raw for key, raw in existing if key not in drop]
        keep += [encode_bytes(k) + encode_bytes(v) for k, v in updates.items() if v is not None]
        m.app_raw = b"\x00\x53\x74" + build_map_raw(keep)


TRUE_RULE_NAME = "$Default"


class RuleSpec(Protocol):
    """A rule as configured (config.RuleConfig). A protocol, so this module does not import config.py,
    which compiles rules with it to validate a Config.json."""

    @property
    def name(self) -> str: ...

    @property
    def filter_type(self) -> str: ...

    @property
    def filter(self) -> Any: ...

    @property
    def action(self) -> str | None: ...


_PARAMETER = re.compile(r"'(?:[^']|'')*'|@[A-Za-z_][A-Za-z0-9_]*")


def bind_parameters(expression: Any, parameters: dict[str, Any] | None) -> Any:
    """SqlFilter.Parameters: each `@name` outside string literals becomes its value as a SQL literal
    (the admin API's SqlRuleFilter(expression, parameters={"@name": value}))."""
    if not parameters or not isinstance(expression, str):
        return expression

    def literal(m: re.Match[str]) -> str:
        token = m.group(0)
        if token.startswith("'"):
            return token
        if token not in parameters:
            raise FilterError(f"no value for parameter {token}")
        value = parameters[token]
        if isinstance(value, bool):
            return "TRUE" if value else "FALSE"
        if isinstance(value, int | float):
            return repr(value)
        return "'" + str(value).replace("'", "''") + "'"

    return _PARAMETER.sub(literal, expression)


def compile_rule(rule: RuleSpec) -> Rule:
    """Config rule -> Rule (raises FilterError with a readable reason)."""
    if rule.filter_type == "Correlation":
        match = compile_correlation(rule.filter)
    elif rule.filter_type == "Sql":
        match = compile_sql(bind_parameters(rule.filter, getattr(rule, "parameters", None)))
    elif rule.filter_type == "True":
        match = lambda v: True  # noqa: E731
    else:
        raise FilterError(f"unknown filter type {rule.filter_type!r}")
    action = compile_action(rule.action) if rule.action else []
    return Rule(rule.name, match, action)


def default_rules() -> list[Rule]:
    """A subscription without rules gets the service's default rule: $Default, TrueFilter."""
    return [Rule(TRUE_RULE_NAME, lambda v: True)]
