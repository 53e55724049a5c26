import pytest

from edgecnn.config import ConfigError, Key, Schema, parse_overrides, parse_value

SCHEMA = Schema(
    Key("epochs", 30, "training epochs", min=1),
    Key("lr", 0.01, "learning rate", min=0.0),
    Key("optimizer", "sgd", "optimizer", choices=("sgd", "adam", "adamw")),
    Key("source", 0, "webcam index or path", type=(int, str)),
    Key("weights", None, "optional weights file", type=str),
    Key("classes", None, "class ids to keep", type=list),
    Key("amp", True, "mixed precision"),
)


def test_defaults_and_overrides_are_typed():
    cfg = SCHEMA.resolve(parse_overrides(["epochs=5", "lr=1", "source=rtsp://cam/1", "classes=[0,2]", "amp=false"]))
    assert cfg == {"epochs": 5, "lr": 1.0, "optimizer": "sgd", "source": "rtsp://cam/1", "weights": None,
                   "classes": [0, 2], "amp": False}
    assert isinstance(cfg["lr"], float)


def test_a_list_of_names_from_the_shell_loses_its_brackets():
    for text in ("person,car", "[person,car]", "[person, 'car']"):
        assert SCHEMA.resolve(parse_overrides([f"classes={text}"]))["classes"] == ["person", "car"]


def test_unknown_key_names_it_and_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown key 'epoch'.*did you mean 'epochs'"):
        SCHEMA.resolve({"epoch": 3})


def test_wrong_type_names_key_value_and_allowed():
    with pytest.raises(ConfigError, match=r"epochs='many'.*wrong type.*int"):
        SCHEMA.resolve({"epochs": "many"})
    with pytest.raises(ConfigError, match=r"amp=3.*bool"):
        SCHEMA.resolve({"amp": 3})


def test_out_of_range_and_bad_choice():
    with pytest.raises(ConfigError, match=r"epochs=0 is out of range; allowed: int >= 1"):
        SCHEMA.resolve({"epochs": 0})
    with pytest.raises(ConfigError, match=r"optimizer='adan'.*one of sgd, adam, adamw.*did you mean 'adam'"):
        SCHEMA.resolve({"optimizer": "adan"})


def test_bool_is_not_an_int():
    with pytest.raises(ConfigError):
        SCHEMA.resolve({"epochs": True})


@pytest.mark.parametrize("text,value", [("30", 30), ("0.5", 0.5), ("true", True), ("None", None),
                                        ("[1, 2]", [1, 2]), ("yolo-n", "yolo-n"), ("a/b.yaml", "a/b.yaml")])
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_parse_overrides_rejects_bare_words():
    with pytest.raises(ConfigError, match="expected key=value, got 'epochs'"):
        parse_overrides(["epochs"])


def test_required_key_names_itself_when_missing():
    schema = Schema(Key("model", None, "the checkpoint", required=True), Key("imgsz", 320, "input size"))
    for missing in ({}, {"model": None}, {"model": ""}):
        with pytest.raises(ConfigError, match=r"edgecnn x: model= is required: the checkpoint"):
            schema.resolve(missing, "edgecnn x")
    assert schema.resolve({"model": "best.pt"})["model"] == "best.pt"
    assert schema.help_rows()[0][1] == "(required)"


def test_fine_tuning_and_training_require_data(tmp_path, capsys):
    from edgecnn.cli import main

    for command in ("prune", "qat", "train"):
        assert main([command, "model=best.pt" if command != "train" else f"out={tmp_path}"]) == 2
        assert f"edgecnn {command}: data= is required" in capsys.readouterr().err
