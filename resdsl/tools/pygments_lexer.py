"""A Pygments lexer for ``.arch`` specs, so documentation and terminals can highlight them.

Registered through the ``pygments.lexers`` entry point (see pyproject.toml): once resdsl is
installed, ``pygmentize -l arch spec.arch``, Sphinx/MkDocs code blocks marked ``arch`` and
``pygments.lexers.get_lexer_by_name("arch")`` find it. Its word lists are read from the
language itself (the op table, the shortcut kinds, the reserved words, the built-in forms and
functions), so a new op is highlighted without an edit here; none of those imports torch.

Every character a valid spec can contain gets a token; only characters the language does not use
at all (the ones ``resdsl check`` reports as E002) become ``Error`` tokens.
"""

from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, Punctuation, String, Whitespace

from resdsl.ops import OPS as OP_TABLE
from resdsl.ops.shortcut import SHORTCUT_KINDS
from resdsl.syntax.ast import BUILTIN_FORMS, BUILTIN_FUNCTIONS
from resdsl.syntax.parser import RESERVED_WORDS

CONSTANTS = ("true", "false")
# input 3 x 224 x 224, as the grammar's SHAPE: whole numbers only, followed by no operator or word
_SHAPE = r"(input)([ \t\f\r\n]+)(\d+(?:[ \t]*x[ \t]*\d+)*)(?![ \t]*[-+*/%(\[.\w])"
KEYWORDS = tuple(sorted(RESERVED_WORDS - set(CONSTANTS)))
# the op table (resdsl.ops.OPS: the ops themselves, never a copied list), and the built-in forms
OPS = tuple(OP_TABLE)
FORMS = tuple(f for f in BUILTIN_FORMS if f not in OPS)
FUNCTIONS = BUILTIN_FUNCTIONS  # round, make_divisible, ...: highlighted where called
SHORTCUTS = SHORTCUT_KINDS

_NAME = r"[A-Za-z_]\w*"


class ArchLexer(RegexLexer):
    """Lexer for resdsl's ``.arch`` network descriptions."""

    name = "resdsl arch"
    aliases: ClassVar[list[str]] = ["arch", "resdsl"]
    filenames: ClassVar[list[str]] = ["*.arch"]
    mimetypes: ClassVar[list[str]] = ["text/x-resdsl-arch"]
    url = "https://github.com/resdsl/resdsl"

    tokens: ClassVar[dict[str, list]] = {  # type: ignore[misc]
        "root": [
            (r"[ \t\f\r\n]+", Whitespace),
            (r"#[^\n]*", Comment.Single),
            (r'"', String.Double, "string"),
            (rf"(block|network)([ \t\f\r\n]+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (_SHAPE, bygroups(Keyword, Whitespace, Number.Integer)),
            (r"input\b", Keyword, "sizes"),  # input 3 x img_size x img_size
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            (words(CONSTANTS, suffix=r"\b"), Keyword.Constant),
            (rf"({_NAME})([ \t]*)(=)(?!=)", bygroups(Name.Variable, Whitespace, Operator)),  # layer, value, keyword
            (words(OPS + FORMS, suffix=r"\b"), Name.Builtin),
            (words(FUNCTIONS, suffix=r"\b(?=[ \t]*\()"), Name.Builtin),
            (words(SHORTCUTS, suffix=r"\b"), Name.Constant),
            (_NAME, Name),
            (r"\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\.\d+(?:[eE][+-]?\d+)?", Number.Float),
            (r"\d+", Number.Integer),
            (r"\*\*|//|==|!=|<=|>=|[-+*/%<>=]", Operator),
            (r"[(){}\[\],]", Punctuation),
        ],
        "sizes": [  # the rest of an input line: its "x" separates sizes, as the grammar's INPUT_X
            (r"\n", Whitespace, "#pop"),
            (r"x(?=[ \t]+[^\s=#])(?![ \t]+if\b)", Operator),
            include("root"),
        ],
        "string": [
            (r"\\[^\n]", String.Escape),  # the grammar takes any escape; resdsl check judges it (E006)
            (r'[^"\\\n]+', String.Double),
            (r'"', String.Double, "#pop"),
            (r"\n", Error, "#pop"),  # a string left open at the end of its line
        ],
    }
