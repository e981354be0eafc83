"""A griffe extension for the API reference: reStructuredText markup in docstrings, as Markdown.

numlstm's docstrings follow the numpy style and mark cross-references with Sphinx roles
(:func:`use_backend`, :class:`~numlstm.errors.ModelFileError`) and literal blocks with a
trailing ``::``. The API reference renders docstrings as Markdown, which would print both
verbatim. This extension rewrites, in the text of every docstring it loads:

* a role into inline code of its target (``~`` keeps only the last dotted part, as Sphinx
  does); the targets are often relative names, so they are not turned into links;
* a ``::`` that ends a line into ``:`` (the indented block after it already reads as a
  Markdown code block), and a line that is only ``::`` into nothing;
* a parameter entry that documents several names at once (``h0, c0 : array (B, H)``) into one
  entry per name with the same text: griffe gives every name of such an entry the signature
  default of the first, which would show wrong defaults.

mkdocs.yml loads it through the mkdocstrings Python handler's ``extensions`` option.
"""

from __future__ import annotations

import re

import griffe

SPHINX_ROLE = re.compile(r":(?:func|meth|class|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
LITERAL_MARKER = re.compile(r"::[ \t]*$", re.MULTILINE)
SECTION_UNDERLINE = re.compile(r"-{3,}")
PARAMETER_SECTIONS = ("Parameters", "Other Parameters")
GROUPED_ENTRY = re.compile(r"(\w+(?:\s*,\s*\w+)+)\s*:\s*(.*)")


def rst_to_markdown(text: str) -> str:
    """``text`` with its Sphinx roles and literal-block markers rewritten as Markdown."""
    def inline_code(match: re.Match) -> str:
        short, target = match.groups()
        return f"`{target.rsplit('.', 1)[-1] if short else target}`"

    text = SPHINX_ROLE.sub(inline_code, text)
    text = LITERAL_MARKER.sub(lambda match: "" if _alone(match) else ":", text)
    return split_grouped_parameters(text)


def split_grouped_parameters(text: str) -> str:
    """``text`` with every entry ``a, b : annotation`` of a numpy-style parameters section
    written as ``a : annotation`` and ``b : annotation``, each followed by the entry's
    description."""
    lines = text.split("\n")
    result: list[str] = []
    in_parameters = False
    index = 0
    while index < len(lines):
        line = lines[index]
        if index + 1 < len(lines) and line.strip() and SECTION_UNDERLINE.fullmatch(
                lines[index + 1].strip()):
            in_parameters = line.strip() in PARAMETER_SECTIONS
            result += [line, lines[index + 1]]
            index += 2
            continue
        entry = GROUPED_ENTRY.fullmatch(line) if in_parameters else None
        if entry is None:
            result.append(line)
            index += 1
            continue
        # The description: the indented (or blank) lines up to the next entry or section.
        end = index + 1
        while end < len(lines) and (not lines[end].strip() or lines[end][0].isspace()):
            end += 1
        body_end = end          # blank lines after the description stay after the last copy
        while body_end > index + 1 and not lines[body_end - 1].strip():
            body_end -= 1
        names, annotation = entry.groups()
        for name in names.split(","):
            result += [f"{name.strip()} : {annotation}"] + lines[index + 1:body_end]
        result += lines[body_end:end]
        index = end
    return "\n".join(result)


def _alone(match: re.Match) -> bool:
    """Whether the ``::`` matched is the only thing on its line."""
    line_start = match.string.rfind("\n", 0, match.start()) + 1
    return not match.string[line_start:match.start()].strip()


class RestructuredTextToMarkdown(griffe.Extension):
    """Applies :func:`rst_to_markdown` to every docstring as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
