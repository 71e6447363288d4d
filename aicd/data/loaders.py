"""Dataset registry and loaders: built-in benchmarks, Example JSONL files, generic JSONL/CSV and the HF hub.

Data root (where the raw benchmark files are read from), first match wins:
  1. the `data_dir=` argument;
  2. the environment variable `AICD_DATA_DIR` (a folder shaped like `shared/datasets`);
  3. `../shared/datasets` or `shared/datasets` next to the repository root or the current directory;
  4. the small licensed samples shipped in `aicd/data/samples/` (same layout, see its README.md).

Splits of the built-in datasets (split "dev" / "validation" are accepted as "test"):
  - gsm8k: the official `train.jsonl` (7473) / `test.jsonl` (1319).
  - svamp: no official split; reasoning-teacher's 700 / 300 (`splits_reasoning_teacher/split/svamp__default.json`).
  - multiarith: no official split; reasoning-teacher's 420 / 180 (`.../split/multiarith__default.json`).
  - strategyqa: the authors' `train.json` (2061) / `dev.json` (229) (the official test set has no answers).
  When a data root lacks the reasoning-teacher split file, svamp / multiarith fall back to `seeded_split`
  (70 / 30, the same proportion), and so do hub datasets and generic files asked for a split they lack.

Rationales: gsm8k and strategyqa carry a gold rationale (the solution / the facts); svamp and multiarith
carry the GPT-3.5 CoT of LLM-Adapters as a teacher rationale where its prediction is correct. Every
rationale ends "So, the answer is N.". `limit` keeps the first N records in source order (stable across
seeds, so a limited eval set is the same for every run).
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import json
import os
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aicd.data import sources, synthetic
from aicd.data.jsonl import iter_json_objects, read_examples
from aicd.data.record import AnswerKind, Example, Rationale
from aicd.errors import DataError

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
REPO_ROOT = Path(__file__).resolve().parents[2]
SPLITS = ("train", "test")
SPLIT_ALIASES = {"train": "train", "test": "test", "dev": "test", "validation": "test", "val": "test"}
TEST_FRACTION = 0.3
PLUGINS: dict[str, str] = {}  # extra datasets whose module registers them when imported (name -> module)
_HUB_ID = re.compile(r"^(?:hf:)?[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?$")


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the workbench needs to know about a dataset before loading it."""

    name: str
    answer_kind: AnswerKind
    n_shots: int
    description: str


Loader = Callable[[str, int], list[Example]]
DATASETS: dict[str, DatasetInfo] = {}
_LOADERS: dict[str, Loader] = {}


def register_dataset(info: DatasetInfo, loader: Loader) -> None:
    """Make `info.name` loadable by `load_examples`; `loader(split, seed)` returns that split's records."""
    DATASETS[info.name] = info
    _LOADERS[info.name] = loader


# ---------------------------------------------------------------- data root


def _has_datasets(path: Path) -> bool:
    return path.is_dir() and any(
        (path / name).is_dir() for name in ("gsm8k", "svamp", "multiarith", "strategyqa")
    )


def data_root(data_dir: str | Path | None = None) -> Path:
    """The folder raw benchmark files are read from (see the module docstring for the order)."""
    for explicit, origin in (
        (data_dir, "data_dir"),
        (os.environ.get("AICD_DATA_DIR") or None, "AICD_DATA_DIR"),
    ):
        if explicit is not None:
            path = Path(explicit).expanduser()
            if not path.is_dir():
                raise DataError(f"{origin}: data folder not found: {path}")
            return path
    cwd = Path.cwd()
    for base in (REPO_ROOT, cwd):
        for candidate in (base.parent / "shared" / "datasets", base / "shared" / "datasets"):
            if _has_datasets(candidate):
                return candidate
    return SAMPLES_DIR


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: file not found (data root: {path.parent.parent})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def _read_json_list(path: Path) -> list[Any]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def _split_name(split: str) -> str:
    key = SPLIT_ALIASES.get(split.lower()) if isinstance(split, str) else None
    if key is None:
        raise DataError(f"split '{split}' is not one of: train, test (dev/validation mean test)")
    return key


