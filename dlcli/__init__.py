"""dlcli: train, evaluate and compare neural networks from declarative recipes."""

__version__ = "0.1.0"
