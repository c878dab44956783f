"""``resdsl fmt``: the canonical layout of ``.arch`` files, comments kept.

The file is parsed twice with the language's own Lark grammar: once by :func:`resdsl.syntax.parser.parse`
(the usual diagnostics for a file that does not parse, and the AST the result is checked against),
and once by a Lark instance that keeps every token (``keep_all_tokens``) and hands every ``#``
comment to a lexer callback. A printer walks that tree and writes each token again with canonical
spacing; comments are put back where they were, by source position: a comment after code stays at
the end of that code's line, a comment on a line of its own stays on a line of its own before the
same token.

The layout is the one of the shipped specs: four spaces per block level; ``name = value`` for
parameters, values and layers, ``k=3`` for keyword arguments, ``a * b`` around operators; the ``=``
of consecutive assignments aligned (a blank line starts a new group), and in such a group values
that begin alike with a whole number (``stage(basic(64, ...`` over ``stage(basic(128, ...``) padded
after that number so the rest lines up; a line break after a comma inside brackets is kept where
the author put one, the next line lines up after the bracket; runs of blank lines become one;
trailing comments of consecutive lines line up. Nothing else decides where lines break, so
formatting never reflows an author's list.

The printer only re-spaces tokens (dropping optional trailing commas), and every result is parsed
again and compared with the original AST (spans aside) before it is returned: a formatter bug
raises instead of changing what a spec means.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from lark import Lark, Token, Tree

from resdsl.diagnostics import ResdslError, error
from resdsl.syntax import ast
from resdsl.syntax.parser import open_grammar, parse

INDENT = 4
_BLANK_LINE = re.compile(r"\n[ \t\r\f]*\n")


class FormatError(RuntimeError):
    """The formatter's output would not mean what its input meant (a bug in the formatter)."""


@cache
def _lark() -> Lark:
    """A parser that keeps every token and reports comments through :data:`_LOCAL`."""
    return open_grammar(keep_all_tokens=True, maybe_placeholders=False, lexer_callbacks={"COMMENT": _collect_comment})


_LOCAL = threading.local()  # the comments of the parse in progress in this thread (callbacks get no context)


def _collect_comment(tok: Token) -> Token:
    _LOCAL.comments.append(tok)
    return tok


def _tree_and_comments(text: str) -> tuple[Tree, list[Token]]:
    comments: list[Token] = []
    _LOCAL.comments = comments
    tree = _lark().parse(text)
    return tree, sorted(comments, key=lambda t: t.start_pos or 0)


@dataclass
class _Line:
    code: str
    comment: str | None = None


