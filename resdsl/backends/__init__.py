"""Back ends: ``torch`` builds an nn.Module in memory, ``codegen`` writes a standalone file."""
