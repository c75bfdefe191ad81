"""The microscope, one module per physical concept: scenes of particles on carbon (``structures``), multislice exit
waves and labels (``simulation``), the zero-defocus calibration (``calibration``), the contrast transfer function
(``ctf``), image formation with dose (``imaging``), and what a real micrograph's spectrum tells: its defocus from Thon
rings (``thon``) and its pixel size from lattice fringes (``fringes``). Never imports torch."""