def seeded_split(
    items: list[Any], split: str, seed: int = 0, test_fraction: float = TEST_FRACTION
) -> list[Any]:
    """The `split` part of a reproducible random train/test partition (order inside a part is kept).

    The same (len(items), seed, test_fraction) always gives the same partition; the two parts are disjoint
    and together cover every item.
    """
    split = _split_name(split)
    order = list(range(len(items)))
    random.Random(f"aicd-split-{seed}").shuffle(order)
    n_test = round(len(items) * test_fraction)
    test = set(order[:n_test])
    return [item for i, item in enumerate(items) if (i in test) == (split == "test")]


# ---------------------------------------------------------------- built-in benchmarks


def load_gsm8k(split: str = "train", *, data_dir: str | Path | None = None, seed: int = 0) -> list[Example]:
    """GSM8K from `gsm8k/{train,test}.jsonl`; ids `gsm8k/<split>/<line index>`."""
    split = _split_name(split)
    path = data_root(data_dir) / "gsm8k" / f"{split}.jsonl"
    return [
        sources.gsm8k_example(obj, f"gsm8k/{split}/{i}", f"{path}:{lineno}")
        for i, (lineno, obj) in enumerate(iter_json_objects(path))
    ]


def _reasoning_teacher_split(root: Path, key: str, items: list[Any], split: str, seed: int) -> list[Any]:
    """Items of `split` by reasoning-teacher's index file, or a seeded 70/30 split when it is absent."""
    path = root / "splits_reasoning_teacher" / "split" / f"{key}__default.json"
    if not path.is_file():
        return seeded_split(items, split, seed)
    spec = _read_json(path)
    indices = spec.get(split) if isinstance(spec, dict) else None
    if not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < len(items) for i in indices):
        raise DataError(f"{path}: field '{split}' should list indices below {len(items)}")
    return [items[i] for i in indices]


def _teacher_cots(root: Path, filename: str) -> list[Any]:
    path = root / "cot_llm_adapters_gpt35" / filename
    return _read_json_list(path) if path.is_file() else []


def load_svamp(split: str = "train", *, data_dir: str | Path | None = None, seed: int = 0) -> list[Example]:
    """SVAMP from `svamp/SVAMP.json` + GPT-3.5 teacher CoT (matched by ID) + reasoning-teacher 700/300."""
    split = _split_name(split)
    root = data_root(data_dir)
    path = root / "svamp" / "SVAMP.json"
    examples = [
        sources.svamp_example(obj, f"{path} record {i}") for i, obj in enumerate(_read_json_list(path))
    ]
    cot_file = root / "cot_llm_adapters_gpt35" / "svamp_1.json"
    by_id = {}
    for i, obj in enumerate(_teacher_cots(root, "svamp_1.json")):
        by_id[f"svamp/{sources.field(obj, 'ID', f'{cot_file} record {i}')}"] = (i, obj)
    for ex in examples:
        if ex.id in by_id:
            i, obj = by_id[ex.id]
            rationale = sources.llm_adapters_rationale(obj, ex.answer, f"{cot_file} record {i}")
            if rationale is not None:
                ex.rationales.append(rationale)
    return _reasoning_teacher_split(root, "svamp", examples, split, seed)


def load_multiarith(
    split: str = "train", *, data_dir: str | Path | None = None, seed: int = 0
) -> list[Example]:
    """MultiArith from `multiarith/MultiArith.json` + GPT-3.5 teacher CoT (matched by question) + 420/180."""
    split = _split_name(split)
    root = data_root(data_dir)
    path = root / "multiarith" / "MultiArith.json"
    examples = [
        sources.multiarith_example(obj, f"{path} record {i}") for i, obj in enumerate(_read_json_list(path))
    ]
    cot_file = root / "cot_llm_adapters_gpt35" / "multiarith_1.json"
    by_question = {}
    for i, obj in enumerate(_teacher_cots(root, "multiarith_1.json")):
        question = sources.field(obj, "question", f"{cot_file} record {i}", str)
        by_question[" ".join(question.split())] = (i, obj)
    for ex in examples:
        match = by_question.get(" ".join(ex.question.split()))
        if match is not None:
            rationale = sources.llm_adapters_rationale(match[1], ex.answer, f"{cot_file} record {match[0]}")
            if rationale is not None:
                ex.rationales.append(rationale)
    return _reasoning_teacher_split(root, "multiarith", examples, split, seed)


