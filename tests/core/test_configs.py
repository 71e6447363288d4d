"""Shipped configs: inside the package (found by importlib.resources), in the wheel, and on the command line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from aicd.config import read_yaml, resolve_config_path, shipped_configs_dir

PAPER = {"table1-gsm8k", "table1-svamp", "table1-multiarith", "table1-strategyqa", "fig1-omega", "fig2-shots"}


def test_importlib_resources_finds_every_shipped_config():
    found = {p.name.removesuffix(".yaml") for p in files("aicd").joinpath("configs").iterdir()}
    assert PAPER <= found and "svamp-aicd" in found and "strategyqa-nocot" in found
    assert shipped_configs_dir() == Path(str(files("aicd").joinpath("configs")))
    assert len(list(shipped_configs_dir().glob("*.yaml"))) == 22 + 6  # + the paper-scale paper-*.yaml


def test_configs_paths_resolve_to_the_shipped_files_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    assert resolve_config_path("configs/table1-svamp.yaml") == shipped_configs_dir() / "table1-svamp.yaml"
    assert read_yaml("configs/table1-svamp.yaml")["name"] == "table1-svamp"
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "table1-svamp.yaml").write_text("name: mine\n")
    assert read_yaml("configs/table1-svamp.yaml") == {"name": "mine"}  # a local file wins
    from aicd.errors import ConfigError

    with pytest.raises(ConfigError, match="not found"):
        read_yaml("configs/no-such-config.yaml")


def test_cli_runs_a_shipped_config_outside_the_checkout(tmp_path):
    cmd = [sys.executable, "-m", "aicd", "sweep", "configs/fig2-shots.yaml", "--dry-run"]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("sweep fig2-shots:")


def test_a_built_wheel_ships_the_configs(tmp_path, repo_root):
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, src / name)
    for pkg in ("aicd", "backend", "worker", "ui"):
        shutil.copytree(repo_root / pkg, src / pkg, ignore=ignore)
    build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w"]
    res = subprocess.run([*build, str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    root = shipped_configs_dir()
    shipped = [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert any(p.parent != root for p in shipped)  # the accelerate/ configs are among them
    for path in shipped:
        rel = path.relative_to(root).as_posix()
        assert f"aicd/configs/{rel}" in names, rel
