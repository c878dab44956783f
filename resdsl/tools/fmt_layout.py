"""Line breaking for ``resdsl fmt``: a statement as atoms and bracketed groups, laid out within a width.

:mod:`resdsl.tools.fmt` turns each statement into a list of items: :class:`Atom` (one token's text)
and :class:`Group` (a bracketed, comma-separated list: call arguments, parameters, list literals,
an index, a parenthesised expression), with every comment attached to the token it follows on its
line or the token it stands before. :class:`Layout` then breaks lines the way black and ruff do:

- a statement that fits within the limit (and holds no comment and no list its author ended with a
  comma) stays on one line;
- otherwise one group is split: its opening bracket ends the line, its contents go one level
  deeper, and its closing bracket starts the line after them. The group split is the rightmost one
  that holds a comment, else the rightmost one whose head (the text up to its opening bracket) and
  tail (from its closing bracket) each fit, else the rightmost; the head and the tail are laid out
  again the same way;
- the contents of a split group go on one line (a hanging indent) when they fit and hold no
  comment or trailing comma, else one element a line, each followed by a comma ("magic trailing
  comma": a list that ends with a comma stays one element a line, so the layout is stable);
- a comment inside an element, between two tokens where no bracket breaks the line, breaks the
  line there; what follows goes one level deeper.

Every decision depends only on the tokens, the comments and where the trailing commas are, never on
where the author broke lines, which is what makes formatting idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INDENT = 4


@dataclass(frozen=True)
class Comment:
    """A ``#`` comment (its text, trailing spaces dropped); ``blank``: a blank line came before it."""

    text: str
    blank: bool = False


@dataclass(eq=False)
class Atom:
    """One token as it is written; ``space``: spaces before it when something precedes it on its line."""

    text: str
    space: int = 1
    before: list[Comment] = field(default_factory=list)  # comments on lines of their own just before it
    after: Comment | None = None  # the comment at the end of its line
    blank: bool = False  # a blank line came before it (or before its first comment)


@dataclass(eq=False)
class Element:
    """One comma-separated element of a group, with the comments that belong to it."""

    items: list[Item]
    leading: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None


@dataclass(eq=False)
class Group:
    """A bracketed list. ``commas``: its elements are comma-separated (a trailing comma is allowed when
    it is split); ``magic``: the author ended it with a comma, so it is split one element a line."""

    open: Atom
    elements: list[Element]
    close: Atom
    commas: bool = True
    magic: bool = False
    _flat: str | None = None
    _comments: bool | None = None
    _forced: bool | None = None

    def flat(self) -> str:
        if self._flat is None:
            self._flat = self.open.text + ", ".join(flat(e.items) for e in self.elements) + self.close.text
        return self._flat

    def has_comments(self) -> bool:
        """Whether a comment sits anywhere between its brackets."""
        if self._comments is None:
            self._comments = bool(self.open.after or self.close.before) or any(
                e.leading or e.trailing or _inner_comments(e.items) for e in self.elements
            )
        return self._comments

    def forced(self) -> bool:
        """Whether it cannot be written on one line: it holds a comment or a magic trailing comma."""
        if self._forced is None:
            self._forced = self.magic or self.has_comments() or any(_forced(e.items) for e in self.elements)
        return self._forced


Item = Atom | Group


@dataclass
class Line:
    """One output line: code (indent included) and the comment at its end."""

    code: str
    comment: Comment | None = None


def first_atom(item: Item) -> Atom:
    return item if isinstance(item, Atom) else item.open


def last_atom(item: Item) -> Atom:
    return item if isinstance(item, Atom) else item.close


def flat(items: list[Item]) -> str:
    """The items on one line."""
    out: list[str] = []
    for item in items:
        if out:
            out.append(" " * first_atom(item).space)
        out.append(item.text if isinstance(item, Atom) else item.flat())
    return "".join(out)


