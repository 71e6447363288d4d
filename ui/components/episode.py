"""An episode rendered as text with every token span shaded by its loss weight ω (escaped HTML)."""

from __future__ import annotations

import html
from typing import Any

STYLE = """
<style>
.aicd-episode {white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.85rem; line-height: 1.6;
  padding: 0.6rem; border: 1px solid rgba(127,127,127,0.3); border-radius: 0.4rem;}
.aicd-episode span {border-radius: 2px;}
.aicd-episode .k-prompt {opacity: 0.75;}
.aicd-legend span {display: inline-block; padding: 0 0.5rem; margin-right: 0.3rem; border-radius: 3px;
  font-family: ui-monospace, monospace; font-size: 0.8rem;}
</style>
"""


def shade(weight: float, max_weight: float) -> str:
    """Background colour for a weight: transparent at 0, full orange at the largest weight of the episode."""
    alpha = 0.0 if max_weight <= 0 else min(1.0, weight / max_weight)
    return f"rgba(255, 140, 0, {0.08 + 0.72 * alpha:.3f})" if weight > 0 else "transparent"


def episode_html(spans: list[dict[str, Any]]) -> str:
    """Each span as a <span> with its weight as background and a tooltip (shot, kind, ω)."""
    top = max((s["weight"] for s in spans), default=0.0)
    parts = []
    for s in spans:
        if s["kind"] in ("bos", "eos") and not s["text"]:
            continue
        text = s["text"] if s["kind"] not in ("bos", "eos") else f"⟨{s['kind']}⟩"
        title = f"shot {s['shot'] + 1} · {s['kind']} · ω={s['weight']:g} · {s['end'] - s['start']} tokens"
        parts.append(
            f'<span class="k-{html.escape(s["kind"])}" style="background:{shade(s["weight"], top)}" '
            f'title="{html.escape(title)}">{html.escape(text)}</span>'
        )
    return f'<div class="aicd-episode">{"".join(parts)}</div>'


def legend_html(weights: list[float]) -> str:
    top = max(weights, default=0.0)
    items = [
        f'<span style="background:{shade(w, top)}">ω{i + 1} = {w:.3g}</span>' for i, w in enumerate(weights)
    ]
    items.append(f'<span style="background:{shade(0.0, top)}; border:1px solid #aaa">prompt: ω = 0</span>')
    return f'<div class="aicd-legend">{"".join(items)}</div>'


def weight_by_shot(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tokens and total loss weight contributed by each shot (what the loss actually sees)."""
    rows: dict[int, dict[str, Any]] = {}
    for s in spans:
        n = s["end"] - s["start"]
        row = rows.setdefault(
            s["shot"], {"shot": s["shot"] + 1, "tokens": 0, "weighted tokens": 0, "weight": 0.0}
        )
        row["tokens"] += n
        if s["weight"] > 0:
            row["weighted tokens"] += n
            row["weight"] += s["weight"] * n
    return [rows[k] for k in sorted(rows)]
