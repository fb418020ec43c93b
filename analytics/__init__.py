"""Pure analytics over numpy arrays: water QC, compliance and events; transit matching and delays."""
