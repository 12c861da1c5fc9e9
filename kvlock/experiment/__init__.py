"""The Hydra experiment app: compose config → run edits → metrics → results store + loggers."""
