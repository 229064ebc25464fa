"""GPU facts and the timing harness every benchmark uses."""
