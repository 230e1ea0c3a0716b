"""Features: the network's (extract), PCA + LDA's (linear), the two fused per axis (extract.embed) with weights
chosen on the training images (fusion) and recorded (choice), and what they are compared with (baselines)."""
