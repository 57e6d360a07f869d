"""Models: the timm backbone with local weights, and the LightningModule."""
