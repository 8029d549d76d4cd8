"""Turn files, lists, built-in names and Hugging Face datasets into :class:`PromptSet` objects."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import TokendimError
from ..validation import check_optional_int
from .builtin import builtin, builtin_sets
from .promptset import PromptSet

#: File suffixes :func:`load_prompts` reads (lower case).
SUPPORTED_SUFFIXES = (".txt", ".jsonl", ".csv")

# Python's csv module refuses fields over 128 KiB by default; a long prompt is legitimate.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024


def _read_text(path: Path) -> str:
    """The whole file as text: UTF-8 (a leading BOM is dropped), line endings made ``\\n``."""
    try:
        # newline=None: \r\n and \r become \n, so a file saved on Windows hashes the same.
        with path.open(encoding="utf-8-sig", newline=None) as fh:
            return fh.read()
    except FileNotFoundError:
        raise TokendimError(f"Prompt file {str(path)!r} does not exist; check the path.") from None
    except IsADirectoryError:
        raise TokendimError(
            f"{str(path)!r} is a folder; give a .txt, .jsonl or .csv file."
        ) from None
    except UnicodeDecodeError as exc:
        raise TokendimError(
            f"Prompt file {str(path)!r} is not valid UTF-8 (byte {exc.start}); "
            "save it as UTF-8 and try again."
        ) from None
    except OSError as exc:
        raise TokendimError(
            f"Cannot read prompt file {str(path)!r}: {exc.strerror or exc}."
        ) from None


def _split_txt(content: str) -> list[str]:
    """Prompts of a .txt file: paragraphs when a blank line separates text, else lines."""
    lines = [line.rstrip() for line in content.split("\n")]
    # Leading and trailing blank lines never decide the mode nor make a prompt.
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    if "" not in lines:
        return lines
    prompts: list[str] = []
    current: list[str] = []
    for line in lines:
        if line:
            current.append(line)
        elif current:
            prompts.append("\n".join(current))
            current = []
    if current:
        prompts.append("\n".join(current))
    return prompts


def _missing_column(origin: str, column: str, found: Iterable[str], where: str) -> TokendimError:
    cols = ", ".join(repr(c) for c in found) or "none"
    return TokendimError(
        f"{origin} has no column {column!r} {where}; columns found: {cols}. "
        "Pass text_column= (or label_column=) with one of them."
    )


def _parse_jsonl(
    content: str, origin: str, text_column: str, label_column: str | None
) -> tuple[list[str], list[str] | None]:
    texts: list[str] = []
    labels: list[str] = []
    for lineno, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TokendimError(
                f"{origin} line {lineno} is not valid JSON ({exc.msg}); a .jsonl file "
                "holds one JSON object per line."
            ) from None
        if isinstance(record, str) and label_column is None:
            # A bare JSON string per line is a prompt too.
            texts.append(record)
            continue
        if not isinstance(record, dict):
            raise TokendimError(
                f"{origin} line {lineno} holds a JSON {type(record).__name__}, not an "
                f'object; write one object per line, e.g. {{"{text_column}": "..."}}.'
            )
        for column in (text_column, label_column):
            if column is not None and column not in record:
                raise _missing_column(origin, column, record, f"on line {lineno}")
        value = record[text_column]
        if not isinstance(value, str):
            raise TokendimError(
                f"{origin} line {lineno}: column {text_column!r} holds a "
                f"{type(value).__name__}, not text."
            )
        texts.append(value)
        if label_column is not None:
            labels.append(str(record[label_column]))
    return texts, (labels if label_column is not None else None)


def _parse_csv(
    content: str, origin: str, text_column: str, label_column: str | None
) -> tuple[list[str], list[str] | None]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    try:
        # newline="": the csv module handles line breaks itself (quoted fields may span lines).
        reader = csv.DictReader(io.StringIO(content, newline=""))
        fields = list(reader.fieldnames or [])
        for column in (text_column, label_column):
            if column is not None and column not in fields:
                raise _missing_column(origin, column, fields, "in its header row")
        records = list(reader)
    except csv.Error as exc:
        raise TokendimError(f"{origin} is not readable CSV: {exc}.") from None
    texts = [r[text_column] or "" for r in records]
    labels = [r[label_column] or "" for r in records] if label_column is not None else None
    return texts, labels


def load_prompts(
    path: str | os.PathLike[str],
    *,
    text_column: str = "text",
    label_column: str | None = None,
    name: str | None = None,
) -> PromptSet:
    """Read a prompt set from a .txt, .jsonl or .csv file (UTF-8).

    Rules per format:

    * ``.txt``: if a blank (empty or whitespace-only) line stands between two lines of text,
      prompts are *paragraphs*: runs of non-blank lines separated by one or more blank lines,
      joined with ``\\n`` (so multi-line code works). Otherwise every line is one prompt.
      Trailing whitespace is removed from each line; indentation is kept.
    * ``.jsonl``: one JSON object per line, the prompt in ``text_column``; a line may also be
      a bare JSON string. Empty lines are skipped.
    * ``.csv``: a header row naming the columns, the prompt in ``text_column``; quoted fields
      may span lines.

    Line endings are read as ``\\n`` whatever the platform wrote, and a UTF-8 byte order mark
    is ignored, so the same file gives the same :attr:`PromptSet.hash` everywhere.

    Parameters
    ----------
    path : str or path-like
        The file; its suffix picks the format.
    text_column : str, default "text"
        Column (JSON key or CSV header) holding the prompt; ignored for .txt.
    label_column : str, optional
        Column holding a per-prompt label (e.g. a genre); ignored for .txt.
    name : str, optional
        Name of the set; by default the file name without its suffix.

    Returns
    -------
    PromptSet

    Raises
    ------
    TokendimError
        Missing or unreadable file, unknown suffix, invalid JSON or CSV, a missing column
        (the columns found are listed), no prompt at all, or blank prompts (their indices
        are listed).

    Examples
    --------
    >>> ps = load_prompts("my_prompts.jsonl", text_column="prompt")  # doctest: +SKIP
    """
    p = Path(path).expanduser()
    fmt = p.suffix.lower().lstrip(".")
    if f".{fmt}" not in SUPPORTED_SUFFIXES:
        raise TokendimError(
            f"Cannot read prompts from {str(p)!r}: unknown file type {p.suffix or '(none)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}."
        )
    return parse_prompts(
        _read_text(p),
        fmt,
        text_column=text_column,
        label_column=label_column,
        name=name or p.stem or "prompts",
        origin=f"Prompt file {str(p)!r}",
        source=str(p),
    )


def parse_prompts(
    content: str,
    format: str = "txt",
    *,
    text_column: str = "text",
    label_column: str | None = None,
    name: str = "pasted",
    origin: str | None = None,
    source: str = "in-memory",
) -> PromptSet:
    """Parse prompts from the text of a .txt, .jsonl or .csv file (e.g. pasted or uploaded).

    Same rules as :func:`load_prompts`, which reads the file and calls this.

    Parameters
    ----------
    content : str
        The file's text. ``\\r\\n`` and ``\\r`` line endings are read as ``\\n``.
    format : {"txt", "jsonl", "csv"}, default "txt"
        How to split ``content`` into prompts.
    text_column, label_column : str
        As in :func:`load_prompts`.
    name : str, default "pasted"
        Name of the set.
    origin : str, optional
        How error messages refer to the content (``"Prompt file 'x.csv'"``).
    source : str, default "in-memory"
        Stored as :attr:`PromptSet.source`.

    Returns
    -------
    PromptSet

    Examples
    --------
    >>> parse_prompts("first prompt here\\nsecond prompt here").texts
    ('first prompt here', 'second prompt here')
    >>> parse_prompts('{"q": "Why is the sky blue?"}', "jsonl", text_column="q").texts
    ('Why is the sky blue?',)
    """
    fmt = format.lower().lstrip(".")
    origin = origin or f"The {fmt} text"
    content = content.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    labels: list[str] | None = None
    if fmt == "txt":
        texts = _split_txt(content)
    elif fmt == "jsonl":
        texts, labels = _parse_jsonl(content, origin, text_column, label_column)
    elif fmt == "csv":
        texts, labels = _parse_csv(content, origin, text_column, label_column)
    else:
        raise TokendimError(f"Unknown prompt format {format!r}; use 'txt', 'jsonl' or 'csv'.")
    if not texts:
        raise TokendimError(f"{origin} holds no prompt; add at least one.")
    return PromptSet(
        name=name,
        texts=tuple(texts),
        labels=None if labels is None else tuple(labels),
        source=source,
    )


def from_hf_dataset(
    name: str,
    split: str = "train",
    text_column: str = "text",
    n: int | None = None,
    seed: int = 0,
    *,
    config: str | None = None,
) -> PromptSet:
    """Take prompts from a Hugging Face dataset (needs the optional ``datasets`` package).

    Rows whose text is empty or whitespace only are skipped (many corpora, e.g. wikitext,
    have them). With ``n``, the rows are shuffled with ``seed`` first and the first ``n``
    non-blank ones are kept, so the sample is random yet reproducible. Downloading needs
    network access (or a dataset already in the local Hugging Face cache).

    Parameters
    ----------
    name : str
        Dataset id on the hub (``"wikitext"``) or a local dataset path.
    split : str, default "train"
        Split to read.
    text_column : str, default "text"
        Column holding the text.
    n : int, optional
        Number of prompts to keep; all non-blank rows when None.
    seed : int, default 0
        Shuffle seed used when ``n`` is given.
    config : str, optional
        Dataset configuration (``"wikitext-2-raw-v1"``).

    Returns
    -------
    PromptSet
        Named ``"<name>[/<config>]:<split>"``.

    Raises
    ------
    TokendimError
        ``datasets`` is not installed (the pip command is given), the dataset cannot be
        loaded, the column is missing (columns are listed), or no non-blank row is left.

    Examples
    --------
    >>> ps = from_hf_dataset("wikitext", config="wikitext-2-raw-v1", n=200)  # doctest: +SKIP
    """
    try:
        import datasets
    except ImportError:
        raise TokendimError(
            "Reading a Hugging Face dataset needs the optional 'datasets' package: "
            "pip install 'tokendim-widgets[datasets]' (or pip install datasets)."
        ) from None
    n = check_optional_int(n, "n")
    try:
        ds: Any = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # network, unknown id, unknown split: all user-fixable
        raise TokendimError(
            f"Could not load dataset {name!r} (config={config!r}, split={split!r}): {exc}"
        ) from exc
    columns = list(getattr(ds, "column_names", None) or [])
    if text_column not in columns:
        cols = ", ".join(repr(c) for c in columns) or "none"
        raise TokendimError(
            f"Dataset {name!r} has no column {text_column!r}; columns: {cols}. "
            "Pass text_column= with one of them."
        )
    if n is not None:
        ds = ds.shuffle(seed=seed)
    texts: list[str] = []
    for value in ds[text_column] if n is None else _iter_column(ds, text_column):
        if isinstance(value, str) and value.strip():
            texts.append(value)
            if n is not None and len(texts) == n:
                break
    if not texts:
        raise TokendimError(
            f"Dataset {name!r} split {split!r} has no non-blank text in column {text_column!r}."
        )
    label = name + (f"/{config}" if config else "") + f":{split}"
    return PromptSet(name=label, texts=tuple(texts), source=f"hf:{label}")


def _iter_column(ds: Any, column: str) -> Iterable[Any]:
    # Row by row, so that taking n prompts does not materialise a huge column.
    for row in ds:
        yield row[column]


def as_prompt_set(
    obj: PromptSet | str | os.PathLike[str] | Iterable[str],
    *,
    name: str | None = None,
    text_column: str = "text",
) -> PromptSet:
    """Coerce anything that names or holds prompts into a :class:`PromptSet`.

    Parameters
    ----------
    obj : PromptSet, str, path-like or iterable of str
        * a PromptSet: returned as is (renamed when ``name`` is given);
        * a str naming a built-in set (see :func:`builtin_sets`);
        * a str or path to a .txt, .jsonl or .csv file (see :func:`load_prompts`);
        * a list, tuple or other iterable of prompt strings. A single prompt must be
          wrapped in a list: a bare str is read as a set name or a path.
    name : str, optional
        Name of the result; defaults to the built-in name, the file stem, or ``"custom"``.
    text_column : str, default "text"
        Column holding the prompt in .jsonl and .csv files.

    Returns
    -------
    PromptSet

    Raises
    ------
    TokendimError
        For anything that is neither (the built-in names are listed), and for every error
        :func:`load_prompts` and :class:`PromptSet` raise.

    Examples
    --------
    >>> as_prompt_set(["The sky is blue today.", "print('hi')"]).name
    'custom'
    >>> as_prompt_set("code").genre
    'code'
    """
    if isinstance(obj, PromptSet):
        return obj if name is None else obj.with_name(name)
    if isinstance(obj, str):
        if obj.strip().lower() in builtin_sets():
            ps = builtin(obj)
            return ps if name is None else ps.with_name(name)
        if Path(obj).expanduser().suffix.lower() in SUPPORTED_SUFFIXES or os.path.exists(obj):
            return load_prompts(obj, text_column=text_column, name=name)
        raise TokendimError(
            f"{obj!r} is neither a built-in prompt set ({', '.join(builtin_sets())}) nor a "
            f"prompt file ({', '.join(SUPPORTED_SUFFIXES)}). To use it as a single prompt, "
            "pass a list: [text]."
        )
    if isinstance(obj, os.PathLike):
        return load_prompts(obj, text_column=text_column, name=name)
    if isinstance(obj, bytes | bytearray) or not isinstance(obj, Iterable):
        raise TokendimError(
            f"Cannot make a prompt set from a {type(obj).__name__}; give a list of str, a "
            "built-in set name, a file path or a PromptSet."
        )
    return PromptSet(name=name or "custom", texts=tuple(obj), source="in-memory")
