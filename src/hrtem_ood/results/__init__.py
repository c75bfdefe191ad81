"""From results tables to answers: the tables' columns (``columns``) and files (``results_io``), the study's matrices
and measures (``aggregation``, ``conditions``), the study's own figures (``reference``), the DVC plot tables
(``plot_rows``), charts (``plots``), micrograph figures (``images``), the report (``report``) and the extra analyses
(``analysis``). Imports neither torch nor abTEM."""