def load_strategyqa(
    split: str = "train", *, data_dir: str | Path | None = None, seed: int = 0
) -> list[Example]:
    """StrategyQA from `strategyqa/train.json` (train) and `dev.json` (test); facts are the gold rationale."""
    split = _split_name(split)
    path = data_root(data_dir) / "strategyqa" / ("train.json" if split == "train" else "dev.json")
    return [
        sources.strategyqa_example(obj, f"{path} record {i}") for i, obj in enumerate(_read_json_list(path))
    ]


BUILTIN_LOADERS: dict[str, Callable[..., list[Example]]] = {
    "gsm8k": load_gsm8k,
    "svamp": load_svamp,
    "multiarith": load_multiarith,
    "strategyqa": load_strategyqa,
}
_BUILTIN_INFO = [
    DatasetInfo(
        "gsm8k", "number", 4, "GSM8K grade-school math (Cobbe et al. 2021); gold solutions as rationales"
    ),
    DatasetInfo(
        "svamp", "number", 4, "SVAMP arithmetic word problems (Patel et al. 2021); GPT-3.5 teacher CoT"
    ),
    DatasetInfo(
        "multiarith", "number", 4, "MultiArith multi-step arithmetic (Roy & Roth 2015); GPT-3.5 teacher CoT"
    ),
    DatasetInfo(
        "strategyqa", "yesno", 6, "StrategyQA yes/no commonsense (Geva et al. 2021); facts as rationales"
    ),
]
for _info in _BUILTIN_INFO:
    register_dataset(_info, lambda split, seed, _f=BUILTIN_LOADERS[_info.name]: _f(split, seed=seed))

# registered here, not by an import side effect of its module: every process (API, workers, CLI) that imports
# the registry sees the complete list, whatever it imported before
register_dataset(
    DatasetInfo(
        name="arith",
        answer_kind="number",
        n_shots=4,
        description="synthetic 2-4 step +/- word problems with programmatic rationales (offline demo/tests)",
    ),
    synthetic.load_arith,
)


def _load_plugin(name: str) -> None:
    """Import the module of a self-registering dataset (e.g. `arith`) if it exists."""
    module = PLUGINS.get(name)
    if module and name not in DATASETS and importlib.util.find_spec(module) is not None:
        importlib.import_module(module)


def load_plugins() -> None:
    """Register every optional dataset whose module is present (used by listings)."""
    for name in PLUGINS:
        _load_plugin(name)


# ---------------------------------------------------------------- generic files and the hub

HUB_PARSERS: dict[str, tuple[str | None, Callable[[Mapping[str, Any], str, str], Example]]] = {
    # hub id → (config name, parser(row, id, where))
    "openai/gsm8k": ("main", sources.gsm8k_example),
    "gsm8k": ("main", sources.gsm8k_example),
}


def _answer(value: Any, where: str, name: str, kind: str | None) -> str:
    """A generic answer cell → "yes"/"no" or a normalised number (GSM8K-style "… #### 72" gives "72")."""
    if isinstance(value, str) and "####" in value:
        value = value.rsplit("####", 1)[1]
    if kind == "yesno" or (
        kind is None
        and (isinstance(value, bool) or str(value).strip().lower() in {"yes", "no", "true", "false"})
    ):
        return sources.normalize_yesno(value, where, name)
    return sources.normalize_number(value, where, name)


def _row_example(
    row: Mapping[str, Any],
    index: int,
    where: str,
    *,
    question: str,
    answer: str,
    rationale: str | None,
    id: str | None,
    answer_kind: str | None,
    prefix: str,
) -> Example:
    """One mapped row → Example; DataError names `where` and the missing / bad source field."""
    q = sources.field(row, question, where)
    if not isinstance(q, str) or not q.strip():
        raise DataError(f"{where}: field '{question}' should be a non-empty string")
    gold = _answer(sources.field(row, answer, where), where, answer, answer_kind)
    rationales = []
    if rationale is not None and row.get(rationale) not in (None, ""):
        texts = row[rationale]
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise DataError(f"{where}: field '{rationale}' should be a string or a list of strings")
        rationales = [Rationale(text=t.strip(), source="gold") for t in texts if t.strip()]
    ex_id = str(sources.field(row, id, where)) if id is not None else f"{prefix}/{index}"
    try:
        return Example(id=ex_id, question=q.strip(), answer=gold, rationales=rationales)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DataError(f"{where}: field '{'.'.join(map(str, first['loc']))}': {first['msg']}") from None


