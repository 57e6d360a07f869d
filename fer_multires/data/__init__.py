"""Data: labels, the Aff-Wild2 reader, the synthetic set, transforms, datasets, data module."""
