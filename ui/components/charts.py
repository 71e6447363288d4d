"""Plotly figures of the workbench: ω per shot, training curves, accuracy vs shots (Fig. 2) and vs ω (Fig. 1)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def omega_bars(weights: list[float], title: str = "ω per shot") -> go.Figure:
    shots = [f"shot {i + 1}" for i in range(len(weights))]
    top = max(weights, default=1.0) or 1.0
    fig = go.Figure(
        go.Bar(
            x=shots,
            y=weights,
            text=[f"{w:.3g}" for w in weights],
            textposition="outside",
            marker_color=[f"rgba(255,140,0,{0.25 + 0.75 * w / top:.3f})" for w in weights],
        )
    )
    fig.update_layout(
        title=title,
        yaxis_title="ω (loss weight)",
        xaxis_title="shot in the episode",
        height=320,
        margin={"t": 50, "b": 40, "l": 50, "r": 20},
        yaxis_range=[0, top * 1.2],
    )
    return fig


def shot_mass(rows: list[dict[str, Any]]) -> go.Figure:
    df = pd.DataFrame(rows)
    fig = px.bar(
        df,
        x="shot",
        y="weight",
        text_auto=".3g",
        hover_data=["tokens", "weighted tokens"],
        title="share of the loss per shot (ω × target tokens)",
    )
    fig.update_layout(height=280, margin={"t": 50, "b": 40, "l": 50, "r": 20}, xaxis={"dtick": 1})
    return fig


def training_curves(metrics: list[dict[str, Any]]) -> go.Figure | None:
    if not metrics:
        return None
    df = pd.DataFrame(
        [
            {
                "step": m["step"],
                "loss": m.get("loss"),
                "lr": m.get("lr"),
                **{k: v for k, v in (m.get("values") or {}).items() if isinstance(v, int | float)},
            }
            for m in metrics
        ]
    )
    fig = go.Figure()
    if df["loss"].notna().any():
        fig.add_trace(
            go.Scatter(x=df["step"], y=df["loss"], mode="lines+markers", name="loss", marker={"size": 4})
        )
    if "lr" in df and df["lr"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=df["step"], y=df["lr"], mode="lines", name="learning rate", yaxis="y2", line={"dash": "dot"}
            )
        )
    fig.update_layout(
        title="training loss",
        xaxis_title="optimizer step",
        yaxis_title="loss",
        yaxis2={"title": "lr", "overlaying": "y", "side": "right", "showgrid": False},
        height=340,
        margin={"t": 50, "b": 40, "l": 50, "r": 50},
        legend={"orientation": "h"},
    )
    return fig


def accuracy_curve(metrics: list[dict[str, Any]]) -> go.Figure | None:
    """Accuracy measured during training (`eval_every`) against the optimizer step; None when not measured."""
    points = [
        (m["step"], v)
        for m in metrics
        if isinstance(v := (m.get("values") or {}).get("eval_accuracy"), int | float)
    ]
    if not points:
        return None
    last = (next(m for m in reversed(metrics) if "eval_accuracy" in (m.get("values") or {})))["values"]
    where = "held-out items" if last.get("eval_held_out", True) else "training questions (no held-out split)"
    shots = last.get("eval_shots", 0)
    fig = go.Figure(
        go.Scatter(
            x=[s for s, _ in points],
            y=[100 * a for _, a in points],
            mode="lines+markers",
            name="accuracy",
            marker={"size": 6},
        )
    )
    fig.update_layout(
        title=f"accuracy during training ({last.get('eval_n', '?')} {where}, {shots}-shot)",
        xaxis_title="optimizer step",
        yaxis_title="accuracy (%)",
        yaxis={"range": [0, 100]},
        height=340,
        margin={"t": 50, "b": 40, "l": 50, "r": 30},
    )
    return fig


def accuracy_by_shots(
    summary: pd.DataFrame,
    color: str = "objective",
    title: str | None = None,
    colors: dict[str, str] | None = None,
) -> go.Figure:
    """Fig. 2: mean accuracy (± std over training runs) at 0..k shots, one line per objective; `colors` maps
    a label to its colour (the served registry's, `GET /objectives`)."""
    fig = px.line(
        summary.sort_values("shots"),
        x="shots",
        y="mean",
        error_y="std",
        color=color,
        markers=True,
        color_discrete_map=colors or {},
        facet_col="dataset" if summary["dataset"].nunique() > 1 else None,
        title=title or "accuracy vs number of in-context shots",
    )
    fig.update_layout(yaxis_title="accuracy (%)", height=380, margin={"t": 60, "b": 40, "l": 50, "r": 20})
    fig.update_xaxes(dtick=1)
    return fig


def accuracy_by_omega(summary: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Fig. 1: mean accuracy (± std) against ω, one line per dataset."""
    fig = px.line(
        summary.sort_values("omega"),
        x="omega",
        y="mean",
        error_y="std",
        color="dataset",
        markers=True,
        title=title or "accuracy vs ω (weight of the earlier shots)",
    )
    fig.update_layout(
        xaxis_title="ω", yaxis_title="accuracy (%)", height=380, margin={"t": 60, "b": 40, "l": 50, "r": 20}
    )
    return fig


def progress_bars(rows: list[dict[str, Any]], title: str) -> go.Figure:
    df = pd.DataFrame(rows)
    fig = px.bar(df, x="count", y="stage", orientation="h", text="count", title=title)
    fig.update_layout(
        height=60 + 40 * len(df),
        margin={"t": 40, "b": 30, "l": 10, "r": 20},
        yaxis={"categoryorder": "array", "categoryarray": list(df["stage"])[::-1]},
    )
    return fig


# -- several runs overlaid (Runs page) ---------------------------------------------------------------------


def smooth(values: list[float], weight: float) -> list[float]:
    """TensorBoard's exponential moving average with its start-up bias removed (weight 0 = raw values)."""
    if weight <= 0:
        return list(values)
    out, last, norm = [], 0.0, 0.0
    for v in values:
        last = weight * last + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(last / norm)
    return out


def loss_unit(config: dict[str, Any]) -> str:
    """What a run's logged loss is: Eq. 1 summed over an episode's weighted target tokens, or per token."""
    return "per token" if config.get("reduction") == "token" else "per episode (sum)"


def overlay_curves(
    series: dict[str, list[tuple[int, float]]],
    *,
    title: str,
    y_title: str,
    smoothing: float = 0.0,
    log_y: bool = False,
) -> go.Figure:
    """One line per run (label → (step, value) points), smoothed for reading, raw points faint behind."""
    fig = go.Figure()
    palette = px.colors.qualitative.D3
    for i, (label, points) in enumerate(series.items()):
        if not points:
            continue
        steps, values = zip(*sorted(points), strict=True)
        color = palette[i % len(palette)]
        if smoothing > 0:
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=values,
                    mode="lines",
                    line={"color": color, "width": 1},
                    opacity=0.25,
                    showlegend=False,
                    hoverinfo="skip",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=smooth(list(values), smoothing),
                mode="lines+markers",
                name=label,
                line={"color": color},
                marker={"size": 4, "symbol": i % 12},
            )
        )
    fig.update_layout(
        title=title,
        xaxis_title="optimizer step",
        yaxis_title=y_title,
        yaxis_type="log" if log_y else "linear",
        height=380,
        margin={"t": 50, "b": 40, "l": 50, "r": 20},
        legend={"orientation": "h"},
    )
    return fig


def differing_columns(table: pd.DataFrame) -> list[str]:
    """The columns whose values are not all equal (what distinguishes the selected runs)."""
    return [c for c in table.columns if table[c].astype(str).nunique(dropna=False) > 1]
