"""Custom Kedro datasets for BELLE's formats and the append-only response journal."""
