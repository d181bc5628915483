"""The epoch engine: one compiled program trains a stack of K members (a run is K = 1).

- :mod:`dlcli.engine.metrics`: epoch metrics computed on the device.
- :mod:`dlcli.engine.stopping`: early stopping as a pure function of arrays.
- :mod:`dlcli.engine.program`: the compiled block (rows of batches, epoch ends).
- :mod:`dlcli.engine.driver`: the host loop around it (progress, checkpoints, signals).
"""
