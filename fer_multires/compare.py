"""Side-by-side resolution robustness of two evaluated models (the demo's story).

``python -m fer_multires.compare EVAL_A EVAL_B [--names multires,baseline] [--out DIR]`` reads
the ``metrics.json`` of two ``fer_multires.evaluate`` outputs and prints, for ``val_rest`` (the
honest estimate), the challenge score of each at every resolution and the difference; writes
``comparison.md`` and ``comparison.png`` into ``--out``; and says plainly whether the first model
holds up better at low resolution (<= 32 px) than the second, or not. Where both evaluations hold
other degradations (``eval.degradations``), each gets its own table, verdict and
``comparison_<kernel>.png``: the answer for degradations the models were not trained with.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fer_multires.plots import plot_comparison
from fer_multires.results import (
    NATIVE,
    REPORT_SPLIT,
    ResultsError,
    load_eval_results,
)
from fer_multires.runs import metrics_file
from fer_multires.utils.io import write_text_atomic
from fer_multires.utils.tables import markdown_table

LOW_RESOLUTION = 32


def load_scores(eval_dir: Path, split: str = REPORT_SPLIT) -> dict[str, dict[str, float]]:
    """Return ``{kernel: {resolution key: challenge score}}`` of one split of an evaluate output.

    Raises:
        ResultsError: if ``eval_dir`` holds no evaluation's metrics.json, or lacks the split.
    """
    results = load_eval_results(eval_dir)
    if split not in results.splits:
        raise ResultsError(f"{metrics_file(eval_dir)}: no {split!r} results")
    return {kernel: results.scores(split, kernel) for kernel in results.kernels()}


def check_comparable(a_dir: Path, b_dir: Path, split: str = REPORT_SPLIT) -> None:
    """Refuse to compare an evaluation with itself, or evaluations of different data.

    Different data: another dataset or class list, or a different number of ``split`` samples
    at a resolution both evaluated (other videos or images).

    Raises:
        ResultsError: naming both files and what differs.
    """
    a_file, b_file = metrics_file(a_dir), metrics_file(b_dir)
    if a_file.exists() and a_file.resolve() == b_file.resolve():
        raise ResultsError(f"{a_file} is compared with itself: give two models' evaluations")
    a, b = load_eval_results(a_dir), load_eval_results(b_dir)
    counts_a, counts_b = a.splits.get(split, {}), b.splits.get(split, {})
    candidates = [
        ("dataset", a.dataset, b.dataset),
        ("classes", a.classes, b.classes),
        *((f"{split} samples at {key}", counts_a[key].n, counts_b[key].n)
          for key in sorted(counts_a.keys() & counts_b.keys())),
    ]  # fmt: skip
    differences = [(what, x, y) for what, x, y in candidates if x and y and x != y]
    if differences:
        what, x, y = differences[0]
        raise ResultsError(
            f"{a_file} and {b_file} evaluate different data ({what}: {x} against {y}): a "
            "comparison needs both models evaluated on the same videos or images"
        )


def resolution_keys(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Resolutions present in both, ascending, then ``native``."""
    shared = sorted((k for k in a.keys() & b.keys() if k != NATIVE), key=int)
    return [*shared, NATIVE] if NATIVE in a and NATIVE in b else shared


def verdict(a: dict[str, float], b: dict[str, float], names: tuple[str, str]) -> str:
    """Say whether model A beats model B at low resolution, by the mean score difference."""
    low = [k for k in resolution_keys(a, b) if k != NATIVE and int(k) <= LOW_RESOLUTION]
    if not low:
        return f"no resolution <= {LOW_RESOLUTION} px was evaluated: nothing to compare"
    gain = sum(a[k] - b[k] for k in low) / len(low)
    native = a.get(NATIVE, float("nan")) - b.get(NATIVE, float("nan"))
    where = f"at {', '.join(low)} px"
    if gain > 0:
        return (
            f"{names[0]} holds up better at low resolution than {names[1]}: mean "
            f"{REPORT_SPLIT} score {gain:+.3f} {where} (native: {native:+.3f})"
        )
    return (
        f"{names[0]} does NOT help at low resolution on this data: mean {REPORT_SPLIT} score "
        f"{gain:+.3f} {where} against {names[1]} (native: {native:+.3f})"
    )


def comparison_table(a: dict[str, float], b: dict[str, float], names: tuple[str, str]) -> str:
    """Markdown table: resolution, score of A, score of B, A - B."""
    rows = [
        [key if key == NATIVE else f"{key} px", f"{a[key]:.3f}", f"{b[key]:.3f}",
         f"{a[key] - b[key]:+.3f}"]
        for key in resolution_keys(a, b)
    ]  # fmt: skip
    return "\n".join(markdown_table(["resolution", *names, "difference"], rows))


def compare(a_dir: Path, b_dir: Path, names: tuple[str, str], out: Path) -> dict[str, Any]:
    """Compare two evaluate outputs; write comparison.md/.png into ``out``; return the texts.

    The training's degradation (bilinear) first, then every other kernel both evaluated.
    """
    check_comparable(a_dir, b_dir)
    a_all, b_all = load_scores(a_dir), load_scores(b_dir)
    a, b = a_all["bilinear"], b_all["bilinear"]
    if not resolution_keys(a, b):
        raise ResultsError(
            f"{metrics_file(a_dir)} ({', '.join(a)}) and {metrics_file(b_dir)} ({', '.join(b)}) "
            "share no evaluated resolution: nothing to compare"
        )
    table, summary = comparison_table(a, b, names), verdict(a, b, names)
    header = f"# {names[0]} vs {names[1]}: {REPORT_SPLIT} challenge score by input resolution\n\n"
    sections = [header + table + "\n\n" + summary]
    plot_comparison(a, b, names, f"{REPORT_SPLIT} challenge score", out / "comparison.png")
    verdicts = {"bilinear": summary}
    for kernel in [k for k in a_all if k in b_all and k != "bilinear"]:
        ka, kb = a_all[kernel], b_all[kernel]
        verdicts[kernel] = verdict(ka, kb, names)
        sections.append(
            f"## Degradation: {kernel} (not the training's)\n\n"
            f"{comparison_table(ka, kb, names)}\n\n{verdicts[kernel]}"
        )
        plot_comparison(ka, kb, names, f"{REPORT_SPLIT} challenge score ({kernel})",
                        out / f"comparison_{kernel}.png")  # fmt: skip
    sources = f"\n\n{names[0]}: {a_dir}\n{names[1]}: {b_dir}\n"
    write_text_atomic(out / "comparison.md", "\n\n".join(sections) + sources)
    return {"table": table, "verdict": summary, "verdicts": verdicts,
            "plot": str(out / "comparison.png")}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m fer_multires.compare``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval_a", type=Path)
    parser.add_argument("eval_b", type=Path)
    parser.add_argument("--names", default="multires,baseline")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    names = tuple(args.names.split(","))
    if len(names) != 2:
        parser.error("--names takes two comma-separated names")
    try:
        result = compare(args.eval_a, args.eval_b, names, args.out)
    except ResultsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    others = [
        f"{kernel}: {text}" for kernel, text in result["verdicts"].items() if kernel != "bilinear"
    ]
    print(result["table"], result["verdict"], *others, f"plot: {result['plot']}", sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
