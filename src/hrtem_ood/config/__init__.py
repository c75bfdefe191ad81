"""What a run is: ``params.yaml`` read, validated and typed (``params``), edited with its comments kept
(``params_file``), presets applied (``presets``), and the domains and transfer pairs it declares (``domains``)."""
