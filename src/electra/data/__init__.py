"""Data pipeline: corpus reading, WordPiece vocab, ELECTRA example building, sharded datasets, loading."""