@dataclass
class _Printer:
    """Writes tokens line by line; see the module docstring for the rules."""

    text: str
    comments: list[Token]
    lines: list[_Line] = field(default_factory=list)
    cur: str = ""
    cur_comment: str | None = None
    indent: int = 0
    brackets: list[int] = field(default_factory=list)  # columns just after each open bracket
    pending: str | None = None  # "stmt" / "close": the next token starts a line at the indent
    break_ok: bool = False  # after a comma: the author's line break before the next token is kept
    glue: bool = False  # no space before the next token ('k=3', '-x')
    body_start: bool = True  # no blank line at the top of a file or a body
    last_line: int = 0  # source line of the last token or comment written
    last_end: int = 0  # source offset just past it
    next_comment: int = 0
    rows: list[tuple[int, int]] = field(default_factory=list)  # (alignment group, first line) per assignment

    # -- lines ---------------------------------------------------------------------------------
    def _finish(self) -> None:
        if self.cur.strip() or self.cur_comment:
            self.lines.append(_Line(self.cur.rstrip(), self.cur_comment))
        self.cur, self.cur_comment = "", None

    def _start(self, column: int, start_pos: int, blank_ok: bool) -> None:
        self._finish()
        blank = _BLANK_LINE.search(self.text, self.last_end, start_pos) is not None
        if blank_ok and blank and not self.body_start and self.lines and self.lines[-1].code:
            self.lines.append(_Line(""))
        self.body_start = False
        self.cur = " " * column

    def _continuation(self) -> int:
        return self.brackets[-1] if self.brackets else self.indent + INDENT

    # -- comments ------------------------------------------------------------------------------
    def comments_before(self, pos: int) -> None:
        """Write the comments that come before source offset ``pos``."""
        while self.next_comment < len(self.comments) and (self.comments[self.next_comment].start_pos or 0) < pos:
            c = self.comments[self.next_comment]
            self.next_comment += 1
            if c.line == self.last_line and self.cur.strip():  # after code: stays at the end of its line
                self.cur_comment = str(c).rstrip()
                self.pending = self.pending or "cont"
            else:  # a line of its own, before whatever comes next
                level = self.pending in ("stmt", "close") and not self.brackets
                self._start(self.indent if level else self._continuation(), c.start_pos or 0, blank_ok=level)
                self.cur += str(c).rstrip()
                self._finish()
                self.pending = self.pending if level else "cont"
            self.last_line, self.last_end = c.end_line or c.line or 0, c.end_pos or 0

    # -- tokens --------------------------------------------------------------------------------
    def tok(self, t: Token, space: bool = True, text: str | None = None) -> None:
        """Write one token, after the comments before it, on a new line where one is due."""
        pos = t.start_pos or 0
        self.comments_before(pos)
        if self.pending in ("stmt", "close"):
            self._start(self.indent, pos, blank_ok=self.pending == "stmt")
        elif self.pending == "cont" or (self.break_ok and (t.line or 0) > self.last_line):
            self._start(self._continuation(), pos, blank_ok=False)
        elif space and not self.glue and self.cur.strip() and self.cur[-1] not in "([":
            self.cur += " "
        self.pending, self.break_ok, self.glue = None, False, False
        self.cur += str(t) if text is None else text
        self.last_line, self.last_end = t.end_line or t.line or 0, t.end_pos or 0

    # -- tree ----------------------------------------------------------------------------------
    def node(self, n: Tree | Token) -> None:
        if isinstance(n, Token):
            self.tok(n)
            return
        handler = getattr(self, f"r_{n.data}", None)
        if handler is not None:
            handler(n.children)
        else:  # everything spaced: 'a * b', 'x if c else y', 'name = 1', 'import "f"', literals
            for child in n.children:
                self.node(child)

    def items(self, kids: list[Any], space: bool = False) -> None:
        """A bracketed, comma-separated list ``(a, b)`` / ``[a, b]``; a trailing comma is dropped."""
        open_, close = kids[0], kids[-1]
        inner = [c for k in kids[1:-1] for c in (k.children if isinstance(k, Tree) and k.data == "param_list" else [k])]
        self.tok(open_, space=space)
        self.brackets.append(len(self.cur))
        for i, child in enumerate(inner):
            if isinstance(child, Token) and child.type == "COMMA":
                if i < len(inner) - 1:
                    self.tok(child, space=False)
                    self.break_ok = True
            else:
                self.node(child)
        self.tok(close, space=False)
        self.brackets.pop()

    def r_start(self, children: list[Any]) -> None:
        for item in children:
            self.pending = "stmt"
            self.node(item)
        self.pending = "stmt"
        self.comments_before(len(self.text) + 1)
        self._finish()

    def _definition(self, children: list[Any]) -> None:
        keyword, name, *rest = children
        self.tok(keyword)
        self.tok(name)
        self.items(rest[:-1])
        self.node(rest[-1])

    r_block_def = _definition
    r_network_def = _definition

    def r_body(self, children: list[Any]) -> None:
        lbrace, *stmts, rbrace = children
        self.tok(lbrace)
        self.block(stmts, rbrace)

    def block(self, stmts: list[Any], rbrace: Token) -> None:
        """Statements (or entries of a multi-line meta) one level deeper, then the '}'."""
        if not stmts and not self._comment_before(rbrace):
            self.tok(rbrace, space=False)
            return
        self.indent += INDENT
        self.body_start = True
        base = len(self.rows)  # group numbers unique in the file: the rows recorded so far bound them
        for stmt, (group, width) in zip(stmts, _alignment(self.text, stmts), strict=True):
            self.pending = "stmt"
            if stmt.data in ("assign", "meta_entry"):
                name, equal, value = stmt.children
                self.tok(name)
                self.rows.append((base + group, len(self.lines)))  # the line this statement starts on
                self.cur += " " * (width - len(str(name)) + 1)
                self.tok(equal, space=False)
                self.node(value)
            else:
                self.node(stmt)
        self.pending = "stmt"
        self.comments_before(rbrace.start_pos or 0)
        self.indent -= INDENT
        self.pending = "close"
        self.tok(rbrace)

    def _comment_before(self, t: Token) -> bool:
        nxt = self.next_comment
        return nxt < len(self.comments) and (self.comments[nxt].start_pos or 0) < (t.start_pos or 0)

    def r_input_stmt(self, children: list[Any]) -> None:
        keyword, shape = children
        self.tok(keyword)
        self.tok(shape, text=" x ".join(d.strip() for d in str(shape).split("x")))

    def r_meta_stmt(self, children: list[Any]) -> None:
        keyword, lbrace, *entries, rbrace = children
        self.tok(keyword)
        self.tok(lbrace)
        if lbrace.line != rbrace.line:  # the author wrote it over several lines: one entry a line
            self.block(entries, rbrace)
            return
        for i, entry in enumerate(entries):
            if i:
                self.cur += " "  # entries of a one-line meta are two spaces apart
            self.node(entry)
        self.tok(rbrace, space=bool(entries))

    def r_call(self, children: list[Any]) -> None:
        self.tok(children[0])
        self.items(children[1:])

    def r_list_lit(self, children: list[Any]) -> None:
        self.items(children, space=True)

    def r_kw_arg(self, children: list[Any]) -> None:
        name, equal, value = children
        self.tok(name)
        self.tok(equal, space=False)
        self.glue = True
        self.node(value)

    def r_neg(self, children: list[Any]) -> None:
        minus, operand = children
        self.tok(minus)
        self.glue = True
        self.node(operand)

    def r_index(self, children: list[Any]) -> None:
        value, *rest = children
        self.node(value)
        self.items(rest)

    def r_atom(self, children: list[Any]) -> None:  # a parenthesised expression, kept as written
        self.items(children, space=True)


