"""The bounty's stage-1 accuracy task, ``wikitext_tokens``: our implementation of the ``wikitext`` task of
baberabb/lm-evaluation-harness, branch ``wikitext-tokens`` (commit cb306de1, 2024-10-09), which the stage-1
runner installed into containers that had no ``lm_eval`` (docs/accuracy.md has the provenance).

- **Lines**: wikitext-2-raw-v1's test split, one row per line of the original file (blank lines included),
  from the Hugging Face hub by default or from a local copy (:func:`load_lines`).
- **Documents**: every line joined with ``"\\n\\n"``, tokenized by the chunk tokenizer (Llama-2-7b's by
  default) without special tokens, cut into consecutive chunks of 2047 token ids, each chunk decoded by
  the tokenizer's ``batch_decode`` with its defaults (:func:`chunk_documents`).
- **Counts**: a document's words are the ids the chunk tokenizer gives its text when called with default
  arguments (so Llama-2's BOS is counted), its bytes the length of its UTF-8 text; lm-eval aggregates
  word_perplexity from (loglikelihood, words), byte_perplexity and bits_per_byte from (loglikelihood, bytes).

lm-eval runs it from a folder :func:`render_task` writes (``wikitext_tokens.yaml`` and the module of its
functions), the same folder for the plugin and for ``lm_eval --include_path``.
"""
from __future__ import annotations

import hashlib
import importlib.resources
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pytest_inferencemax.errors import AccuracyError, import_extra
from pytest_inferencemax.gate.hub_access import HubResource
from pytest_inferencemax.gate.local_documents import builtin_documents, parse_builtin

TASK_NAME = "wikitext_tokens"
CHUNK_SIZE = 2047  # the branch's chunk length, in chunk-tokenizer ids
HUB_TOKENIZER = "meta-llama/Llama-2-7b-hf"  # gated: a token whose account accepted Meta's licence
# The hub's `wikitext` (the branch's dataset_path) is this repository since the hub's canonical datasets moved
# under their authors' names; wikitext-2-raw-v1's test split is one parquet file there.
HUB_DATASET = "Salesforce/wikitext"
HUB_CONFIG = "wikitext-2-raw-v1"
HUB_SPLIT = "test"
TOKENIZER_OPTION = "--accuracy-chunk-tokenizer PATH"
DATASET_OPTION = "--accuracy-wikitext PATH"
_FILES = ("wikitext_tokens.yaml", "wikitext_tokens.py")  # package data: the task and its functions


class ChunkTokenizer(Protocol):
    """What the chunking needs of a Hugging Face tokenizer."""

    def __call__(self, text: str, add_special_tokens: bool = ...) -> Any: ...

    def batch_decode(self, sequences: list[list[int]]) -> list[str]: ...


@dataclass(frozen=True)
class Document:
    """One chunk of the task: its decoded text and the counts lm-eval's metrics divide by."""

    text: str
    words: int  # ids of the chunk tokenizer's default call on ``text`` (BOS included where it adds one)
    bytes: int  # UTF-8 bytes of ``text``


