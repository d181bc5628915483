"""Training: the pure step, the scanned epoch, early stopping and the driver."""
