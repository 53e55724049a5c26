"""Compression: structured pruning (`prune`), int8 quantization-aware training (`qat`), their gated workflow.

The pruning criteria are named here rather than in `prune` (which imports torch-pruning), so that
`edgecnn prune --help` lists them without importing torch.
"""

PRUNING_CRITERIA = {"l1": "L1 weight norm", "l2": "L2 weight norm", "bn": "BatchNorm scale",
                    "taylor": "|w·grad| of the loss"}
