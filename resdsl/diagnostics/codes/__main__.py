"""``python -m resdsl.diagnostics.codes > docs/errors.md``."""

from resdsl.diagnostics.codes import render_docs

print(render_docs(), end="")
