"""The qwen2-vl analyzer: real loading on a tiny random Qwen2-VL, answer parsing, fallback, Dagster.

The tiny model (tests/tiny_qwen.py) is built once per session. Its random weights answer
garbage, so the end-to-end tests check the fallback; the parse / validate / merge tests
feed realistic answers of a real model (and malformed ones) through the same code.
"""

from __future__ import annotations

import json

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from adgen_dagster.imaging.analysis_model import Analysis
from adgen_dagster.imaging.analysis_params import AnalysisParams
from adgen_dagster.imaging.analyze import analyze_classical
from adgen_dagster.imaging.colour import contrast_ratio, hex_to_rgb, relative_luminance
from adgen_dagster.models import qwen_answer, qwen_loading, qwen_vl
from adgen_dagster.models.params import GpuSettings, QwenParams
from adgen_dagster.models.qwen_answer import PROMPT, VLM_FIELDS, ask_until_valid, extract_json, parse_answer
from adgen_dagster.models.qwen_merge import BACKEND, RESULT_FIELDS, merge_answer
from adgen_dagster.models.qwen_vl import QwenAnalyzer
from adgen_dagster.models.errors import ModelError
from adgen_dagster.models.host import ModelHost
from adgen_dagster.definitions import location_resources
from tests.tiny_qwen import build_tiny_qwen2_vl

CLASSICAL = "classical"


@pytest.fixture(scope="session")
def tiny_qwen(tmp_path_factory):
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny-qwen2-vl"))


@pytest.fixture(scope="session")
def host(tmp_path_factory):
    return ModelHost(GpuSettings(allow_cpu=True, lock_dir=str(tmp_path_factory.mktemp("gpu-lock"))))


def tiny_params(folder, **kw) -> QwenParams:
    return QwenParams(model=str(folder), image_size=112, max_new_tokens=24, **kw)


