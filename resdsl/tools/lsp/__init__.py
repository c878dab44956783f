"""``resdsl lsp``: a Language Server Protocol server for ``.arch`` specs (pygls, stdio).

It runs the same checker as ``resdsl check`` on the editor's unsaved text and shows what the
checker knows where a person types: diagnostics with their fixes as code actions, shapes,
parameters and MACs on hover, definitions, completion and an outline. The pieces:

- :mod:`resdsl.tools.lsp.convert`: spans to LSP ranges and back, diagnostics to LSP diagnostics;
- :mod:`resdsl.tools.lsp.locate`: what syntax node is under the cursor;
- :mod:`resdsl.tools.lsp.workspace`: open documents, their check results and who imports whom;
- :mod:`resdsl.tools.lsp.hover`, :mod:`~resdsl.tools.lsp.definition`, :mod:`~resdsl.tools.lsp.completion`,
  :mod:`~resdsl.tools.lsp.symbols`, :mod:`~resdsl.tools.lsp.actions`: one feature each;
- :mod:`resdsl.tools.lsp.server`: the pygls wiring (debounced re-checks, publishing).

Nothing here imports torch.
"""
