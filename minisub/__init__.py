"""minisub: a small GPT of our own for the subliminal-learning experiments."""
