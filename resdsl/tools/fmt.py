"""``resdsl fmt``: the canonical layout of ``.arch`` files, comments kept.

The file is parsed twice with the language's own Lark grammar: once by :func:`resdsl.syntax.parser.parse`
(the usual diagnostics for a file that does not parse, and the AST the result is checked against),
and once by a Lark instance that keeps every token (``keep_all_tokens``) and hands every ``#``
comment to a lexer callback. Each comment is attached to a token: to the one it follows on its
line (a trailing comment), else to the one it stands before (a comment on a line of its own).
Each statement becomes atoms and bracketed groups (:mod:`resdsl.tools.fmt_layout`), which are laid
out within :data:`LINE_LIMIT` columns the way black and ruff lay out Python.

The layout: four spaces per block level; ``name = value`` for parameters, values and layers,
``k=3`` for keyword arguments, ``a * b`` around operators; a statement longer than the limit is
broken at a bracket, its contents on the next line one level deeper (a hanging indent) or, when
they do not fit either, one element a line with a trailing comma (a list that ends with a comma
stays that way). Line breaks the author made inside a statement are not kept. In a run of
consecutive one-line statements (no blank line, comment or multi-line statement between them) the
``=`` of the assignments line up, and adjacent rows whose values begin alike with a whole number
(``stage(basic(64, ...`` over ``stage(basic(128, ...``) are padded after that number so the rest
lines up, like a table; neither is done where it would push a line past the limit. Runs of blank
lines become one; trailing comments of consecutive lines line up.

The printer only re-spaces tokens (dropping optional trailing commas, adding them where a list is
split one element a line), and every result is parsed again and compared with the original AST
(spans aside) before it is returned: a formatter bug raises instead of changing what a spec means.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from lark import Lark, Token, Tree

from resdsl.diagnostics import ResdslError, error
from resdsl.syntax import ast
from resdsl.syntax.parser import open_grammar, parse
from resdsl.tools.fmt_layout import (
    INDENT,
    Atom,
    Comment,
    Element,
    Group,
    Item,
    Layout,
    Line,
    first_atom,
    last_atom,
    set_comment,
)

LINE_LIMIT = 100  # columns of code per line (a comment is never rewrapped, so a line with one may be longer)
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
class _Notes:
    """The comments attached to one token, and whether a blank line came before it."""

    before: list[Comment]
    blank: bool
    after: Comment | None = None


def _attach(text: str, tree: Tree, comments: list[Token]) -> tuple[dict[int, _Notes], list[Comment]]:
    """Each token's comments (by start offset): a comment after code on its line belongs to that code's
    last token, any other to the next token. Also the comments after the last token."""
    tokens = list(tree.scan_values(lambda v: isinstance(v, Token)))
    events = sorted([*tokens, *comments], key=lambda t: t.start_pos or 0)
    notes: dict[int, _Notes] = {}
    pending: list[Comment] = []
    prev: Token | None = None
    end = 0
    for tok in events:
        blank = _BLANK_LINE.search(text, end, tok.start_pos or 0) is not None
        if tok.type == "COMMENT":
            c = Comment(str(tok).rstrip(), blank)
            if prev is not None and not pending and prev.end_line == tok.line:
                notes[prev.start_pos or 0].after = c
            else:
                pending.append(c)
        else:
            notes[tok.start_pos or 0] = _Notes(pending, blank)
            pending, prev = [], tok
        end = tok.end_pos or 0
    return notes, pending


@dataclass
class _Builder:
    """Turns parse-tree nodes into the atoms and groups of :mod:`resdsl.tools.fmt_layout`."""

    notes: dict[int, _Notes]

    def atom(self, tok: Token, space: int = 1, text: str | None = None) -> Atom:
        n = self.notes.get(tok.start_pos or 0) or _Notes([], False)
        return Atom(str(tok) if text is None else text, space, list(n.before), n.after, n.blank)

    def items(self, node: Tree | Token) -> list[Item]:
        if isinstance(node, Token):
            return [self.atom(node)]
        handler = getattr(self, f"b_{node.data}", None)
        if handler is not None:
            out: list[Item] = handler(node.children)
            return out
        return [item for child in node.children for item in self.items(child)]  # spaced: 'a * b', 'name = 1'

    def glued(self, node: Tree | Token) -> list[Item]:
        """``node``'s items with no space before them ('k=3', '-x')."""
        out = self.items(node)
        first_atom(out[0]).space = 0
        return out

    def group(self, kids: list[Any], space: int = 1, commas: bool = True) -> Group:
        """A bracketed list; each element takes the comments at its edges, and those around a comma."""
        open_, close = self.atom(kids[0], space), self.atom(kids[-1], 0)
        inner = [c for k in kids[1:-1] for c in (k.children if isinstance(k, Tree) and k.data == "param_list" else [k])]
        elements: list[Element] = []
        carry: list[Comment] = []  # comments that go before the next element (or the closing bracket)
        comma_last = False
        for child in inner:
            if isinstance(child, Token) and child.type == "COMMA":
                comma, last = self.atom(child), elements[-1]
                if last.trailing is None and not comma.before and comma.after is not None:
                    last.trailing = comma.after
                else:
                    carry += [*comma.before, *([comma.after] if comma.after else [])]
                comma_last = True
                continue
            items = self.items(child)
            first, end = first_atom(items[0]), last_atom(items[-1])
            elements.append(Element(items, [*carry, *first.before], end.after))
            first.before, end.after, carry, comma_last = [], None, [], False
        close.before = [*carry, *close.before]
        return Group(open_, elements, close, commas, magic=commas and comma_last)

    def b_kw_arg(self, children: list[Any]) -> list[Item]:
        name, equal, value = children
        return [self.atom(name), self.atom(equal, 0), *self.glued(value)]

    def b_neg(self, children: list[Any]) -> list[Item]:
        minus, operand = children
        return [self.atom(minus), *self.glued(operand)]

    def b_call(self, children: list[Any]) -> list[Item]:
        return [self.atom(children[0]), self.group(children[1:], space=0)]

    def b_index(self, children: list[Any]) -> list[Item]:
        value, *rest = children
        return [*self.items(value), self.group(rest, space=0, commas=False)]

    def b_list_lit(self, children: list[Any]) -> list[Item]:
        return [self.group(children)]

    def b_list_comp(self, children: list[Any]) -> list[Item]:
        """``[item for x in xs if c]``: one element, broken only at its brackets."""
        open_, *inner, close = children
        return [self.group([open_, Tree("comprehension", inner), close], commas=False)]

    def b_atom(self, children: list[Any]) -> list[Item]:  # a parenthesised expression, kept as written
        return [self.group(children, commas=False)]

    def b_input_stmt(self, children: list[Any]) -> list[Item]:
        """``input 3 x 224 x 224``: a shape token re-spaced; sizes that are expressions
        (``input 3 x img_size x img_size``) are spaced as any tokens are."""
        keyword, *sizes = children
        if len(sizes) == 1 and isinstance(sizes[0], Token) and sizes[0].type == "SHAPE":
            shape = sizes[0]
            return [self.atom(keyword), self.atom(shape, text=" x ".join(d.strip() for d in str(shape).split("x")))]
        return [self.atom(keyword), *(item for size in sizes for item in self.items(size))]


