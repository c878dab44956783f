"""Parse ``.arch`` text into the AST of :mod:`resdsl.syntax.ast`.

The grammar lives in ``grammars/arch.lark``; Lark's LALR parser builds a tree and
:class:`ToAst` (a Transformer that only builds nodes) turns it into frozen dataclasses.
Lark's exceptions never escape: syntax errors become :class:`ResdslError` worded in the
language's own terms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from resdsl.diagnostics import ResdslError, error
from resdsl.resources import grammar_path
from resdsl.syntax import ast

# How the grammar's terminals read to a user; string terminals read as themselves.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "a whole number",
    "FLOAT": "a decimal number",
    "STRING": 'a "string"',
    "SHAPE": "a shape like 3 x 224 x 224",
    "$END": "end of file",
}


class BodyNames:
    """Lark's post-lexer for the language: inside braces, ``block``, ``network`` and ``import``
    are names. They are keywords only where a file's statements start, yet LALR merges the
    lookaheads of a call ending a body statement with those of a network alias's call ending a
    top-level one, so the contextual lexer would read ``block`` after ``x = f(8)`` as the
    keyword. PyTorch models name layers so (torchvision's ConvNeXt block holds ``self.block``)."""

    always_accept: tuple[str, ...] = ()

    def process(self, stream: Iterable[Token]) -> Iterable[Token]:
        depth = 0
        for tok in stream:
            if tok.type == "LBRACE":
                depth += 1
            elif tok.type == "RBRACE":
                depth = max(depth - 1, 0)
            elif depth and tok.type in _TOP_LEVEL_TERMINALS:
                tok = Token.new_borrow_pos("NAME", str(tok), tok)
            yield tok


def open_grammar(**options: Any) -> Lark:
    """The language's grammar as an LALR parser with positions; ``options`` add to or override
    these defaults (``resdsl fmt`` keeps every token and collects comments)."""
    defaults: dict[str, Any] = {
        "parser": "lalr",
        "propagate_positions": True,
        "maybe_placeholders": True,
        "postlex": BodyNames(),
    }
    return Lark.open(str(grammar_path()), **{**defaults, **options})


@cache
def _lark() -> Lark:
    return open_grammar(start=["start", "expr"], cache=True)


def _span(file: str, meta_or_token: object) -> ast.Span:
    m = meta_or_token
    return ast.Span(file, m.line, m.column, m.end_line, m.end_column)  # type: ignore[attr-defined]


@v_args(meta=True, inline=True)
class ToAst(Transformer):
    """Builds AST nodes from the parse tree; knows nothing about what they mean."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _s(self, meta: object) -> ast.Span:
        return _span(self.file, meta)

    # definitions
    def start(self, meta: object, *items: object) -> ast.Module:
        imports = tuple(i for i in items if isinstance(i, ast.Import))
        defs = tuple(i for i in items if not isinstance(i, ast.Import))
        span = self._s(meta) if not getattr(meta, "empty", True) else ast.Span(self.file, 1, 1, 1, 1)
        return ast.Module(self.file, imports, defs, span)  # type: ignore[arg-type]

    def import_stmt(self, meta: object, path: Token) -> ast.Import:
        return ast.Import(_unquote(path, self.file), self._s(meta))

    def block_def(self, meta: object, name: Token, params: object, body: tuple) -> ast.BlockDef:
        return ast.BlockDef(str(name), params or (), body, self._s(meta), self._s(name))  # type: ignore[arg-type]

    def network_def(self, meta: object, name: Token, params: object, body: tuple) -> ast.NetworkDef:
        return ast.NetworkDef(str(name), params or (), body, self._s(meta), self._s(name))  # type: ignore[arg-type]

    def network_alias(self, meta: object, name: Token, target: ast.Call | ast.FuncCall) -> ast.NetworkAlias:
        """``network b = a(...)``: ``a`` names a network, even one named like a builtin function."""
        call = ast.Call(target.func, target.args, target.span, target.func_span)
        return ast.NetworkAlias(str(name), call, self._s(meta), self._s(name))

    def param_list(self, meta: object, *params: ast.Param | None) -> tuple[ast.Param, ...]:
        return tuple(p for p in params if p is not None)

    def param(self, meta: object, name: Token, default: ast.Expr | None) -> ast.Param:
        return ast.Param(str(name), default, self._s(meta))

    def body(self, meta: object, *stmts: ast.Stmt) -> tuple[ast.Stmt, ...]:
        return stmts

    # statements
    def input_stmt(self, meta: object, *parts: Token | ast.Expr) -> ast.InputStmt:
        """``input 3 x 224 x 224`` (one SHAPE token) or ``input 3 x s x s`` (expressions between
        INPUT_X separators): either way one expression per size, a literal's with its own span."""
        if len(parts) == 1 and isinstance(parts[0], Token) and parts[0].type == "SHAPE":
            return ast.InputStmt(self._shape_sizes(parts[0]), self._s(meta))
        dims = tuple(p for p in parts if not isinstance(p, Token))
        return ast.InputStmt(dims, self._s(meta))  # type: ignore[arg-type]

    def _shape_sizes(self, shape: Token) -> tuple[ast.Expr, ...]:
        sizes: list[ast.Expr] = []
        for found in re.finditer(r"\d+", str(shape)):
            text = str(shape)[: found.start()]
            line = (shape.line or 1) + text.count("\n")
            column = (shape.column or 1) + found.start() if "\n" not in text else found.start() - text.rfind("\n")
            tok = Token("INT", found.group(), line=line, column=column)
            span = ast.Span(self.file, line, column, line, column + len(found.group()))
            sizes.append(ast.IntLit(_whole_number(tok, self.file), span))
        return tuple(sizes)

    def meta_stmt(self, meta: object, *entries: ast.MetaEntry) -> ast.MetaStmt:
        return ast.MetaStmt(entries, self._s(meta))

    def meta_entry(self, meta: object, name: Token, value: ast.Expr) -> ast.MetaEntry:
        return ast.MetaEntry(str(name), value, self._s(meta))

    def assign(self, meta: object, name: Token, value: ast.Expr) -> ast.Assign:
        return ast.Assign(str(name), value, self._s(meta), self._s(name))

    def bare_layer(self, meta: object, name: Token) -> ast.LayerStmt:
        return ast.LayerStmt(ast.Name(str(name), self._s(name)), self._s(meta))

    def call_layer(self, meta: object, call: ast.Call) -> ast.LayerStmt:
        return ast.LayerStmt(call, self._s(meta))

    def cond_layer(self, meta: object, then: ast.Expr, test: ast.Expr, orelse: ast.Expr) -> ast.LayerStmt:
        """``relu if act else identity`` on its own: an anonymous layer chosen by a condition."""
        span = self._s(meta)
        return ast.LayerStmt(ast.Cond(test, then, orelse, span), span)

    # expressions
    def _bin(op: str):  # type: ignore[misc]
        def build(self: ToAst, meta: object, left: ast.Expr, right: ast.Expr) -> ast.BinOp:
            return ast.BinOp(op, left, right, self._s(meta))

        return build

    eq = _bin("==")
    ne = _bin("!=")
    lt = _bin("<")
    le = _bin("<=")
    gt = _bin(">")
    ge = _bin(">=")
    add = _bin("+")
    sub = _bin("-")
    mul = _bin("*")
    div = _bin("/")
    floordiv = _bin("//")
    mod = _bin("%")
    pow = _bin("**")
    or_ = _bin("or")
    and_ = _bin("and")

    def not_(self, meta: object, operand: ast.Expr) -> ast.Not:
        return ast.Not(operand, self._s(meta))

    def ifelse(self, meta: object, then: ast.Expr, test: ast.Expr, orelse: ast.Expr) -> ast.Cond:
        return ast.Cond(test, then, orelse, self._s(meta))

    def neg(self, meta: object, operand: ast.Expr) -> ast.Neg:
        return ast.Neg(operand, self._s(meta))

    def int_lit(self, meta: object, tok: Token) -> ast.IntLit:
        return ast.IntLit(_whole_number(tok, self.file), self._s(meta))

    def float_lit(self, meta: object, tok: Token) -> ast.FloatLit:
        return ast.FloatLit(float(tok), self._s(meta))

    def str_lit(self, meta: object, tok: Token) -> ast.StrLit:
        return ast.StrLit(_unquote(tok, self.file), self._s(meta))

    def true_lit(self, meta: object) -> ast.BoolLit:
        return ast.BoolLit(True, self._s(meta))

    def false_lit(self, meta: object) -> ast.BoolLit:
        return ast.BoolLit(False, self._s(meta))

    def name(self, meta: object, tok: Token) -> ast.Name:
        return ast.Name(str(tok), self._s(meta))

    def index(self, meta: object, value: ast.Expr, index: ast.Expr) -> ast.Index:
        return ast.Index(value, index, self._s(meta))

    def list_lit(self, meta: object, *items: ast.Expr | None) -> ast.ListExpr:
        return ast.ListExpr(tuple(i for i in items if i is not None), self._s(meta))

    def list_comp(self, meta: object, item: ast.Expr, *loops: ast.Loop) -> ast.ListComp:
        return ast.ListComp(item, loops, self._s(meta))

    def comp_for(self, meta: object, name: Token, iterable: ast.Expr, cond: ast.Expr | None) -> ast.Loop:
        if str(name) in RESERVED_WORDS:
            raise reserved_word(str(name), self._s(name), "a loop variable")
        return ast.Loop(str(name), iterable, cond, self._s(meta), self._s(name))

    def call(self, meta: object, func: Token, *args: ast.Arg | None) -> ast.Call | ast.FuncCall:
        """A call of a name: a builtin function (a value) or an op, block or form (a layer)."""
        kind = ast.FuncCall if str(func) in ast.BUILTIN_FUNCTIONS else ast.Call
        return kind(str(func), tuple(a for a in args if a is not None), self._s(meta), self._s(func))

    def pos_arg(self, meta: object, value: ast.Expr) -> ast.Arg:
        return ast.Arg(None, value, self._s(meta))

    def kw_arg(self, meta: object, name: Token, value: ast.Expr) -> ast.Arg:
        return ast.Arg(str(name), value, self._s(meta))


MAX_DIGITS = 40  # far above any real size (10**40), far below Python's int-parsing limit


def _whole_number(tok: Token, file: str) -> int:
    text = str(tok)
    if len(text) > MAX_DIGITS:
        span = ast.Span(file, tok.line or 1, tok.column or 1, tok.line or 1, (tok.column or 1) + len(text))
        raise ResdslError(
            error(
                "E605",
                f"a number of {len(text)} digits; the limit is {MAX_DIGITS}",
                span,
                help="no layer size or count needs more; check for a pasted or repeated number",
            )
        )
    return int(text)


_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|.)", re.S)