def studio_shot(size=256, product=(0.4, 0.4, 0.6, 0.6), bg=(245, 245, 245), colour=(200, 40, 30)):
    """A flat studio background with a rectangular product, and its mask."""
    arr = np.empty((size, size, 3), np.uint8)
    arr[:] = bg
    x0, y0, x1, y1 = (round(v * size) for v in product)
    arr[y0:y1, x0:x1] = colour
    mask = np.zeros((size, size), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return Image.fromarray(arr, "RGB"), Image.fromarray(mask, "L")


# Answers as a real Qwen2-VL-7B-Instruct gives them (and ways they go wrong).
CLEAN = ('{"tone": "warm", "main_colours": ["#f5f5f5", "#c8281e"], "mood": ["clean", "premium"], '
         '"text_position": "top", "text_colour": "#1a1a1a"}')
FENCED = ('Here is the analysis of the image:\n```json\n{\n  "tone": "cool",\n  "main_colours": ["#f5f5f5", "#c8281e", '
          '"#333333"],\n  "mood": ["minimal", "Bold"],\n  "text_position": "bottom",\n  "text_colour": "#222222"\n}\n```\n'
          'The product stands out against the light background.')
UPPERCASE = ('{"tone": "Neutral", "main_colors": ["#F5F5F5", "#C8281E", "#FFF"], "mood": ["calm"], '
             '"text_position": "Top", "text_color": "#1A1A1A"}')
ONE_BAD = ('{"tone": "warm", "main_colours": ["#f5f5f5", "#c8281e"], "mood": ["cozy"], "text_position": "left", '
           '"text_colour": "#1a1a1a"}')
TRUNCATED = '```json\n{"tone": "warm", "main_colours": ["#f5f5f5", "#c8281e"], "mood": ["co'
NO_JSON = "I'm sorry, I cannot determine the layout of this image."
WARM_PROSE = ("The image has a warm tone with red and white as main colours; the mood is cozy and the text would fit "
              "best at the top in a dark colour.")
WRONG_TYPES = '{"tone": 1, "main_colours": "#ffffff", "mood": "calm", "text_position": ["top"], "text_colour": 255}'


# --- (b) parsing and validation ------------------------------------------------------


def test_prompt_asks_for_every_field_as_json():
    for name in VLM_FIELDS:
        assert f'"{name}"' in PROMPT
    assert "JSON" in PROMPT and "warm" in PROMPT and "top" in PROMPT


@pytest.mark.parametrize("raw, expected", [
    (CLEAN, {"tone": "warm", "main_colours": ["#f5f5f5", "#c8281e"], "mood": ["clean", "premium"],
             "text_position": "top", "text_colour": "#1a1a1a"}),
    (FENCED, {"tone": "cool", "main_colours": ["#f5f5f5", "#c8281e", "#333333"], "mood": ["minimal", "bold"],
              "text_position": "bottom", "text_colour": "#222222"}),
    (UPPERCASE, {"tone": "neutral", "main_colours": ["#f5f5f5", "#c8281e", "#ffffff"], "mood": ["calm"],
                 "text_position": "top", "text_colour": "#1a1a1a"}),
])
def test_valid_answers_parse_and_normalise(raw, expected):
    parsed = parse_answer(raw)
    assert parsed.complete and parsed.errors == {}
    assert parsed.values == expected


def test_one_bad_field_is_dropped_alone():
    parsed = parse_answer(ONE_BAD)
    assert set(parsed.errors) == {"text_position"} and "top" in parsed.errors["text_position"]
    assert set(parsed.values) == {"tone", "main_colours", "mood", "text_colour"}


@pytest.mark.parametrize("raw, error", [
    (TRUNCATED, "not closed"),
    (NO_JSON, "no JSON object"),
    (WARM_PROSE, "no JSON object"),
    ("{'tone': 'warm'}", "not valid JSON"),
    ("", "no JSON object"),
])
def test_malformed_answers_give_no_fields(raw, error):
    parsed = parse_answer(raw)
    assert parsed.values == {} and error in parsed.error
    assert set(parsed.errors) == set(VLM_FIELDS)


def test_wrong_types_are_each_invalid():
    parsed = parse_answer(WRONG_TYPES)
    assert parsed.values == {}
    assert set(parsed.errors) == set(VLM_FIELDS)
    assert "list" in parsed.errors["main_colours"] and "list" in parsed.errors["mood"]


def test_json_extraction_skips_prose_braces_and_respects_strings():
    assert extract_json('Sure {not json} then {"a": "x } y", "b": {"c": 1}} and {"d": 2}') == {"a": "x } y", "b": {"c": 1}}
    with pytest.raises(ValueError, match="not closed"):
        extract_json('{"a": "}')


def test_merge_takes_valid_fields_and_classical_for_the_rest():
    image, mask = studio_shot()
    p = AnalysisParams()
    classical = analyze_classical(image, mask, p)
    parsed = parse_answer(ONE_BAD)
    result, sources, reasons = merge_answer(parsed.values, parsed.errors, image, mask, p)
    assert result.backend == BACKEND
    assert set(sources) == set(RESULT_FIELDS)
    assert {k for k, v in sources.items() if v == BACKEND} == {"tone", "main_colours", "mood", "text_colour"}
    assert result.tone == "warm" and result.mood == ["cozy"] and result.text_colour == "#1a1a1a"
    assert result.text_zone == classical.text_zone and "text_zone.position" in reasons
    # measured (not guessed) shares, largest first
    assert [c.hex for c in result.main_colours] == ["#f5f5f5", "#c8281e"]
    assert result.main_colours[0].share > 0.9 and abs(sum(c.share for c in result.main_colours) - 1) < 1e-3
    # what the model cannot measure is always classical
    for name in ("width", "height", "brightness", "product_box"):
        assert getattr(result, name) == getattr(classical, name)
    assert result.text_contrast >= 4.5


def test_prose_with_warm_is_never_used():
    image, mask = studio_shot(colour=(40, 80, 200), bg=(200, 220, 245))  # a cool image
    parsed = parse_answer(WARM_PROSE)
    result, sources, reasons = merge_answer(parsed.values, parsed.errors, image, mask, AnalysisParams())
    assert all(v == CLASSICAL for v in sources.values())
    assert result.tone == analyze_classical(image, mask).tone == "cool"
    assert reasons["tone"] == "answer: no JSON object in the answer"


def test_text_position_picks_the_classical_box_there_when_free():
    image, mask = studio_shot(product=(0.4, 0.4, 0.6, 0.6))
    classical = analyze_classical(image, mask)
    assert classical.text_zone.position == "top"
    result, sources, _ = merge_answer({"text_position": "bottom"}, {}, image, mask, AnalysisParams())
    assert result.text_zone.position == "bottom" and sources["text_zone.position"] == BACKEND
    assert result.text_zone.box.y0 > mask.height // 2 > result.product_box.y0
    assert sources["text_zone.box"] == CLASSICAL


def test_text_position_where_the_product_is_keeps_the_classical_box():
    image, mask = studio_shot(product=(0.1, 0.45, 0.9, 1.0))  # wide product down to the floor
    classical = analyze_classical(image, mask)
    result, sources, reasons = merge_answer({"text_position": "bottom"}, {}, image, mask, AnalysisParams())
    assert result.text_zone == classical.text_zone and result.text_zone.position != "bottom"
    assert sources["text_zone.position"] == CLASSICAL and "no free text box at bottom" in reasons["text_zone.position"]


def test_text_colour_kept_only_when_legible_on_the_zone():
    image, mask = studio_shot()
    classical = analyze_classical(image, mask)
    ok, s_ok, _ = merge_answer({"text_colour": "#202020"}, {}, image, mask, AnalysisParams())
    bg = relative_luminance(np.array((245, 245, 245), np.float32) / 255)
    assert ok.text_colour == "#202020" and s_ok["text_colour"] == BACKEND
    expected = contrast_ratio(float(relative_luminance(np.array(hex_to_rgb("#202020"), np.float32) / 255)), float(bg))
    assert ok.text_contrast == pytest.approx(expected, rel=1e-3)
    bad, s_bad, reasons = merge_answer({"text_colour": "#eeeeee"}, {}, image, mask, AnalysisParams())
    assert bad.text_colour == classical.text_colour and s_bad["text_colour"] == CLASSICAL
    assert "below 4.5" in reasons["text_colour"]


def test_retry_says_what_was_wrong_and_keeps_earlier_valid_fields():
    answers = iter([ONE_BAD, '{"text_position": "bottom"}'])
    seen: list[list[dict]] = []

    def ask(messages):
        seen.append(messages)
        return next(answers), 30

    out = ask_until_valid(ask, retries=1)
    assert len(seen) == 2 and out.tokens == [30, 30]
    retry = seen[1]
    assert [m["role"] for m in retry] == ["user", "assistant", "user"]
    assert retry[1]["content"] == ONE_BAD and "text_position" in retry[2]["content"][0]["text"]
    assert out.values["text_position"] == "bottom" and out.values["tone"] == "warm" and out.errors == {}


def test_no_retry_when_the_first_answer_is_complete():
    calls = []
    out = ask_until_valid(lambda m: (calls.append(m), (CLEAN, 40))[1], retries=2)
    assert len(calls) == 1 and out.errors == {} and out.parse_errors == []


# --- (a) the real loading code on a tiny random Qwen2-VL ------------------------------


def test_tiny_qwen_end_to_end_falls_back_to_classical(tiny_qwen, host):
    image, mask = studio_shot(224)
    analyzer = QwenAnalyzer(tiny_params(tiny_qwen, retries=1), host)
    loads = host.loads
    assert analyzer.last_metadata == {} and host.loads == loads  # lazy: nothing loaded yet
    result = analyzer(image, mask, AnalysisParams())
    md = analyzer.last_metadata
    assert isinstance(result, Analysis) and result.backend == BACKEND
    assert result.model_dump(exclude={"backend"}) == analyze_classical(image, mask).model_dump(exclude={"backend"})
    assert md["field_sources"] == {f: CLASSICAL for f in RESULT_FIELDS}
    assert md["attempts"] == 2 and md["parse_error"]
    assert set(md["fallback_reasons"]) == {"tone", "main_colours", "mood", "text_zone.position", "text_colour"}
    assert md["device"] == "cpu" and md["dtype"] == "float32" and md["model_type"] == "qwen2_vl"
    assert md["visual_tokens"] == 16 and md["static_cache"] is False and md["compiled"] is False
    assert 0 < md["tokens_generated"] <= 2 * 24 and md["inference_ms"] > 0 and md["load_ms"] > 0
    assert isinstance(md["raw_answer"], str) and len(md["raw_answer"]) <= qwen_vl.RAW_LIMIT
    assert md["processor"] == "AutoProcessor" or md["processor"].startswith("image-only")
    json.dumps(md)  # goes into Dagster metadata and the cache manifest
    # loaded once per process: a second call (another product) reuses the model
    analyzer2 = QwenAnalyzer(tiny_params(tiny_qwen, retries=0), host)
    analyzer2(*studio_shot(160), AnalysisParams())
    assert host.loads == loads + 1 and "load_ms" not in analyzer2.last_metadata
    assert analyzer2.last_metadata["attempts"] == 1


def test_processor_sees_image_size_on_the_longest_side(tiny_qwen, host):
    analyzer = QwenAnalyzer(tiny_params(tiny_qwen), host)
    bundle, _ = analyzer._bundle()
    from transformers.processing_utils import ProcessorMixin

    assert isinstance(bundle.processor, ProcessorMixin) and bundle.processor.image_processor is not None
    image_id = bundle.model.config.image_token_id
    for size, tokens in [((640, 480), 4 * 3), ((200, 100), 4 * 2), ((1024, 1024), 4 * 4)]:
        inputs, sized = qwen_loading.prepare_inputs(bundle, Image.new("RGB", size, "white"), qwen_answer.first_messages(), 112)
        assert max(sized.size) == 112
        assert int((inputs["input_ids"] == image_id).sum()) == tokens
        assert inputs["pixel_values"].shape[0] == tokens * 4


def test_bare_tokenizer_from_autoprocessor_is_replaced(tiny_qwen, monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained",
                        classmethod(lambda cls, *a, **k: transformers.AutoTokenizer.from_pretrained(*a, **k)))
    proc, kind = qwen_loading.load_processor(tiny_qwen)
    assert kind.startswith("image-only (AutoProcessor gave a bare") and proc.image_processor is not None
    assert "<|vision_start|><|image_pad|><|vision_end|>" in proc.apply_chat_template(
        qwen_answer.first_messages(), tokenize=False, add_generation_prompt=True)


def test_realistic_answers_through_the_analyzer(tiny_qwen, host, monkeypatch):
    answers = iter([ONE_BAD, FENCED])
    monkeypatch.setattr(QwenAnalyzer, "ask", lambda self, bundle, image, messages: (next(answers), 50))
    image, mask = studio_shot(256)
    analyzer = QwenAnalyzer(tiny_params(tiny_qwen, retries=1), host)
    result = analyzer(image, mask, AnalysisParams())
    md = analyzer.last_metadata
    assert md["attempts"] == 2 and md["tokens_generated"] == 100
    assert {k for k, v in md["field_sources"].items() if v == BACKEND} == {
        "tone", "main_colours", "mood", "text_zone.position", "text_colour"}
    assert result.tone == "cool" and result.text_zone.position == "bottom" and result.mood == ["minimal", "bold"]
    assert "fallback_reasons" not in md and "text_position" in md["parse_error"]


def test_model_class_follows_the_config():
    import transformers

    assert qwen_loading._model_class("qwen2_vl") is transformers.Qwen2VLForConditionalGeneration
    assert qwen_loading._model_class("qwen2_5_vl") is transformers.Qwen2_5_VLForConditionalGeneration
    with pytest.raises(ModelError, match="ADGEN_QWEN2_VL__MODEL"):
        qwen_loading._model_class("llava")


# --- (d) missing weights, missing GPU ------------------------------------------------


def test_missing_weights_name_the_setting(tmp_path, host):
    image, mask = studio_shot(64)
    for ref in (str(tmp_path / "nowhere"), "Qwen/Qwen2-VL-7B-Instruct"):
        with pytest.raises(ModelError, match="ADGEN_QWEN2_VL__MODEL"):
            QwenAnalyzer(QwenParams(model=ref), host)(image, mask, AnalysisParams())


def test_no_gpu_without_allow_cpu_names_the_settings(tiny_qwen, tmp_path):
    strict = ModelHost(GpuSettings(device="cpu", allow_cpu=False, lock_dir=str(tmp_path)))
    with pytest.raises(ModelError, match="ADGEN_GPU__ALLOW_CPU.*ADGEN_ANALYZER"):
        QwenAnalyzer(tiny_params(tiny_qwen), strict)(*studio_shot(64), AnalysisParams())
    assert strict.loads == 0


# --- (c) the analysis asset with backend qwen2-vl -----------------------------------


def _analysis_run_config(model: str) -> dict:
    return {"resources": {"gpu": {"config": {"allow_cpu": True}}},
            "ops": {"analysis": {"config": {"backend": "qwen2-vl", "qwen2_vl": {
                "model": model, "image_size": 112, "max_new_tokens": 24, "retries": 1}}}}}


def _failures(result) -> list[str]:
    return [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]


def test_analysis_asset_with_qwen2_vl(tiny_qwen, store, store_resource, instance, add_product, tmp_path):
    from assets_defs import PIPELINE_ASSETS

    pid = add_product("teapot.jpg")
    result = dg.materialize(PIPELINE_ASSETS, partition_key=pid, resources=location_resources(store_resource),
                            instance=instance, run_config=_analysis_run_config(str(tiny_qwen)), raise_on_error=False)
    assert result.success, _failures(result)
    analysis = Analysis.model_validate(json.loads(store.get(f"products/{pid}/analysis.json")))
    assert analysis.backend == BACKEND
    [mat] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "analysis"]
    md = mat.step_materialization_data.materialization.metadata
    assert md["field_sources"].value == {f: CLASSICAL for f in RESULT_FIELDS}
    assert md["attempts"].value == 2 and md["backend"].value == BACKEND and md["device"].value == "cpu"
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["analysis_schema"]

    # (d) the same asset with weights that are not there: one failure naming the setting
    missing = str(tmp_path / "no-such-model")
    result = dg.materialize(PIPELINE_ASSETS, selection=["analysis"], partition_key=pid,
                            resources=location_resources(store_resource), instance=instance,
                            run_config=_analysis_run_config(missing), raise_on_error=False)
    assert not result.success
    [msg] = _failures(result)
    assert "ADGEN_QWEN2_VL__MODEL" in msg and "no-such-model" in msg


# --- the GPU benchmark, as a CPU smoke test ----------------------------------------


def test_gpu_bench_qwen_rows_tiny_on_cpu():
    from bench.gpu_qwen import qwen2_vl_config, qwen_rows

    full = qwen2_vl_config()
    assert (full.text_config.hidden_size, full.text_config.num_hidden_layers, full.text_config.num_key_value_heads,
            full.vision_config.depth, full.vision_config.embed_dim, full.image_token_id) == (3584, 28, 4, 32, 1280, 151655)
    rows = qwen_rows("cpu", repeats=1, tiny=True, new_tokens=8, image_size=112, log=lambda *a: None)
    assert [r[0].split(" [")[0] for r in rows] == [
        "plain transformers (reference usage)", "qwen2-vl analyzer (sdpa, greedy)", "  + static cache",
        "  + static cache + compile"]
    for name, s, tps, peak, ratio in rows:
        assert s > 0 and tps > 0 and ratio > 0 and peak is None
    assert rows[0][4] == 1.0
