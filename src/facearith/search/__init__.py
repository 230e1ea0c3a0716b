"""Search: backends behind one interface (backends: build, open_index, Searcher), NGT's graph index (ngt) and
exact search (exact)."""