def _unquote(tok: Token, file: str = "<string>") -> str:
    r"""A string literal's value: escapes \\ \" \n \t \r \xNN \uXXXX \UXXXXXXXX; any other is an error."""

    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code in _ESCAPES:
            return _ESCAPES[code]
        if len(code) in (3, 5, 9) and int(code[1:], 16) <= 0x10FFFF:  # \xNN, \uXXXX, \UXXXXXXXX
            return chr(int(code[1:], 16))
        column = (tok.column or 1) + m.start()
        span = ast.Span(file, tok.line or 1, column, tok.line or 1, column + 2)
        raise ResdslError(
            error(
                "E006",
                f"unknown escape '\\{code}' in a string",
                span,
                help=r"strings know \\ \" \n \t \r \xNN and \uXXXX; write a backslash as \\",
            )
        )

    return _ESCAPE.sub(one, str(tok)[1:-1])


def _expected_words(expected: Iterable[object]) -> str:
    lark = _lark()
    words = set()
    for name in map(str, expected):
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
            continue
        try:
            pattern = lark.get_terminal(name).pattern
        except KeyError:
            words.add(name.lower())
            continue
        words.add(f"'{pattern.value}'" if pattern.type == "str" else name.lower())
    ordered = sorted(words)
    if len(ordered) > 6:
        ordered = [*ordered[:6], "..."]
    return ", ".join(ordered)


