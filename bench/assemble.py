"""Concatenate the per-area results in bench/results/*.md into bench/RESULTS.md (with the summary on top)."""

from pathlib import Path

HERE = Path(__file__).parent
ORDER = ["training", "training-toy", "training-gpu", "eval", "annotate", "api", "demo"]


def main() -> None:
    parts = [(HERE / "SUMMARY.md").read_text(encoding="utf-8").rstrip()]
    files = sorted(
        (HERE / "results").glob("*.md"),
        key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem),
    )
    for path in files:
        parts.append(path.read_text(encoding="utf-8").rstrip())
    (HERE / "RESULTS.md").write_text("\n\n---\n\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