@dataclass
class _Stmt:
    """A statement's lines, the comments on lines of their own before it, and its assigned name."""

    leading: list[Comment]
    blank: bool  # a blank line before it (after its leading comments)
    lines: list[Line]
    name: str | None = None


@dataclass
class _Writer:
    """Writes the statements of a file, block by block (see the module docstring for the rules)."""

    build: _Builder
    layout: Layout

    def unit(self, items: list[Item], indent: int) -> _Stmt:
        """Items laid out as one statement: the comments before its first token go above it, the one
        after its last token at the end of its last line."""
        first, end = first_atom(items[0]), last_atom(items[-1])
        lines = self.layout.lay(items, indent)
        set_comment(lines[-1], end.after)
        return _Stmt(first.before, first.blank, lines)

    def stmt(self, node: Tree, indent: int) -> _Stmt:
        if node.data in ("block_def", "network_def"):
            return self.definition(node.children, indent)
        if node.data == "meta_stmt":
            return self.meta(node.children, indent)
        out = self.unit(self.build.items(node), indent)
        if node.data in ("assign", "meta_entry"):
            out.name = str(node.children[0])
        return out

    def braces(self, head: list[Item], lbrace: Token, stmts: list[Tree], rbrace: Token, indent: int) -> _Stmt:
        """``head {`` statements ``}``: the statements one level deeper; ``head {}`` when there are none."""
        lb, rb = self.build.atom(lbrace), self.build.atom(rbrace, 0)
        if not stmts and lb.after is None and not rb.before:
            return self.unit([*head, lb, rb], indent)
        out = self.unit([*head, lb], indent)
        out.lines += self.render(
            [*(self.stmt(s, indent + INDENT) for s in stmts), _Stmt(rb.before, False, [])], indent + INDENT
        )
        out.lines += self.layout.lay([rb], indent)
        set_comment(out.lines[-1], rb.after)
        return out

    def definition(self, children: list[Any], indent: int) -> _Stmt:
        keyword, name, *params, body = children
        lbrace, *stmts, rbrace = body.children
        head: list[Item] = [self.build.atom(keyword), self.build.atom(name), self.build.group(params, space=0)]
        return self.braces(head, lbrace, stmts, rbrace, indent)

    def meta(self, children: list[Any], indent: int) -> _Stmt:
        """``meta { a = 1  b = 2 }`` on one line if written on one and it fits, else one entry a line."""
        keyword, lbrace, *entries, rbrace = children
        if lbrace.line == rbrace.line:
            items: list[Item] = [self.build.atom(keyword), self.build.atom(lbrace)]
            for i, entry in enumerate(entries):
                entry_items = self.build.items(entry)
                first_atom(entry_items[0]).space = 2 if i else 1  # entries of a one-line meta: two spaces apart
                items += entry_items
            items.append(self.build.atom(rbrace, 1 if entries else 0))
            out = self.unit(items, indent)
            if len(out.lines) == 1 and len(out.lines[0].code) <= self.layout.limit:
                return out
        return self.braces([self.build.atom(keyword)], lbrace, entries, rbrace, indent)

    def render(self, stmts: list[_Stmt], indent: int) -> list[Line]:
        """Statements with their comments and single blank lines, the rows of each run aligned."""
        _align(stmts, self.layout.limit)
        out: list[Line] = []
        for s in stmts:
            for c in s.leading:
                if c.blank and out and out[-1].code:
                    out.append(Line(""))
                out.append(Line(" " * indent + c.text))
            if s.blank and s.lines and out and out[-1].code:
                out.append(Line(""))
            out += s.lines
        return out

    def file(self, tree: Tree, end: list[Comment]) -> list[Line]:
        return self.render([*(self.stmt(item, 0) for item in tree.children), _Stmt(end, False, [])], 0)


