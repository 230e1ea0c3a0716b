"""Experiment tooling, apart from the library the stages use: grids of DVC experiments (grid) and the generated
results tables (tables, report). No stage imports it."""
