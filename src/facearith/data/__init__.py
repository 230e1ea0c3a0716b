"""Data: where the raw images come from (sources, synthetic), how names become labels (labels), which images
train (splits), and how images are read (images) and handed to a network (tensors)."""