def _align(stmts: list[_Stmt], limit: int) -> None:
    """Align the rows of each run: consecutive one-line statements, no blank line or comment between."""
    run: list[_Stmt] = []
    for s in [*stmts, _Stmt([], True, [])]:
        if s.leading or s.blank or len(s.lines) != 1:
            _align_equals(run, limit)
            _align_numbers(run, limit)
            run = []
        if len(s.lines) == 1:
            run.append(s)


def _pad_after(code: str, column: int, spaces: int) -> str:
    return code[:column] + " " * spaces + code[column:]


def _align_equals(run: list[_Stmt], limit: int) -> None:
    """The ``=`` of the run's assignments in one column (unless that pushes a row past the limit)."""
    named = [s for s in run if s.name is not None]
    width = max((len(s.name or "") for s in named), default=0)
    new = []
    for s in named:
        code, name = s.lines[0].code, s.name or ""
        column = len(code) - len(code.lstrip(" ")) + len(name)
        new.append(_pad_after(code, column, width - len(name)))
    if all(len(code) <= limit for code in new):
        for s, code in zip(named, new, strict=True):
            s.lines[0].code = code


# an assignment whose value starts with calls and then a whole number as the first argument
_LEADING_NUMBER = re.compile(r"(\s*\w+\s*= )([\w(]*?\()(\d+),(?= )")


