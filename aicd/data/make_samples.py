"""Rebuild `aicd/data/samples/` from a full copy of the public datasets (`python -m aicd.data.make_samples SRC`).

For each benchmark it keeps the first `n_train` train and `n_test` test records of the split (in split
order) in their raw upstream format, the matching LLM-Adapters teacher CoT records, and the reasoning-teacher
split files re-indexed for the subset, and copies each source's licence files, so the samples load with
the same parsers and give the same ids and records as the full data.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "samples"


def _dump(path: Path, data: object) -> None:
    """A JSON list with one record per line: the upstream structure, smaller than its indent=4 layout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, list):
        text = "[\n" + ",\n".join(json.dumps(x, ensure_ascii=False) for x in data) + "\n]\n"
    else:
        text = json.dumps(data) + "\n"
    path.write_text(text, encoding="utf-8")


def _licences(src: Path, dst: Path, folder: str) -> None:
    for name in ("LICENSE", "DATA_LICENSE"):
        if (src / folder / name).is_file():
            (dst / folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / folder / name, dst / folder / name)


def _indexed_subset(src: Path, dst: Path, key: str, raw: str, cot: str, n_train: int, n_test: int) -> None:
    split = json.loads((src / "splits_reasoning_teacher" / "split" / f"{key}__default.json").read_text())
    keep = sorted(split["train"][:n_train] + split["test"][:n_test])
    new_index = {old: new for new, old in enumerate(keep)}
    records = json.loads((src / raw).read_text(encoding="utf-8"))
    cots = json.loads((src / "cot_llm_adapters_gpt35" / cot).read_text(encoding="utf-8"))
    _dump(dst / raw, [records[i] for i in keep])
    _dump(dst / "cot_llm_adapters_gpt35" / cot, [cots[i] for i in keep])
    _dump(
        dst / "splits_reasoning_teacher" / "split" / f"{key}__default.json",
        {
            "train": [new_index[i] for i in split["train"][:n_train]],
            "test": [new_index[i] for i in split["test"][:n_test]],
        },
    )


def build(src: Path, dst: Path = SAMPLES, n_train: int = 200, n_test: int = 100) -> None:
    """Write the sample subsets of `src` (a folder shaped like shared/datasets) into `dst`."""
    for name, n in (("train", n_train), ("test", n_test)):
        lines = (src / "gsm8k" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:n]
        (dst / "gsm8k").mkdir(parents=True, exist_ok=True)
        (dst / "gsm8k" / f"{name}.jsonl").write_text("".join(lines), encoding="utf-8")
    _indexed_subset(src, dst, "svamp", "svamp/SVAMP.json", "svamp_1.json", n_train, n_test)
    _indexed_subset(
        src, dst, "multiarith", "multiarith/MultiArith.json", "multiarith_1.json", n_train, n_test
    )
    for name, n in (("train.json", n_train), ("dev.json", n_test)):
        records = json.loads((src / "strategyqa" / name).read_text(encoding="utf-8"))
        _dump(dst / "strategyqa" / name, records[:n])
    for folder in (
        "gsm8k",
        "svamp",
        "multiarith",
        "strategyqa",
        "cot_llm_adapters_gpt35",
        "splits_reasoning_teacher",
    ):
        _licences(src, dst, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="folder shaped like shared/datasets")
    parser.add_argument("--dst", type=Path, default=SAMPLES)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=100)
    args = parser.parse_args()
    build(args.src, args.dst, args.n_train, args.n_test)


if __name__ == "__main__":
    main()
