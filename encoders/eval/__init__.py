"""Encoder evaluation protocols: PCA maps of patch features (and, in sibling modules, k-NN and linear probes)."""
