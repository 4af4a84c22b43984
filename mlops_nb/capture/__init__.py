"""Turn Python objects and the process's surroundings into plain records (no kernel needed)."""
