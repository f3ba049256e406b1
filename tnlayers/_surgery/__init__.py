"""Model surgery: find a model's weight matrices, replace them by networks, restore checkpoints."""
