"""Stack profiles: which protocols a kind of node runs, and the tunables it starts with."""
