"""The plain-text table of a split's logged metrics, for each task (training's printout)."""

from __future__ import annotations

from fer_multires.tasks import AU_NAMES
from fer_multires.utils.tables import format_split_table


def test_expression_table_is_unchanged() -> None:
    metrics = {"acc": 0.5, "f1": 0.25, "score": 0.3325, "f1_Anger": 0.1, "f1_Happiness": 0.2}
    assert format_split_table(metrics, ["Anger", "Happiness"]) == "\n".join([
        "per-class F1 (val_full)",
        "      Anger  Happiness",
        "      0.100      0.200",
        "",
        "    accuracy    macro F1       score",
        "      0.5000      0.2500      0.3325",
    ])  # fmt: skip


def test_each_task_shows_its_heads() -> None:
    metrics = {"ccc_valence": 0.41, "ccc_arousal": 0.2, "va_score": 0.305, "au_score": 0.5,
               "acc": 0.6, "f1": 0.4, "score": 1.205}  # fmt: skip
    metrics |= {f"f1_{a}": 0.5 for a in AU_NAMES}
    va = format_split_table(metrics, [], "va")
    assert va.splitlines()[1:] == ["   valence   arousal  va_score",
                                   "    0.4100    0.2000    0.3050"]  # fmt: skip
    au = format_split_table(metrics, [], "au")
    assert au.startswith("AU F1 at threshold 0.5 (val_full)") and "    0.5000" in au
    assert "valence" not in au and "accuracy" not in au
    mtl = format_split_table(metrics, ["Anger"], "mtl")
    assert "    accuracy    macro F1\n      0.6000      0.4000" in mtl  # not the task's score
    assert mtl.endswith("  mtl_score\n     1.2050") and "va_score" in mtl and "AU26" in mtl
