"""dlcli: train, evaluate and compare neural networks from declarative recipes."""

import time as _time

__version__ = "0.1.0"
IMPORTED = _time.time()  # when the process reached dlcli: the start of a run where /proc is not there