@dataclass(frozen=True)
class Sources:
    """Where the task's lines and its chunk tokenizer come from."""

    dataset: str = "hub"  # "hub", "builtin" / "builtin:N", or a local copy (a path)
    tokenizer: str = HUB_TOKENIZER  # a hub id, or a local tokenizer folder

    @classmethod
    def resolve(cls, dataset: str | None, tokenizer: str | None) -> Sources:
        """The sources with defaults filled in and local paths made absolute (``~`` expanded)."""
        ds = dataset or "hub"
        if ds != "hub" and parse_builtin(ds) is None:
            ds = str(Path(ds).expanduser().resolve())
        tok = tokenizer or HUB_TOKENIZER
        if _looks_local(tok):
            tok = str(Path(tok).expanduser().resolve())
        return cls(ds, tok)

    def hub_resources(self) -> list[HubResource]:
        """What of the sources must come from the Hugging Face hub (checked before any server starts)."""
        found = []
        if not _looks_local(self.tokenizer):
            found.append(HubResource(self.tokenizer, "model", "tokenizer_config.json", "chunk tokenizer",
                                     TOKENIZER_OPTION))
        if self.dataset == "hub":
            found.append(HubResource(HUB_DATASET, "dataset", f"{HUB_CONFIG}/{HUB_SPLIT}-00000-of-00001.parquet",
                                     f"dataset ({HUB_CONFIG}, {HUB_SPLIT} split)", DATASET_OPTION))
        return found

    def local_problems(self) -> list[str]:
        """Local copies named but not there."""
        problems = []
        if _looks_local(self.tokenizer) and not Path(self.tokenizer).is_dir():
            problems.append(f"the chunk tokenizer folder {self.tokenizer} does not exist: give {TOKENIZER_OPTION} "
                            "a folder with the tokenizer's files (tokenizer.json or tokenizer.model, "
                            "tokenizer_config.json)")
        if self.dataset != "hub" and parse_builtin(self.dataset) is None and not Path(self.dataset).exists():
            problems.append(f"the wikitext copy {self.dataset} does not exist: give {DATASET_OPTION} a .parquet, "
                            ".jsonl or .txt file, or a folder, of wikitext-2-raw-v1's test split (docs/accuracy.md)")
        return problems


def _looks_local(name: str) -> bool:
    """A path (absolute, ``~``, ``./``, ``../``, or an existing folder) rather than a hub id."""
    return name.startswith(("/", "~", "./", "../")) or Path(name).expanduser().is_dir()


