"""Models: the timm backbone and its initial weights, the LightningModule, the Hub folder."""
