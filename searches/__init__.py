"""Search configurations shipped with hwnas: one YAML file per experiment (package data, no code)."""
