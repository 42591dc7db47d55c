"""The sandbox shop world: a deterministic synthetic population and its ground truth."""
