"""The configs ship inside the wheel, so a non-editable install finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_ships_the_configs_and_finds_them(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("fer_multires-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    for config in ("train.yaml", "stats.yaml", "experiment/demo.yaml", "data/affwild2.yaml"):
        assert f"fer_multires/conf/{config}" in names
    # Imported from the unpacked wheel (not the checkout), it composes from its own copy.
    script = (
        "from hydra import compose, initialize_config_dir\n"
        "import fer_multires.schemas  # the typed configs, registered on import\n"
        "from fer_multires.utils.config import CONFIG_DIR\n"
        "with initialize_config_dir(CONFIG_DIR, version_base='1.3'):\n"
        "    cfg = compose('train', overrides=['+experiment=paper_multires'])\n"
        "print(CONFIG_DIR)\nprint(cfg.model.backbone)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config_dir, backbone = result.stdout.split()
    assert Path(config_dir) == site / "fer_multires" / "conf"
    assert backbone == "seresnet50"