def _keyword_as_name(file: str, text: str, exc: UnexpectedToken) -> tuple[str, ast.Span] | None:
    """A reserved word used where a name belongs: ``input = conv(8)`` (the '=' is unexpected after
    the keyword ``input``), ``block meta(...)`` or ``network input()`` (the keyword itself is)."""
    tok = exc.token
    if tok.value in RESERVED_WORDS and "NAME" in exc.expected:
        return tok.value, ast.Span(file, tok.line, tok.column, tok.line, tok.column + len(tok.value))
    if tok.type == "EQUAL" and tok.start_pos is not None:
        before = re.search(r"([A-Za-z_]\w*)[ \t]*$", text[: tok.start_pos])
        if before and before.group(1) in RESERVED_WORDS:
            start = before.start(1)
            line = text.count("\n", 0, start) + 1
            column = start - (text.rfind("\n", 0, start) + 1) + 1
            return before.group(1), ast.Span(file, line, column, line, column + len(before.group(1)))
    return None


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "SHAPE":
        return f"shape '{tok.value}'" if "x" in tok.value else f"number '{tok.value}'"
    if tok.type in ("NAME", "INT", "FLOAT", "STRING"):
        return f"{_TERMINAL_WORDS[tok.type].split(' ', 1)[1] if tok.type != 'STRING' else 'string'} {tok.value!r}"
    return f"'{tok.value}'"