def _align_numbers(run: list[_Stmt], limit: int) -> None:
    """Adjacent assignments whose values begin alike with a whole number (``stage(basic(64, ...``,
    ``stage(basic(128, ...``) pad the number's comma so that what follows lines up, like a table."""
    rows: list[tuple[_Stmt, re.Match[str]]] = []
    for s in [*run, None]:
        m = _LEADING_NUMBER.match(s.lines[0].code) if s is not None and s.name is not None else None
        if rows and (m is None or m.group(2) != rows[0][1].group(2)):
            _pad_numbers(rows, limit)
            rows = []
        if m is not None and s is not None:
            rows.append((s, m))


def _pad_numbers(rows: list[tuple[_Stmt, re.Match[str]]], limit: int) -> None:
    width = max(len(m.group(3)) for _, m in rows)
    new = [_pad_after(s.lines[0].code, m.end(), width - len(m.group(3))) for s, m in rows]
    if len(rows) > 1 and all(len(code) <= limit for code in new):
        for (s, _), code in zip(rows, new, strict=True):
            s.lines[0].code = code


def _align_comments(lines: list[Line]) -> list[str]:
    """Render lines; trailing comments of consecutive lines start in one column."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        j = i
        while j < len(lines) and lines[j].comment is not None:
            j += 1
        if j == i:
            out.append(lines[i].code)
            i += 1
            continue
        column = max(len(line.code) for line in lines[i:j]) + 2
        out += [f"{line.code.ljust(column)}{line.comment.text}" for line in lines[i:j] if line.comment]
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
_FRAMES_PER_LEVEL = 6  # Python frames the builder and the layout spend on one level


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


def format_text(text: str, file: str = "<string>", limit: int = LINE_LIMIT) -> str:
    """The canonical layout of one ``.arch`` text, lines of code within ``limit`` columns where a bracket
    allows; raises :class:`ResdslError` if it does not parse. Line endings stay as the text has them
    (CRLF where it has any, else LF)."""
    original = parse(text, file)  # the usual diagnostics (E001-E006, E602, E605) for a broken file
    body = text.lstrip("\ufeff")
    tree, comments = _tree_and_comments(body)
    _check_nesting(tree, file)
    recursion = sys.getrecursionlimit()
    sys.setrecursionlimit(max(recursion, _FRAMES_PER_LEVEL * MAX_TREE_DEPTH + 1000))  # the printer recurses
    try:
        notes, end = _attach(body, tree, comments)
        writer = _Writer(_Builder(notes), Layout(limit))
        lines = _align_comments(writer.file(tree, end))
    finally:
        sys.setrecursionlimit(recursion)
    out = "\n".join(lines) + "\n" if lines else ""
    if _strip_spans(parse(out, file)) != _strip_spans(original):
        raise FormatError(f"formatting {file} would change what it means (a bug in resdsl fmt)")
    if [str(c).rstrip() for c in comments] != [str(c).rstrip() for c in _tree_and_comments(out)[1]]:
        raise FormatError(f"formatting {file} would lose or reorder a comment (a bug in resdsl fmt)")
    return out.replace("\n", "\r\n") if "\r\n" in body else out  # a Windows file keeps its line endings
