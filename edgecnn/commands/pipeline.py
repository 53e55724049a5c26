"""`edgecnn pipeline pipelines/demo.yaml [stage.key=value …] [--from S] [--to S] [--force]`."""

from edgecnn.config import Key, Schema

HELP = "run a staged pipeline YAML; unchanged stages are skipped, interrupted ones resume"
POSITIONAL = ("pipeline",)
# Keys this command does not know (`train.epochs=5`, `imgsz=416`) are overrides for the stages.
EXTRA_OVERRIDES = True
KEYS = Schema(
    Key("pipeline", "pipelines/demo.yaml", "the pipeline YAML file"),
    Key("from", None, "first stage to run (earlier stages must have run)", type=str),
    Key("to", None, "last stage to run", type=str),
    Key("force", False, "rerun the selected stages even when nothing changed"),
    Key("variant", None, "a variant of the pipeline defined under 'variants' (e.g. fast)", type=str),
    Key("runs", "runs", "root directory of the runs"),
    Key("overrides", {}, "stage.key=value or key=value overrides (given as bare key=value words)", type=dict),
)


def run(cfg: dict) -> dict:
    from edgecnn.pipeline import load_pipeline, run_pipeline

    pipeline = load_pipeline(cfg["pipeline"], cfg["overrides"], cfg["variant"])
    return run_pipeline(pipeline, cfg["runs"], cfg["from"], cfg["to"], cfg["force"])