def _syntax_error(file: str, text: str, exc: UnexpectedInput) -> ResdslError:
    line, column = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream if exc.pos_in_stream is not None else -1
        ch = text[pos] if 0 <= pos < len(text) else "?"
        span = ast.Span(file, line, column, line, column + 1)
        hint = "strings use double quotes" if ch == "'" else None
        return ResdslError(error("E002", f"unexpected character {ch!r}", span, help=hint))
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        lines = text.split("\n")  # lines as the parser counts them (not str.splitlines)
        # point just past the last code on the last line that has any (not at a trailing comment)
        number = len(lines)
        while number > 1 and not re.sub(r"#.*", "", lines[number - 1]).strip():
            number -= 1
        end = len(re.sub(r"#[^\"]*$", "", lines[number - 1]).rstrip()) + 1
        span = ast.Span(file, number, end, number, end + 1)
        expected = _expected_words(exc.expected) if exc.expected else "more input"
        return ResdslError(
            error("E003", f"unexpected end of file; expected {expected}", span, help="is a '}' or ')' missing?")
        )
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    end_col = (tok.end_column or column + 1) if tok.end_line == tok.line else column + 1
    span = ast.Span(file, line, column, line, end_col)
    word = _keyword_as_name(file, text, exc)
    if word is not None:
        return reserved_word(*word)
    hint = None
    if tok.type in ("SHAPE",) or (tok.type == "NAME" and tok.value.startswith("x")):
        hint = "write the input shape as: input 3 x 224 x 224"
    elif tok.type == "EQUAL":
        hint = "a layer or value is named with 'name = ...' at the start of a statement"
    elif tok.type == "INT" and "NAME" in exc.expected:
        hint = "names start with a letter or '_'"
    message = f"unexpected {_describe_token(tok)}; expected {_expected_words(exc.expected)}"
    return ResdslError(error("E001", message, span, help=hint))


MAX_SYNTAX_ERRORS = 1000
# Words the grammar reserves. With Lark's contextual lexer some of them still lex as names where
# the keyword cannot appear, but a name that is sometimes a keyword is a trap: all are refused.
RESERVED_WORDS = frozenset(
    {"import", "block", "network", "input", "meta", "true", "false", "if", "else", "and", "or", "not", "for", "in"}
)
# The words that are keywords only where a file's statements start (an import, a block or a
# network definition): inside a body they are names (:class:`BodyNames`), so a layer or value
# there may be named with them, keeping a model's keys (torchvision's `block.0.weight`).
TOP_LEVEL_WORDS = frozenset({"import", "block", "network"})
_TOP_LEVEL_TERMINALS = frozenset(w.upper() for w in TOP_LEVEL_WORDS)  # Lark's names for "block", ...
LAYER_RESERVED_WORDS = RESERVED_WORDS - TOP_LEVEL_WORDS  # what a layer or value name may not be
MAX_EXPR_DEPTH = 100  # nesting of expressions: real specs stay below 10


