"""Blob keys: the layout every writer and reader of a run agrees on."""

import hashlib

import pytest
from lamina.versioning import layout

DIGEST = hashlib.sha256(b"x").hexdigest()


def test_artifact_and_code_keys_are_content_addresses_that_invert():
    key = layout.artifact_key(DIGEST)
    assert key == f"artifacts/sha256/{DIGEST[:2]}/{DIGEST[2:]}"
    assert layout.digest_of(key) == DIGEST
    code = layout.code_key(DIGEST)
    assert code.startswith("code/sha256/") and code.endswith(".tar.gz")
    assert layout.digest_of(code) == DIGEST


def test_task_keys_follow_the_run_layout_and_parse_back():
    record = layout.task_record_key("TrainFlow", "r1", "train", "7", 2)
    assert record == "runs/TrainFlow/r1/train/7/2/record.json"
    assert layout.parse_task_record_key(record) == ("TrainFlow", "r1", "train", "7", 2)
    assert (
        layout.log_key("TrainFlow", "r1", "train", "7", 2, "stderr")
        == "runs/TrainFlow/r1/train/7/2/stderr.log"
    )
    assert layout.run_params_key("TrainFlow", "r1") == "runs/TrainFlow/r1/params.json"
    assert record.startswith(layout.task_prefix("TrainFlow", "r1", "train", "7"))
    assert record.startswith(layout.run_prefix("TrainFlow", "r1"))


@pytest.mark.parametrize("bad", ["", "a/b", ".hidden", "..", "a\\b"])
def test_names_that_would_escape_their_key_segment_are_refused(bad):
    with pytest.raises(ValueError, match="step name"):
        layout.task_record_key("F", "r1", bad, "1", 0)


def test_malformed_digests_and_keys_are_refused():
    with pytest.raises(ValueError):
        layout.artifact_key("ABC")
    with pytest.raises(ValueError):
        layout.digest_of("runs/F/r1/params.json")
    with pytest.raises(ValueError):
        layout.parse_task_record_key("runs/F/r1/start/1/x/record.json")
    with pytest.raises(ValueError):
        layout.log_key("F", "r", "s", "t", 0, "stdin")  # type: ignore[arg-type]
