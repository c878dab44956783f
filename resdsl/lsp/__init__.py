"""``resdsl lsp``: a Language Server Protocol server for ``.arch`` specs (pygls, stdio).

It runs the same checker as ``resdsl check`` on the editor's unsaved text and shows what the
checker knows where a person types: diagnostics with their fixes as code actions, shapes,
parameters and MACs on hover, definitions, completion and an outline. The pieces:

- :mod:`resdsl.lsp.convert`: spans to LSP ranges and back, diagnostics to LSP diagnostics;
- :mod:`resdsl.lsp.locate`: what syntax node is under the cursor;
- :mod:`resdsl.lsp.workspace`: open documents, their check results and who imports whom;
- :mod:`resdsl.lsp.hover`, :mod:`~resdsl.lsp.definition`, :mod:`~resdsl.lsp.completion`,
  :mod:`~resdsl.lsp.symbols`, :mod:`~resdsl.lsp.actions`: one feature each;
- :mod:`resdsl.lsp.server`: the pygls wiring (debounced re-checks, publishing).

Nothing here imports torch.
"""
