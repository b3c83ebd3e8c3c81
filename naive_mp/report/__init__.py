"""What a person reads of runs: the settings sweep (and, later, per-symbol reports and charts)."""
