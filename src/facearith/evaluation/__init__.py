"""Evaluation: the protocols on generic two-label data (protocols), the registry the stage, the tables and
`make compare` follow (registry), and the evaluate stage's measurements together (run)."""