def _breaks(items: list[Item]) -> list[int]:
    """Indexes ``k`` where a comment between ``items[k]`` and ``items[k + 1]`` breaks the line (the
    comments before the first item and after the last are the caller's)."""
    return [
        k for k in range(len(items) - 1) if last_atom(items[k]).after is not None or first_atom(items[k + 1]).before
    ]


def _inner_comments(items: list[Item]) -> bool:
    return bool(_breaks(items)) or any(isinstance(i, Group) and i.has_comments() for i in items)


def _forced(items: list[Item]) -> bool:
    return bool(_breaks(items)) or any(isinstance(i, Group) and i.forced() for i in items)


def comment_lines(comments: list[Comment], indent: int) -> list[Line]:
    return [Line(" " * indent + c.text) for c in comments]


def set_comment(line: Line, comment: Comment | None) -> None:
    """Put ``comment`` at the end of ``line``, which the layout guarantees has none yet."""
    if comment is not None:
        assert line.comment is None, "two comments for one line"
        line.comment = comment


@dataclass(frozen=True)
class Layout:
    """Lays items out within ``limit`` columns (see the module docstring for the rules)."""

    limit: int

    def lay(self, items: list[Item], indent: int) -> list[Line]:
        """The lines of ``items`` starting at column ``indent``; the comments before the first item and
        after the last are left to the caller."""
        breaks = _breaks(items)
        if breaks:
            return self._segments(items, breaks, indent)
        text = flat(items)
        if not _forced(items) and indent + len(text) <= self.limit:
            return [Line(" " * indent + text)]
        groups = [i for i, it in enumerate(items) if isinstance(it, Group) and (it.elements or it.has_comments())]
        if not groups:  # nothing to break (a long name, or an expression without brackets)
            return [Line(" " * indent + text)]
        return self._split(items, self._choose(items, groups, indent), indent)

    def _segments(self, items: list[Item], breaks: list[int], indent: int) -> list[Line]:
        """A comment between two tokens: the line ends there; the rest goes one level deeper."""
        lines: list[Line] = []
        start = 0
        for k in [*breaks, len(items) - 1]:
            part = items[start : k + 1]
            deeper = indent + INDENT if start else indent
            if start:
                lines += comment_lines(first_atom(part[0]).before, deeper)
            lines += self.lay(part, deeper)
            if k < len(items) - 1:
                set_comment(lines[-1], last_atom(items[k]).after)
            start = k + 1
        return lines

    def _choose(self, items: list[Item], groups: list[int], indent: int) -> int:
        """The group to split (never a choice that depends on the author's line breaks)."""
        commented = [i for i in groups if isinstance(g := items[i], Group) and g.has_comments()]
        if commented:
            return commented[-1]
        for i in reversed(groups):
            group = items[i]
            assert isinstance(group, Group)
            head, tail = flat([*items[:i], group.open]), flat([group.close, *items[i + 1 :]])
            if indent + max(len(head), len(tail)) <= self.limit:
                return i
        return groups[-1]

    def _split(self, items: list[Item], index: int, indent: int) -> list[Line]:
        group = items[index]
        assert isinstance(group, Group)
        lines = self.lay([*items[:index], group.open], indent)
        set_comment(lines[-1], group.open.after)
        lines += self._body(group, indent + INDENT)
        lines += comment_lines(group.close.before, indent + INDENT)
        return lines + self.lay([group.close, *items[index + 1 :]], indent)

    def _body(self, group: Group, indent: int) -> list[Line]:
        """A split group's contents: on one line if they fit, else one element a line."""
        if not group.elements:
            return []
        inline = ", ".join(flat(e.items) for e in group.elements)
        if not group.forced() and indent + len(inline) <= self.limit:
            return [Line(" " * indent + inline)]
        lines: list[Line] = []
        for element in group.elements:
            lines += comment_lines(element.leading, indent)
            comma = [Atom(",", space=0)] if group.commas else []
            lines += self.lay([*element.items, *comma], indent)
            set_comment(lines[-1], element.trailing)
        return lines
