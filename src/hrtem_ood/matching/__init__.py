"""Which model for a microscope: the model recommendation from the loss matrices (``recommend``) and the commands
that estimate a user's imaging conditions and place them among the domains (``microscope``)."""
