"""Training of the toy Wan backbone on the synthetic world (entry: `python -m benchmarks.train_toy`):
`data` (scenes to latents), `objective` (times and loss), `model` (config, weights, EMA),
`loop` (the training loop and its checkpoints), `evaluation` (sampling and scores)."""
