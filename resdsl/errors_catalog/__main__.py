"""``python -m resdsl.errors_catalog > docs/errors.md``."""

from resdsl.errors_catalog import render_docs

print(render_docs(), end="")
