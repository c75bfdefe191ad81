"""Data in and out: atomic writes and seeds (``io``), the domain datasets' HDF5 files (``datasets``), real
micrographs ingested as domains (``ingest``), and the DVC remote check (``remote``)."""
