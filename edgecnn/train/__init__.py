"""Training: `Trainer(model, cfg, out_dir, meta).fit()`, `evaluate(model, data, cfg, meta)` and the
keys `TRAIN_KEYS` (in `edgecnn.train.keys`, importable without torch)."""


def __getattr__(name: str):
    # torch loads only when the trainer is used, so `edgecnn.train.keys` stays light for --help
    if name in ("Trainer", "evaluate"):
        from edgecnn.train import trainer

        return getattr(trainer, name)
    if name == "TRAIN_KEYS":
        from edgecnn.train.keys import TRAIN_KEYS

        return TRAIN_KEYS
    raise AttributeError(f"module 'edgecnn.train' has no attribute '{name}'")
