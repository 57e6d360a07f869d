"""Side-by-side resolution robustness of two evaluated models (the demo's story).

``python -m fer_multires.compare EVAL_A EVAL_B [--names multires,baseline] [--out DIR]`` reads
the ``metrics.json`` of two ``fer_multires.evaluate`` outputs and prints, for ``val_rest`` (the
honest estimate), the challenge score of each at every resolution and the difference; writes
``comparison.md`` and ``comparison.png`` into ``--out``; and says plainly whether the first model
holds up better at low resolution (<= 32 px) than the second, or not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fer_multires.plots import new_figure, save_figure_atomic
from fer_multires.utils.io import write_text_atomic

SPLIT = "val_rest"
LOW_RESOLUTION = 32


def load_scores(eval_dir: Path, split: str = SPLIT) -> dict[str, float]:
    """Return ``{resolution key: challenge score}`` of one split of an evaluate output.

    Raises:
        FileNotFoundError: if ``eval_dir`` has no metrics.json.
        KeyError: if the split is missing from it.
    """
    path = eval_dir / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{eval_dir}: no metrics.json (run fer_multires.evaluate first)")
    metrics = json.loads(path.read_text())
    if split not in metrics:
        raise KeyError(f"{path}: no {split!r} results")
    return {res: float(entry["challenge_score"]) for res, entry in metrics[split].items()}


def resolution_keys(a: dict[str, float], b: dict[str, float]) -> list[str]:
    """Resolutions present in both, ascending, then ``native``."""
    shared = sorted((k for k in a.keys() & b.keys() if k != "native"), key=int)
    return [*shared, "native"] if "native" in a and "native" in b else shared


def verdict(a: dict[str, float], b: dict[str, float], names: tuple[str, str]) -> str:
    """Say whether model A beats model B at low resolution, by the mean score difference."""
    low = [k for k in resolution_keys(a, b) if k != "native" and int(k) <= LOW_RESOLUTION]
    if not low:
        return f"no resolution <= {LOW_RESOLUTION} px was evaluated: nothing to compare"
    gain = sum(a[k] - b[k] for k in low) / len(low)
    native = a.get("native", float("nan")) - b.get("native", float("nan"))
    where = f"at {', '.join(low)} px"
    if gain > 0:
        return (
            f"{names[0]} holds up better at low resolution than {names[1]}: mean {SPLIT} score "
            f"{gain:+.3f} {where} (native: {native:+.3f})"
        )
    return (
        f"{names[0]} does NOT help at low resolution on this data: mean {SPLIT} score "
        f"{gain:+.3f} {where} against {names[1]} (native: {native:+.3f})"
    )


def comparison_table(a: dict[str, float], b: dict[str, float], names: tuple[str, str]) -> str:
    """Markdown table: resolution, score of A, score of B, A - B."""
    lines = [
        f"| resolution | {names[0]} | {names[1]} | difference |",
        "|---|---|---|---|",
    ]
    for key in resolution_keys(a, b):
        label = key if key == "native" else f"{key} px"
        lines.append(f"| {label} | {a[key]:.3f} | {b[key]:.3f} | {a[key] - b[key]:+.3f} |")
    return "\n".join(lines)


def plot_comparison(
    a: dict[str, float], b: dict[str, float], names: tuple[str, str], path: Path
) -> None:
    """Plot both models' score against resolution (log scale), native as dashed lines."""
    figure = new_figure(6.0, 4.0)
    ax = figure.subplots()
    keys = [k for k in resolution_keys(a, b) if k != "native"]
    xs = [int(k) for k in keys]
    for i, (scores, name) in enumerate(((a, names[0]), (b, names[1]))):
        ax.plot(xs, [scores[k] for k in keys], marker="o", color=f"C{i}", label=name)
        if "native" in scores:
            ax.axhline(scores["native"], color=f"C{i}", linestyle="--", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("input resolution (px, shorter side; dashed: native)")
    ax.set_ylabel(f"{SPLIT} challenge score")
    ax.legend()
    save_figure_atomic(figure, path)


def compare(a_dir: Path, b_dir: Path, names: tuple[str, str], out: Path) -> dict[str, Any]:
    """Compare two evaluate outputs; write comparison.md/.png into ``out``; return the texts."""
    a, b = load_scores(a_dir), load_scores(b_dir)
    table, summary = comparison_table(a, b, names), verdict(a, b, names)
    header = f"# {names[0]} vs {names[1]}: {SPLIT} challenge score by input resolution\n\n"
    sources = f"\n\n{names[0]}: {a_dir}\n{names[1]}: {b_dir}\n"
    write_text_atomic(out / "comparison.md", header + table + "\n\n" + summary + sources)
    plot_comparison(a, b, names, out / "comparison.png")
    return {"table": table, "verdict": summary, "plot": str(out / "comparison.png")}


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
    except (FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result["table"], result["verdict"], f"plot: {result['plot']}", sep="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
