"""Features: the network's (extract), PCA + LDA's (linear), the two fused per axis (extract.embed), and what
they are compared with (baselines)."""
