"""LaTeX text and booktabs tables from display strings: the toolkit of the tables, the report
and the stages' tables (baselines, precision).

    from memcap.analysis.latex import latex_boxed, latex_empty_note, latex_escape, latex_tabular
    latex_escape("a_b 50%")                       # 'a\\_b 50\\%'
    tex = latex_boxed(latex_tabular(frame, "llr", groups=frame["Model"]))
    note = latex_empty_note("No records.")        # stands where a table has nothing to show

Every cell is escaped (data strings hold '_', '%', '&' ...); characters pdflatex lacks fall
back to their ASCII look-alike, and a leading minus of a number is typeset as math minus.
The fragments need the booktabs, adjustbox and longtable packages.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "±": r"$\pm$",
    "–": "--",
    "—": "---",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
    "−": "$-$",
}


def latex_escape(text) -> str:
    """Make any data string safe for LaTeX text mode (model names hold '_', '.', '/')."""
    out = []
    for char in str(text):
        if char in _LATEX_SPECIALS:
            out.append(_LATEX_SPECIALS[char])
        elif ord(char) < 128:
            out.append(char)
        else:  # pdflatex lacks most Unicode glyphs: fall back to the ASCII look-alike
            out.append(unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode() or "?")
    return "".join(out)


def cell_to_latex(text) -> str:
    """Escape a table cell and typeset a leading minus of a number as math minus."""
    return re.sub(r"(?<![\w.])-(?=\d)", "$-$", latex_escape(text))


def latex_tabular(
    frame: pd.DataFrame,
    align: str,
    env: str = "tabular",
    groups: pd.Series | None = None,
    header: list[str] | None = None,
) -> str:
    """A booktabs table of display strings, with a rule wherever `groups` changes value."""
    header = list(frame.columns) if header is None else header
    lines = [
        rf"\begin{{{env}}}{{{align}}}",
        r"\toprule",
        " & ".join(rf"\textbf{{{latex_escape(c)}}}" if c else "" for c in header) + r" \\",
        r"\midrule",
    ]
    if env == "longtable":  # repeat the header on every page
        lines[4:4] = [r"\endhead", r"\bottomrule", r"\endfoot"]
    group_values = list(groups) if groups is not None else [None] * len(frame)
    for i, (row, group) in enumerate(zip(frame.itertuples(index=False), group_values, strict=True)):
        if i and group != group_values[i - 1]:
            lines.append(r"\midrule")
        lines.append(" & ".join(cell_to_latex(v) for v in row) + r" \\")
    if env != "longtable":
        lines.append(r"\bottomrule")
    lines.append(rf"\end{{{env}}}")
    return "\n".join(lines)


def latex_boxed(tabular: str) -> str:
    """A tabular scaled down to the text width where it is wider (adjustbox)."""
    return "\\begin{adjustbox}{max width=\\linewidth}\n" + tabular + "\n\\end{adjustbox}"


def latex_empty_note(what: str) -> str:
    """The one-line note that stands where a table has nothing to show."""
    return rf"\par\emph{{{latex_escape(what)}}}\par"
