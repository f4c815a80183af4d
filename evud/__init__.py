"""evud-gemini's library: the code that the thin stage scripts in stages/ call."""