def _generic_rows(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) of a .jsonl / .json list / .csv file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return [(f"{path}:{lineno}", obj) for lineno, obj in iter_json_objects(path)]
    if suffix == ".json":
        return [(f"{path} record {i}", obj) for i, obj in enumerate(_read_json_list(path))]
    if suffix == ".csv":
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        try:
            with path.open(encoding="utf-8", newline="") as fh:
                # line numbers: the header is line 1, so data row i sits on line reader.line_num
                reader = csv.DictReader(fh)
                return [(f"{path}:{reader.line_num}", row) for row in reader]
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not valid UTF-8 ({exc.reason})") from None
        except csv.Error as exc:
            raise DataError(f"{path}: invalid CSV ({exc})") from None
    raise DataError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .json or .csv)")


def _hub_rows(
    name: str, split: str | None, seed: int, config: str | None
) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a Hugging Face hub dataset; a split the hub lacks is carved from its train split (seeded)."""
    try:
        from datasets import load_dataset

        dataset = load_dataset(name, config)
    except Exception as exc:  # offline, unknown id, missing config: one clear line
        raise DataError(f"hub dataset '{name}': could not load ({type(exc).__name__}: {exc})") from None
    available = list(dataset.keys())
    if split is None:
        chosen = [(s, dict(row), i) for s in available for i, row in enumerate(dataset[s])]
    else:
        wanted = [s for s in (split, *[k for k, v in SPLIT_ALIASES.items() if v == split]) if s in available]
        if wanted:
            chosen = [(wanted[0], dict(row), i) for i, row in enumerate(dataset[wanted[0]])]
        elif "train" in available:
            chosen = seeded_split(
                [("train", dict(row), i) for i, row in enumerate(dataset["train"])], split, seed
            )
        else:
            raise DataError(f"hub dataset '{name}': no split '{split}' (has: {', '.join(available)})")
    return [(f"{name}[{s}][{i}]", row) for s, row, i in chosen]


def load_generic(
    path: str | Path,
    *,
    question: str = "question",
    answer: str = "answer",
    rationale: str | None = None,
    id: str | None = None,
    answer_kind: AnswerKind | None = None,
    split: str | None = None,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
    hf_config: str | None = None,
) -> list[Example]:
    """Examples from any JSONL / JSON / CSV file or hub dataset (`hf:owner/name`) with a field mapping.

    `question` / `answer` / `rationale` / `id` name the source columns (rationale: a string or a list of
    strings, stored as gold rationales; without `id` the ids are `<file stem>/<row index>`). Answers become
    "yes"/"no" or normalised numbers (`answer_kind` forces one). `split=None` returns every row; "train" /
    "test" return a `seeded_split` part for files (which have no split) and the hub's own split when it
    exists. Any bad row raises DataError naming its line/record and the field, and nothing is returned.
    """
    text = str(path)
    if text.startswith("hf:"):
        name = text[3:]
        rows = _hub_rows(name, _split_name(split) if split else None, seed, hf_config)
        prefix = name.replace("/", "_")
    else:
        file = Path(path)
        rows = _generic_rows(file)
        if split is not None:
            rows = seeded_split(rows, split, seed, test_fraction)
        prefix = file.stem
    return [
        _row_example(
            row,
            i,
            where,
            question=question,
            answer=answer,
            rationale=rationale,
            id=id,
            answer_kind=answer_kind,
            prefix=prefix,
        )
        for i, (where, row) in enumerate(rows)
    ]


def load_hub(name: str, split: str = "train", *, seed: int = 0) -> list[Example]:
    """A hub dataset by id: known benchmarks (`openai/gsm8k`) use their raw-format parser, others the
    generic `question` / `answer` mapping. Needs network access (or a populated HF cache)."""
    name = name.removeprefix("hf:")
    split = _split_name(split)
    if name in HUB_PARSERS:
        config, parser = HUB_PARSERS[name]
        rows = _hub_rows(name, split, seed, config)
        return [
            parser(row, f"{name.split('/')[-1]}/{split}/{i}", where) for i, (where, row) in enumerate(rows)
        ]
    return load_generic(f"hf:{name}", split=split, seed=seed)


# ---------------------------------------------------------------- entry points


def _is_path_like(dataset: str) -> bool:
    return (
        Path(dataset).exists()
        or Path(dataset).suffix.lower() in {".jsonl", ".json", ".csv"}
        or dataset.startswith((".", "/", "~"))
    )


def load_examples(
    dataset: str,
    split: str = "train",
    *,
    limit: int | None = None,
    seed: int = 0,
    data_dir: str | Path | None = None,
) -> list[Example]:
    """Records of `dataset`: a registered name, a path, or a hub id.

    - registered name (`gsm8k`, `svamp`, `multiarith`, `strategyqa`, `arith`, …): that split;
    - a `.jsonl` file of Example records (read_examples): the whole file, whatever `split` (a file is one
      split); a folder holding `<split>.jsonl`: that file; a `.csv` / `.json` file: `load_generic` with
      the default `question` / `answer` fields, whole file;
    - a hub id (`openai/gsm8k`, `hf:owner/name`): `load_hub`.
    `limit` keeps the first N records; `seed` only matters where a split has to be drawn.
    """
    if limit is not None and limit <= 0:
        raise DataError(f"limit must be positive, got {limit}")
    name = dataset.strip() if isinstance(dataset, str) else dataset
    if not name:
        raise DataError("dataset: empty name")
    _load_plugin(name)
    if name in BUILTIN_LOADERS:
        examples = BUILTIN_LOADERS[name](split, data_dir=data_dir, seed=seed)
    elif name in _LOADERS:
        examples = _LOADERS[name](split, seed)
    elif _is_path_like(name):
        path = Path(name).expanduser()
        if path.is_dir():
            path = path / f"{split}.jsonl"
        if not path.exists():
            raise DataError(f"dataset '{dataset}': no such file ({path})")
        examples = read_examples(path) if path.suffix.lower() == ".jsonl" else load_generic(path)
    elif "/" in name and _HUB_ID.match(name) or name.startswith("hf:"):
        examples = load_hub(name, split, seed=seed)
    else:
        known = ", ".join(sorted(DATASETS))
        raise DataError(
            f"unknown dataset '{dataset}' (known: {known}; or a path to a .jsonl/.csv file, or a hub id)"
        )
    return examples[:limit] if limit is not None else examples


def split_size(dataset: str, split: str = "train", *, seed: int = 0) -> int | None:
    """How many examples `load_examples(dataset, split, seed=seed)` returns, or None where counting them would
    mean a download (hub ids) or there is nothing to count yet (a file not written yet, e.g. a sweep's
    annotation output). Each source is read once per process and version (data root / file stamp)."""
    name = dataset.strip() if isinstance(dataset, str) else dataset
    if not name:
        return None
    _load_plugin(name)
    if name in DATASETS:
        return _counted(name, split, seed, str(data_root()))
    if not _is_path_like(name):
        return None
    path = Path(name).expanduser()
    file = path / f"{split}.jsonl" if path.is_dir() else path
    if not file.is_file():
        return None
    stat = file.stat()
    return _counted(name, split, seed, f"{stat.st_mtime_ns}:{stat.st_size}")


@lru_cache(maxsize=256)
def _counted(dataset: str, split: str, seed: int, stamp: str) -> int:
    """`stamp` names the version of the source, so a changed file or data root is counted afresh."""
    return len(load_examples(dataset, split, seed=seed))


def infer_answer_kind(examples: Iterable[Example]) -> AnswerKind:
    """ "yesno" when every answer is yes/no, else "number"."""
    answers = [ex.answer for ex in examples]
    return "yesno" if answers and all(a in ("yes", "no") for a in answers) else "number"


def answer_kind_of(dataset: str, examples: list[Example] | None = None) -> AnswerKind:
    """The answer kind of a registered dataset, else inferred from `examples` (loaded when not given)."""
    _load_plugin(dataset)
    if dataset in DATASETS:
        return DATASETS[dataset].answer_kind
    return infer_answer_kind(examples if examples is not None else load_examples(dataset))


def dataset_info(dataset: str, examples: list[Example] | None = None) -> DatasetInfo:
    """Registered info, or one inferred for a file / hub dataset (n_shots 6 for yes/no, else 4)."""
    _load_plugin(dataset)
    if dataset in DATASETS:
        return DATASETS[dataset]
    kind = answer_kind_of(dataset, examples)
    return DatasetInfo(dataset, kind, 6 if kind == "yesno" else 4, f"user dataset {dataset}")
