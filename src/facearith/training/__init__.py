"""Model and training: the network (network, inference), triplet sampling (triplets), inputs and augmentation
(inputs), losses, the loop, checkpoints, and seeded ensembles of members (members)."""
