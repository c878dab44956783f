"""Catalog entries: syntax (E0xx) and imports and definitions (E1xx)."""

from __future__ import annotations

from resdsl.diagnostics.codes.entry import Entry

ENTRIES = [
    Entry(
        "E001",
        "syntax error: a token where the language expects something else; the message lists what would fit",
        "The parser met a token that cannot continue the statement it is reading, most often a "
        "missing comma between arguments, a missing '=' or a stray word. The message names the token "
        "and lists what the language expects there; the caret points at the token.",
        "network n() {\n    input 3 x 32 x 32\n    conv1 = conv(64 k=3)\n}\n",
        "network n() {\n    input 3 x 32 x 32\n    conv1 = conv(64, k=3)\n}\n",
    ),
    Entry(
        "E002",
        "a character the language does not use",
        "A character that no token of the language starts with: single quotes (strings use double "
        "quotes), ';', ':', '@' and the like. Only the first such character of a run is reported.",
        "network n() {\n    input 3 x 32 x 32\n    meta { name = 'x' }\n    fc = linear(10)\n}\n",
        'network n() {\n    input 3 x 32 x 32\n    meta { name = "x" }\n    fc = linear(10)\n}\n',
    ),
    Entry(
        "E003",
        "the file ends in the middle of a definition",
        "The file ends while a definition is still open: usually a missing '}' or ')'. The caret "
        "points just after the last code of the file.",
        "network n() {\n    input 3 x 32 x 32\n    fc = linear(10)\n",
        "network n() {\n    input 3 x 32 x 32\n    fc = linear(10)\n}\n",
    ),
    Entry(
        "E004",
        "a file cannot be read (missing, unreadable, not UTF-8)",
        "A file cannot be read: a spec named on the command line that does not exist (and is not the "
        "name of a shipped network), a folder, a file without read permission, or a file (also an "
        "imported one) that is not valid UTF-8, reported at the line and column of the first byte "
        "that is not, with its value. An import that finds no file at all is E101.",
        "network n() {\n    input 3 x 32 x 32\n    fc = linear(10)\n}\n",
        "network n() {\n    input 3 x 32 x 32\n    fc = linear(10)\n}\n",
        argv=("check", "missing.arch"),
        fix_argv=("check", "example.arch"),
    ),
    Entry(
        "E005",
        "a reserved word of the language (`import block network input meta true false if else and or not for in`) "
        "used as a name",
        "Words the grammar reserves cannot name a parameter or a definition, even where the parser "
        "could tell them apart: a name that is sometimes a keyword is a trap. Nor can the words that "
        "are keywords inside a body name a layer or value; `block`, `network` and `import`, keywords "
        "only where a file's statements start and names everywhere inside braces, may "
        "(torchvision's `self.block`).",
        "network n() {\n    input 3 x 32 x 32\n    input = conv(8)\n}\n",
        "network n() {\n    input 3 x 32 x 32\n    input_ = conv(8)\n}\n",
    ),
    Entry(
        "E006",
        r"a string with an escape the language does not know (it knows `\\ \" \n \t \r \xNN \uXXXX`)",
        r"Inside a string a backslash starts an escape; only \\ \" \n \t \r \xNN \uXXXX and "
        r"\UXXXXXXXX exist. A Windows path needs its backslashes doubled (or forward slashes).",
        'network n() {\n    input 3 x 32 x 32\n    meta { path = "C:\\models" }\n    fc = linear(10)\n}\n',
        'network n() {\n    input 3 x 32 x 32\n    meta { path = "C:\\\\models" }\n    fc = linear(10)\n}\n',
    ),
    Entry(
        "E101",
        "an `import` names a file found neither next to the importing file nor in the shipped library",
        "An import is looked up next to the importing file first, then in the shipped library "
        "(std/blocks.arch, std/imagenet.arch, ...). A close match is suggested.",
        'import "std/blcoks.arch"\n',
        'import "std/blocks.arch"\n',
    ),
    Entry(
        "E102",
        "files import each other in a cycle; the message shows the chain",
        "Imports must form a tree: a file that imports itself, directly or through others, is "
        "refused with the whole chain. Move what both files need into a third file they both import.",
        'import "other.arch"\n\nblock a(c) {\n    conv1 = conv(c)\n}\n',
        "block a(c) {\n    conv1 = conv(c)\n}\n",
        files=(("other.arch", 'import "example.arch"\n'),),
    ),
    Entry(
        "E103",
        "two definitions share a name (or a definition reuses a built-in op's name)",
        "Every block and network visible in a file (its own and those it imports) needs its own name, "
        "and none may take the name of a built-in op such as conv or relu.",
        "block twice(c) {\n    conv1 = conv(c)\n}\n\nblock twice(c) {\n    conv1 = conv(c, k=3, p=1)\n}\n",
        "block once(c) {\n    conv1 = conv(c)\n}\n\nblock twice(c) {\n    conv1 = conv(c, k=3, p=1)\n}\n",
    ),
    Entry(
        "E104",
        "a network alias names no network, or a spec/file does not say which network to use, or defines none",
        "`network a = b(...)` must name a network defined or imported in the file; a close match is "
        "suggested. On the command line, --network picks one network of a file that defines several; "
        "`build`, `summary`, `graph` and `export` need a file that defines at least one network.",
        'import "cifar_resnet.arch"\n\nnetwork r = cifar_resnt(n=3)\n',
        'import "cifar_resnet.arch"\n\nnetwork r = cifar_resnet(n=3)\n',
    ),
]
