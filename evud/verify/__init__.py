"""verify: every QA pair checked against a model without the video (and optionally with it) before training."""