def chunk_documents(lines: Sequence[str], tokenizer: ChunkTokenizer, chunk_size: int = CHUNK_SIZE) -> list[Document]:
    """The task's documents from the split's lines (see the module docstring)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    ids = list(tokenizer("\n\n".join(lines), add_special_tokens=False).input_ids)
    pieces = [ids[start:start + chunk_size] for start in range(0, len(ids), chunk_size)]
    texts = tokenizer.batch_decode(pieces) if pieces else []
    return [Document(text, len(tokenizer(text).input_ids), len(text.encode("utf-8"))) for text in texts]


def load_lines(dataset: str) -> list[str]:
    """The split's lines (each row's ``text``) from ``dataset``:

    - ``hub``: wikitext-2-raw-v1's test split from the hub (or its cache);
    - ``builtin`` / ``builtin:N``: the embedded suite's documents, one per line (nothing downloaded);
    - a ``.parquet`` file (the hub's own ``wikitext-2-raw-v1/test-00000-of-00001.parquet``) or a ``.jsonl``
      file, one row ``{"text": line}`` per line;
    - a ``.txt`` file: the original ``wiki.test.raw``, one row per line with its newline kept and a blank
      line as "" (as the hub's loader made the rows);
    - a folder: one written by ``datasets``' ``save_to_disk`` (its ``test`` split), or a download of the hub
      repository (``hf download Salesforce/wikitext --repo-type dataset --local-dir DIR``)."""
    if (n := parse_builtin(dataset)) is not None:
        return builtin_documents(n)
    if dataset == "hub":
        return _text_column(_datasets().load_dataset(HUB_DATASET, HUB_CONFIG, split=HUB_SPLIT), dataset)
    path = Path(dataset).expanduser()
    if path.is_dir():
        ds = _datasets()
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = ds.load_from_disk(str(path))
            return _text_column(loaded[HUB_SPLIT] if isinstance(loaded, ds.DatasetDict) else loaded, dataset)
        return _text_column(ds.load_dataset(str(path), HUB_CONFIG, split=HUB_SPLIT), dataset)
    if path.suffix == ".parquet":
        return _text_column(_datasets().Dataset.from_parquet(str(path)), dataset)
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return _text_column({"text": [row.get("text") if isinstance(row, dict) else None for row in rows]}, dataset)
    if path.suffix == ".txt":
        with path.open(encoding="utf-8") as f:
            return [row if row.strip() else "" for row in f]
    raise AccuracyError(f"the wikitext copy {dataset!r} is not a .parquet, .jsonl or .txt file or a folder: "
                        f"give {DATASET_OPTION} one of those (docs/accuracy.md)")


def _text_column(rows: Any, where: str) -> list[str]:
    texts = list(rows["text"]) if "text" in getattr(rows, "column_names", rows) else None
    if texts is None or not all(isinstance(t, str) for t in texts):
        raise AccuracyError(f"the wikitext copy {where!r} has no string column 'text' in every row (one row per "
                            "line of wikitext-2-raw-v1's test split, as on the hub)")
    return texts


def _datasets() -> Any:
    return import_extra("datasets", "eval", "the stage-1 wikitext task")


def load_chunk_tokenizer(name: str) -> ChunkTokenizer:
    """The chunk tokenizer (``AutoTokenizer.from_pretrained`` with its defaults, as the branch loads it)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise AccuracyError(f"cannot load the chunk tokenizer {name!r} ({str(exc).splitlines()[0]}): give "
                            f"{TOKENIZER_OPTION} a local copy, or check access to it (docs/accuracy.md)") from None


def text_sha256(lines: Sequence[str]) -> str:
    """sha256 of the text that is tokenized (the lines joined with "\\n\\n"): the dataset, whatever its format."""
    return hashlib.sha256("\n\n".join(lines).encode("utf-8")).hexdigest()


# -- lm-eval's entry points (accuracy_tasks/wikitext_tokens.py imports them) ------------------------------------
def task_dataset(wikitext_source: str, chunk_tokenizer: str, chunk_size: int = CHUNK_SIZE, **_: Any) -> Any:
    """``custom_dataset`` of the task: the documents with their counts, as a ``DatasetDict`` with one split.
    lm-eval also passes the task's metadata (and, from its command line, the model's arguments): ignored."""
    docs = chunk_documents(load_lines(wikitext_source), load_chunk_tokenizer(chunk_tokenizer), int(chunk_size))
    if not docs:
        raise AccuracyError(f"the wikitext copy {wikitext_source!r} has no text: no document to score")
    ds = _datasets()
    table = {"text": [d.text for d in docs], "words": [d.words for d in docs], "bytes": [d.bytes for d in docs]}
    return ds.DatasetDict({HUB_SPLIT: ds.Dataset.from_dict(table)})


def process_results(doc: dict[str, Any], results: Sequence[float]) -> dict[str, tuple[float, int]]:
    """The metrics' items: (loglikelihood, words) and (loglikelihood, bytes), counts from :func:`task_dataset`."""
    (loglikelihood,) = results
    return {"word_perplexity": (loglikelihood, doc["words"]), "byte_perplexity": (loglikelihood, doc["bytes"]),
            "bits_per_byte": (loglikelihood, doc["bytes"])}


def render_task(include_dir: Path, sources: Sources, chunk_size: int = CHUNK_SIZE) -> Path:
    """Write the task (``wikitext_tokens.yaml`` with the sources filled in, and its functions' module) into
    ``include_dir``: ``lm_eval --include_path include_dir --tasks wikitext_tokens`` then runs it."""
    pkg = importlib.resources.files("pytest_inferencemax.gate.accuracy_tasks")
    values = {"wikitext_source": sources.dataset, "chunk_tokenizer": sources.tokenizer, "chunk_size": chunk_size}
    text = pkg.joinpath(_FILES[0]).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("${" + key + "}", json.dumps(value))  # a JSON scalar is a YAML scalar
    include_dir.mkdir(parents=True, exist_ok=True)
    (include_dir / _FILES[1]).write_text(pkg.joinpath(_FILES[1]).read_text(encoding="utf-8"), encoding="utf-8")
    (include_dir / _FILES[0]).write_text(text, encoding="utf-8")
    return include_dir / _FILES[0]
