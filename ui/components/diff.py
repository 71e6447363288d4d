"""Word-level differences between two chains, rendered as escaped HTML with the differing words marked."""

from __future__ import annotations

import difflib
import html
import re

TOKEN = re.compile(r"\s+|[^\s]+")

STYLE = """
<style>
.aicd-chain {white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 0.86rem; line-height: 1.45;
  padding: 0.5rem 0.6rem; border-radius: 0.4rem; background: rgba(127,127,127,0.06);}
.aicd-chain mark.d {background: rgba(255, 196, 0, 0.45); color: inherit; padding: 0 1px; border-radius: 2px;}
.aicd-chain .empty {opacity: 0.6; font-style: italic;}
</style>
"""


def tokens(text: str) -> list[str]:
    """Words and the whitespace between them, so joining the tokens gives the text back."""
    return TOKEN.findall(text)


def changed_mask(text: str, other: str) -> list[tuple[str, bool]]:
    """`text` as (token, differs) pairs: a word differs when it is not part of a match with `other`."""
    a, b = tokens(text), tokens(other)
    words_a = [t for t in a if not t.isspace()]
    words_b = [t for t in b if not t.isspace()]
    keep = [False] * len(words_a)
    matcher = difflib.SequenceMatcher(None, words_a, words_b, autojunk=False)
    for block in matcher.get_matching_blocks():
        for i in range(block.a, block.a + block.size):
            keep[i] = True
    out, w = [], 0
    for tok in a:
        if tok.isspace():
            out.append((tok, False))
        else:
            out.append((tok, not keep[w]))
            w += 1
    return out


def diff_html(text: str | None, other: str | None) -> str:
    """`text` as HTML with the words it does not share with `other` highlighted (everything escaped)."""
    if text is None:
        return '<div class="aicd-chain"><span class="empty">(no chain for this question)</span></div>'
    if not text.strip():
        return '<div class="aicd-chain"><span class="empty">(empty generation)</span></div>'
    parts: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        trailing = []
        while pending and pending[-1].isspace():  # whitespace after a changed run stays unmarked
            trailing.insert(0, pending.pop())
        if pending:
            parts.append('<mark class="d">' + "".join(pending) + "</mark>")
            pending.clear()
        parts.extend(trailing)

    for tok, differs in changed_mask(text, other or "") if other is not None else [(text, False)]:
        if differs:
            pending.append(html.escape(tok))
        elif tok.isspace() and pending:
            pending.append(html.escape(tok))  # keep a run of changed words in one mark
        else:
            flush()
            parts.append(html.escape(tok))
    flush()
    return f'<div class="aicd-chain">{"".join(parts)}</div>'


def similarity(a: str | None, b: str | None) -> float:
    """Share of words two chains have in common (1.0 = same words in the same order)."""
    if not a and not b:
        return 1.0
    wa, wb = (a or "").split(), (b or "").split()
    return difflib.SequenceMatcher(None, wa, wb, autojunk=False).ratio()
