"""hrtem-ood: how the defocus of HRTEM training data changes a segmentation U-Net's OOD generalization.

Defocus sign convention (stated once, used everywhere): abTEM's. A positive ``defocus_nm`` is
underfocus, i.e. ``defocus = -C10``. Every physical quantity carries its unit in its name
(``defocus_nm``, ``sampling_A``, ``dose_e_per_A2``, ``Cs_mm``).
"""

__version__ = "0.1.0"