def reserved_word(name: str, span: ast.Span, what: str = "a name") -> ResdslError:
    """E005: a language keyword where a name was meant."""
    return ResdslError(
        error(
            "E005",
            f"'{name}' is a reserved word of the language and cannot be {what}",
            span,
            help=f"rename it, e.g. '{name}_' (reserved: {', '.join(sorted(RESERVED_WORDS))})",
        )
    )


def parse(text: str, file: str = "<string>") -> ast.Module:
    """Parse one ``.arch`` file; raises :class:`ResdslError` (E001-E003) on bad syntax.

    After a syntax error the parser skips input until it can go on, so one run reports every
    independent mistake; errors met while skipping (the parser has not moved) are follow-ons
    of the first and are not reported.
    """
    text = text.lstrip("\ufeff")  # byte-order marks (even a doubled one) are not part of the spec
    errors: list[ResdslError] = []
    last_state: list[tuple[int, ...] | None] = [None]

    def recover(exc: UnexpectedInput) -> bool:
        state = _parser_state(exc)
        same_line = bool(errors) and errors[-1].span.line == getattr(exc, "line", -1)
        if (state is None or state != last_state[0]) and not same_line:
            errors.append(_syntax_error(file, text, exc))
        last_state[0] = state
        at_end = isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
        return not at_end and len(errors) < MAX_SYNTAX_ERRORS

    try:
        tree = _lark().parse(text, start="start", on_error=recover)
    except UnexpectedInput as exc:
        if not errors:
            errors.append(_syntax_error(file, text, exc))
    if errors:
        raise ResdslError([d for e in errors for d in e.diagnostics])
    _check_depth(tree, file)
    return _transform(tree, file)


# the grammar's expression rules (aliases): only these can nest without bound
_EXPR_RULES = frozenset(
    {"add", "sub", "mul", "div", "floordiv", "mod", "neg", "index", "list_lit", "call", "pos_arg", "kw_arg"}
    | {"eq", "ne", "lt", "le", "gt", "ge", "ifelse", "cond_layer"}
    | {"pow", "or_", "and_", "not_", "list_comp", "comp_for"}
)


def _check_depth(tree: Any, file: str) -> None:
    """Refuse expressions nested past :data:`MAX_EXPR_DEPTH` before anything recurses over them
    (the Transformer, the evaluator and the code generator all do), one error per expression."""
    from lark import Tree

    stack: list[tuple[Any, int]] = [(tree, 0)]
    problems = []
    lines: set[int] = set()
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Tree):
            continue
        if depth > MAX_EXPR_DEPTH:
            meta = node.meta
            if meta.line in lines:  # one report per line: the rest is the same expression
                continue
            lines.add(meta.line)
            span = ast.Span(file, meta.line, meta.column, meta.line, meta.column + 1)
            problems.append(
                error(
                    "E602",
                    f"an expression nested more than {MAX_EXPR_DEPTH} levels deep",
                    span,
                    help="compute the value in steps (name = ...), or simplify it",
                )
            )
            continue
        nested = depth + 1 if node.data in _EXPR_RULES else depth  # statements nest a fixed few levels
        stack.extend((child, nested) for child in node.children)
    if problems:
        raise ResdslError(problems)


def _parser_state(exc: UnexpectedInput) -> tuple[int, ...] | None:
    """The LALR state stack where an error happened (None when lark does not say)."""
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is None:
        return None
    return tuple(interactive.parser_state.state_stack)


def parse_expr(text: str, file: str = "<override>") -> ast.Expr:
    """Parse a single expression, as given to ``--set KEY=VALUE``."""
    try:
        tree = _lark().parse(text, start="expr")
    except UnexpectedInput as exc:
        raise _syntax_error(file, text, exc) from None
    return _transform(tree, file)


def _transform(tree: Any, file: str) -> Any:
    try:
        return ToAst(file).transform(tree)
    except VisitError as exc:  # an error inside a callback: unwrap to our own type
        if isinstance(exc.orig_exc, ResdslError):
            raise exc.orig_exc from None
        raise
