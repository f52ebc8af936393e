"""Numerical constants, defined once."""

import numpy as np

#: log(2π), the constant of the Gaussian log-density.
LOG_2PI = float(np.log(2 * np.pi))
