"""Hardware profiles shipped with hwnas: one YAML file per device (package data, no code)."""
