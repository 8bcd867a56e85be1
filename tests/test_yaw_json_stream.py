"""The streamed submission loader equals the whole-file one, and hands malformed files to it (same messages)."""

import json

import numpy as np
import pytest

import assignaudit.yaw.predictions as preds_mod
from assignaudit.errors import DataError
from assignaudit.yaw.pipeline import bundled_predictions_path
from assignaudit.yaw.predictions import _load_submission_whole, _stream_submission, load_predictions

FIELDS = ("kind", "sha256", "sample_token", "detection_class", "score", "translation_global", "size_wlh",
          "rotation_wxyz", "velocity_global", "boxes_lidar", "sample_order")


def assert_same(a, b):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(y, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            if y.dtype == object:
                assert x.tolist() == y.tolist(), name
            else:
                assert x.tobytes() == y.tobytes(), name
        else:
            assert x == y, name


def _box(token, i, **over):
    rec = {"sample_token": token, "translation": [1.5 + i, -2, 0.25], "size": [1.9, 4.5, 1.6],
           "rotation": [1, 0, 0, 0], "velocity": [float("nan"), 0.5], "detection_name": "car",
           "detection_score": 0.5 + 0.01 * i, "attribute_name": ""}
    rec.update(over)
    return rec


def _tricky():
    results = {"s1": [_box("s1", i) for i in range(7)], "s2": [], "s3\\u00e9": [],
               "s4": [_box("s4", 0, detection_name="pedestrian", detection_score=1, translation=[1, 2, 3])]}
    results["s3\\u00e9"] = []
    return {"results": results, "extra": [1, {"a": "}]"}], "meta": {"use_lidar": True, "note": "{[,"}}


@pytest.mark.parametrize("chunk, batch", [(1 << 24, 1 << 16), (7, 3), (1, 1)])
def test_streamed_equals_whole_file(tmp_path, monkeypatch, chunk, batch):
    monkeypatch.setattr(preds_mod, "_STREAM_CHUNK_BYTES", chunk)
    monkeypatch.setattr(preds_mod, "_STREAM_BATCH_BOXES", batch)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_tricky(), indent=1))
    streamed = _stream_submission(path)
    assert streamed is not None and len(streamed) == 8
    assert_same(streamed, _load_submission_whole(path))


def test_streamed_equals_whole_on_the_shipped_predictions(monkeypatch):
    path = bundled_predictions_path()
    if path.suffix != ".json":
        pytest.skip("bundled predictions are not a JSON submission")
    monkeypatch.setattr(preds_mod, "_STREAM_BATCH_BOXES", 100)
    streamed = _stream_submission(path)
    assert streamed is not None
    assert_same(streamed, _load_submission_whole(path))


@pytest.mark.parametrize("text, message", [
    ('{"results": {"a": []}, "meta": {}', "not valid JSON"),
    ('[1, 2]', "top level must be an object"),
    ('{"results": {"a": []}}', "missing top-level key 'meta'"),
    ('{"results": {"a": {}}, "meta": {}}', "results['a'] must be a list of boxes"),
    ('{"results": {"a": []}, "meta": {}} x', "not valid JSON"),
    ('{"results": {"a": [{"sample_token": "a"}]}, "meta": {}}', "sample a box 0: missing key 'translation'"),
])
def test_malformed_files_get_the_whole_file_messages(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    assert _stream_submission(path) is None
    with pytest.raises(DataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_predictions(path)


def test_a_bad_record_late_in_the_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(preds_mod, "_STREAM_BATCH_BOXES", 4)
    sub = {"meta": {}, "results": {f"s{k}": [_box(f"s{k}", i) for i in range(3)] for k in range(6)}}
    sub["results"]["s5"][2]["size"] = [1, -1, 1]
    path = tmp_path / "late.json"
    path.write_text(json.dumps(sub))
    with pytest.raises(DataError, match="sample s5 box 2: key 'size' must be positive"):
        load_predictions(path)


def test_duplicate_sample_keys_fall_back_to_the_json_module(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"meta": {}, "results": {"a": [], "a": []}}')
    assert _stream_submission(path) is None
    assert load_predictions(path).sample_order == ("a",)
