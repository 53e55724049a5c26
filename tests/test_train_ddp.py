"""Data-parallel training: `devices=2` spawns two gloo processes on the CPU; both end with the same weights."""

import json

import pytest
import torch

from edgecnn.cli import main
from edgecnn.data.synth import synth_classify
from edgecnn.models import read_checkpoint


@pytest.mark.slow
def test_two_processes_end_with_identical_weights(tmp_path, capsys):
    if not torch.distributed.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    synth_classify(tmp_path / "digits", n=64, val=20, imgsz=32, seed=0)
    out = tmp_path / "run"
    code = main(["train", f"data={tmp_path / 'digits'}", "model=lenet5", "epochs=2", "batch=16", "devices=2",
                 "workers=0", "device=cpu", "plots=false", f"out={out}", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    result = json.loads(captured.out)
    record = json.loads((out / "results.json").read_text())
    checksums = record["rank_weight_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    assert record["cfg"]["devices"] == 2 and len(record["history"]) == 2
    # each rank sees half of the 64 images per epoch in batches of 16 / 2: 4 steps per epoch
    state = read_checkpoint(out / "last.pt")["train_state"]
    assert state["scheduler"]["last_epoch"] == 8
    assert result["top1"] == pytest.approx(record["summary"]["top1"])