def _alignment(text: str, stmts: list[Tree]) -> list[tuple[int, int]]:
    """For each statement, its group (statements not separated by a blank line) and the width its
    name is padded to: the longest assigned name of the group."""
    groups: list[list[Tree]] = []
    for i, stmt in enumerate(stmts):
        gap = i and _BLANK_LINE.search(text, stmts[i - 1].meta.end_pos, stmt.meta.start_pos)
        if not groups or gap:
            groups.append([])
        groups[-1].append(stmt)
    widths = []
    for number, group in enumerate(groups):
        names = [len(str(s.children[0])) for s in group if s.data in ("assign", "meta_entry")]
        widths += [(number, max(names, default=0))] * len(group)
    return widths


# an assignment whose value starts with calls and then a whole number as the first argument
_LEADING_NUMBER = re.compile(r"(\s*\w+\s*= )([\w(]*?\()(\d+),(?= )")


def _align_numbers(lines: list[_Line], rows: list[tuple[int, int]]) -> None:
    """In a group of assignments, values that begin alike with a whole number (``stage(basic(64, ...``,
    ``stage(basic(128, ...``) pad the number's comma so that what follows lines up, like a table."""
    runs: dict[tuple[int, str], list[tuple[int, re.Match[str]]]] = {}
    for group, index in rows:
        m = _LEADING_NUMBER.match(lines[index].code)
        if m:
            runs.setdefault((group, m.group(2)), []).append((index, m))
    for members in runs.values():
        if len(members) < 2:
            continue
        width = max(len(m.group(3)) for _, m in members)
        for index, m in members:
            pad = " " * (width - len(m.group(3)))
            lines[index].code = f"{m.group(0)}{pad}{lines[index].code[m.end() :]}"


def _align_comments(lines: list[_Line]) -> list[str]:
    """Render lines; trailing comments of consecutive lines start in one column."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j].comment is not None and lines[j].code:
            j += 1
        if j == i:
            line = lines[i]
            out.append(line.code if line.comment is None else line.comment)
            i += 1
            continue
        column = max(len(line.code) for line in lines[i:j]) + 2
        out += [f"{line.code.ljust(column)}{line.comment}" for line in lines[i:j]]
        i = j
    return out


def _strip_spans(node: Any) -> Any:
    """The AST with every span blanked: what a spec means, not where it says it."""
    if isinstance(node, ast.Span):
        return ast.NO_SPAN
    if isinstance(node, tuple):
        return tuple(_strip_spans(n) for n in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return dataclasses.replace(
            node, **{f.name: _strip_spans(getattr(node, f.name)) for f in dataclasses.fields(node)}
        )
    return node


MAX_TREE_DEPTH = 400  # levels of the full parse tree; what the parser accepts (MAX_EXPR_DEPTH) needs ~110
_FRAMES_PER_LEVEL = 4  # Python frames the printer spends on one level


def _check_nesting(tree: Tree, file: str) -> None:
    """E602 for a parse tree deeper than :data:`MAX_TREE_DEPTH`: only brackets around brackets get
    there (the parser bounds expressions, but parentheses that group nothing cost it no depth)."""
    stack: list[tuple[Tree, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            first = next(node.scan_values(lambda v: isinstance(v, Token)))
            span = ast.Span(file, first.line or 1, first.column or 1, first.line or 1, (first.column or 1) + 1)
            message = f"brackets nested more than {MAX_TREE_DEPTH} levels deep: too deep to format"
            raise ResdslError(error("E602", message, span, help="remove the parentheses that group nothing"))
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def format_text(text: str, file: str = "<string>") -> str:
    """The canonical layout of one ``.arch`` text; raises :class:`ResdslError` if it does not parse.
    Line endings stay as the text has them (CRLF where it has any, else LF)."""
    original = parse(text, file)  # the usual diagnostics (E001-E006, E602, E605) for a broken file
    body = text.lstrip("\ufeff")
    tree, comments = _tree_and_comments(body)
    _check_nesting(tree, file)
    printer = _Printer(body, comments)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, _FRAMES_PER_LEVEL * MAX_TREE_DEPTH + 1000))  # the printer recurses
    try:
        printer.node(tree)
    finally:
        sys.setrecursionlimit(limit)
    _align_numbers(printer.lines, printer.rows)
    lines = _align_comments(printer.lines)
    out = "\n".join(lines) + "\n" if lines else ""
    if _strip_spans(parse(out, file)) != _strip_spans(original):
        raise FormatError(f"formatting {file} would change what it means (a bug in resdsl fmt)")
    if [str(c).rstrip() for c in comments] != [str(c).rstrip() for c in _tree_and_comments(out)[1]]:
        raise FormatError(f"formatting {file} would lose or reorder a comment (a bug in resdsl fmt)")
    return out.replace("\n", "\r\n") if "\r\n" in body else out  # a Windows file keeps its line endings
