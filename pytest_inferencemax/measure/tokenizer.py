"""A lean tokenizer for the client: a Hugging Face fast tokenizer without transformers or torch.

AutoTokenizer imports torch where it is installed (seconds and most of a gigabyte per client process);
the client needs only ``tokenizer.json`` run by ``tokenizers`` (Rust), from a local folder or the
Hugging Face cache, plus what AutoTokenizer applies from ``tokenizer_config.json`` (or the legacy
``special_tokens_map.json``) as the installed transformers does (its version read from metadata, never
imported; transformers 5 when absent): added and special tokens as transformers adds them,
``split_special_tokens``; ``add_bos_token``/``add_eos_token`` where transformers 4's Llama-style classes
rebuild the post-processor from them (transformers 5 ignores them when tokenizer.json exists);
``decode`` with ``skip_special_tokens=False`` and ``clean_up_tokenization_spaces`` (default off;
transformers 5 skips it for BPE). Not reproduced: transformers 5 classes that rebuild the model from the
vocabulary with their own pre-tokenizer (the known cause of DeepSeek-R1's ISL mismatch, see
token_check.py) and its Mistral regex patch: tokenizer.json stays as the server loads it. A folder
without tokenizer.json (a slow-only tokenizer) loads through transformers, with a note.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from pytest_inferencemax.errors import ConfigError

FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json")
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# transformers 4 fast classes that set the post-processor from add_bos_token/add_eos_token: their defaults
BOS_EOS_CLASSES = {"LlamaTokenizer": (True, False), "CodeLlamaTokenizer": (True, False),
                   "GemmaTokenizer": (True, False), "CohereTokenizer": (True, False),
                   "GPTNeoXTokenizer": (False, False)}
# transformers 4 picks the class from config.json's model_type when tokenizer_config.json names none
MODEL_TYPE_CLASSES = {"llama": "LlamaTokenizer", "gemma": "GemmaTokenizer", "gemma2": "GemmaTokenizer",
                      "cohere": "CohereTokenizer", "gpt_neox": "GPTNeoXTokenizer"}
FIX = "Give a local folder with --tokenizer PATH, or make it available in the Hugging Face cache."


class TokenizerError(ConfigError, RuntimeError):
    """The workload's tokenizer cannot be loaded (a folder that is not there, a hub id out of reach, a damaged
    file); one line naming what was looked for and the fix. A RuntimeError as the loader always raised."""


def is_local_path(name: str) -> bool:
    """A name that can only mean a folder on this machine, never a Hugging Face id: absolute, ``~``, ``./``,
    ``../``, or with more than one ``/`` (a hub id is ``name`` or ``owner/name``)."""
    return os.path.isabs(name) or name.startswith(("~", "./", "../")) or name.count("/") > 1


def missing_folder(name: str, note: str = "") -> TokenizerError | None:
    """The error for a tokenizer ``name`` that can only be a local folder and is not there (None otherwise):
    one line with the absolute folder looked in, ``note`` (how its path came about), and the fix."""
    folder = Path(os.path.abspath(Path(name).expanduser()))
    if not is_local_path(name) or folder.exists():
        return None
    fix = (f"{note.rstrip('.')}, or --tokenizer PATH" if note else
           "Give --tokenizer PATH an existing folder with the tokenizer's files (tokenizer.json), or a Hugging Face id")
    return TokenizerError(f"cannot load the tokenizer {name!r}: there is no folder {folder}. {fix}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class Encoded(dict):
    """What ``tokenizer(text)`` returns, as far as this project reads it: ``.input_ids`` or ``["input_ids"]``."""

    input_ids = property(lambda self: self["input_ids"])
    attention_mask = property(lambda self: self["attention_mask"])


class LeanTokenizer:
    """encode/decode/vocab_size with transformers' meanings, on a ``tokenizers.Tokenizer``."""

    def __init__(self, backend: Any, *, name_or_path: str, clean_up_tokenization_spaces: bool = False) -> None:
        self.backend = backend
        self.name_or_path = name_or_path
        self.clean_up_tokenization_spaces = clean_up_tokenization_spaces

    @property
    def vocab_size(self) -> int:
        """The base vocabulary, without added tokens (transformers' ``vocab_size``)."""
        return self.backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self.backend.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text: str, add_special_tokens: bool = True) -> Encoded:
        ids = self.encode(text, add_special_tokens=add_special_tokens)
        return Encoded(input_ids=ids, attention_mask=[1] * len(ids))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        if not isinstance(ids, list):
            ids = [int(i) for i in ids]
        text = self.backend.decode(ids, skip_special_tokens=skip_special_tokens)
        return clean_up_tokenization(text) if self.clean_up_tokenization_spaces else text

    def encode_batch(self, texts: list[str], add_special_tokens: bool = True) -> list[list[int]]:
        """``encode`` of each text, on up to MAX_THREADS cores (the same ids; offsets are not tracked)."""
        _cap_threads(self.backend)
        many = getattr(self.backend, "encode_batch_fast", None) or self.backend.encode_batch  # tokenizers < 0.21
        return [e.ids for e in many(texts, add_special_tokens=add_special_tokens)]

    def decode_batch(self, many_ids: list[list[int]], skip_special_tokens: bool = False) -> list[str]:
        _cap_threads(self.backend)
        texts = self.backend.decode_batch(many_ids, skip_special_tokens=skip_special_tokens)
        return [clean_up_tokenization(t) for t in texts] if self.clean_up_tokenization_spaces else texts

    def __repr__(self) -> str:
        return f"LeanTokenizer({self.name_or_path!r}, vocab_size={self.vocab_size}, len={len(self)})"


MAX_THREADS = 8  # each tokenizing thread keeps ~4 MB of regex caches; past 8, a workload builds little faster
_threads_capped = False


def _cap_threads(backend: Any) -> None:
    """Start the tokenizers' thread pool (rayon's, built once per process on first use) with at most
    MAX_THREADS threads, unless RAYON_NUM_THREADS says otherwise; the variable is set only meanwhile, so
    processes started later (a server) do not inherit it. 16 threads took 193 MB at CONC 1024, 8 took 154."""
    global _threads_capped
    if _threads_capped or "RAYON_NUM_THREADS" in os.environ:
        return
    _threads_capped = True
    os.environ["RAYON_NUM_THREADS"] = str(min(MAX_THREADS, os.cpu_count() or 1))
    try:
        backend.decode_batch([[0], [0]])  # the pool's first use builds it
    finally:
        del os.environ["RAYON_NUM_THREADS"]


def clean_up_tokenization(text: str) -> str:
    """transformers' ``clean_up_tokenization``: no space before punctuation and English contractions."""
    for old, new in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                     (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(old, new)
    return text


def transformers_major() -> int | None:
    """The installed transformers' major version, from its metadata (no import); None without it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("transformers").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return None


def _offline() -> bool:
    from huggingface_hub import is_offline_mode

    return is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _hub_files(repo_id: str) -> dict[str, Path]:
    """The tokenizer's files from the hub cache; downloads only what is not cached, and only online."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

    files: dict[str, Path] = {}
    offline = _offline()
    try:
        cached = {name: try_to_load_from_cache(repo_id, name) for name in FILES}
    except HFValidationError as exc:
        raise TokenizerError(f"cannot load the tokenizer {repo_id!r}: no folder {Path(repo_id).absolute()}, and not a "
                             f"Hugging Face repository id ({_one_line(exc)}). {FIX}") from exc
    # with tokenizer.json and its config cached, no network; else fetch what the cache does not know
    fetch = not offline and not all(isinstance(cached[n], str) for n in FILES[:2])
    unreachable = ""
    for name, got in cached.items():
        try:
            if got is None and fetch:  # unknown to the cache (a file known to be absent is not None)
                got = hf_hub_download(repo_id, name)
        except LocalEntryNotFoundError as exc:  # the hub could not be reached: try no other file
            fetch, unreachable = False, f"the hub could not be reached ({_one_line(exc)}). "
            continue
        except EntryNotFoundError:
            continue
        except Exception as exc:  # network, authentication, gated or missing repository
            raise TokenizerError(f"cannot load the tokenizer {repo_id!r}: {type(exc).__name__}: {_one_line(exc)}. "
                                 f"{FIX}") from exc
        if isinstance(got, str):
            files[name] = Path(got)
    if not files:
        raise TokenizerError(f"cannot load the tokenizer {repo_id!r}: no folder {Path(repo_id).absolute()}, and not in "
                             "the Hugging Face cache; " + ("offline mode. " if offline else unreachable or "no tokenizer files for it on "
                                        "the hub. ") + FIX)
    return files


def _read(path: Path | None) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path is not None else {}


def _added(AddedToken: Any, value: Any, *, special: bool = False) -> Any:
    """An AddedToken from a config value: a string (a special token) or a serialized AddedToken."""
    if isinstance(value, str):
        return AddedToken(value, special=True)
    token = AddedToken(**{k: v for k, v in value.items() if k != "__type"})
    if special and not token.special:
        token.special = True
    return token


def _apply_config(backend: Any, cfg: dict[str, Any], model_cfg: dict[str, Any], major: int | None) -> bool:
    """Apply tokenizer_config.json to the backend as AutoTokenizer does; returns clean_up_tokenization_spaces."""
    from tokenizers import AddedToken, processors

    is_token = lambda v: isinstance(v, str) or (isinstance(v, dict) and "content" in v)  # noqa: E731
    content = lambda v: v if isinstance(v, str) else v["content"]  # noqa: E731
    decoder = [_added(AddedToken, t) for _, t in sorted((int(i), t) for i, t in
                                                         (cfg.get("added_tokens_decoder") or {}).items())]
    named = [cfg[k] for k in SPECIAL_KEYS if is_token(cfg.get(k))]  # then model-specific ones (image_token ...)
    named += [v for k, v in cfg.items() if k.endswith("_token") and k not in SPECIAL_KEYS and is_token(v)]
    extra = cfg.get("extra_special_tokens") or cfg.get("additional_special_tokens") or []
    if isinstance(extra, dict):
        named, extra = named + list(extra.values()), []
    # As transformers 5: every token of added_tokens_decoder, then each special token not among them or the
    # tokenizer.json's added tokens (re-adding a token the tokenizer has is a no-op).
    to_add = list(decoder)
    known = {t.content for t in backend.get_added_tokens_decoder().values()} | {t.content for t in decoder}
    for value, special in [(v, True) for v in named] + [(v, False) for v in extra if is_token(v)]:
        if content(value) not in known:
            to_add.append(_added(AddedToken, value, special=special))
            known.add(content(value))
    if to_add:
        backend.add_tokens(to_add)
    backend.encode_special_tokens = bool(cfg.get("split_special_tokens", False))
    backend.no_truncation()
    backend.no_padding()

    cls = (cfg.get("tokenizer_class") or MODEL_TYPE_CLASSES.get(model_cfg.get("model_type", ""), "")).removesuffix("Fast")
    if major is not None and major < 5 and cls in BOS_EOS_CLASSES:
        bos_default, eos_default = BOS_EOS_CLASSES[cls]
        add_bos, add_eos = cfg.get("add_bos_token", bos_default), cfg.get("add_eos_token", eos_default)
        bos = content(cfg["bos_token"]) if add_bos and cfg.get("bos_token") else None
        eos = content(cfg["eos_token"]) if add_eos and cfg.get("eos_token") else None
        single = " ".join([f"{bos}:0"] * bool(bos) + ["$A:0"] + [f"{eos}:0"] * bool(eos))
        pair = " ".join([single] + [f"{bos}:1"] * bool(bos) + ["$B:1"] + [f"{eos}:1"] * bool(eos))
        specials = [(t, backend.token_to_id(t)) for t in (bos, eos) if t]
        backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
    clean = bool(cfg.get("clean_up_tokenization_spaces", False))
    if clean and (major is None or major >= 5) and type(backend.model).__name__ == "BPE":
        clean = bool(cfg.get("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False))
    return clean


def load_tokenizer(name_or_path: str, *, transformers_version: int | None | str = "installed", note: str = "") -> Any:
    """The tokenizer of a local folder or hub id, without transformers when it has a tokenizer.json.

    ``transformers_version``: whose semantics to follow (a major version, or None for the newest);
    by default the installed transformers'. Raises :class:`TokenizerError` (a RuntimeError), one line naming
    the path and the fix; ``note`` says, for a folder that is not there, how its path came about. A name that
    can only be a folder (:func:`is_local_path`) is never looked up on the hub."""
    if (missing := missing_folder(name_or_path, note)) is not None:
        raise missing
    folder = Path(name_or_path).expanduser()
    if folder.is_dir():
        files = {n: folder / n for n in FILES if (folder / n).is_file()}
    elif folder.exists():
        raise TokenizerError(f"cannot load the tokenizer {name_or_path!r}: {folder.absolute()} is not a folder. {FIX}")
    else:
        files = _hub_files(name_or_path)
    if "tokenizer.json" not in files:
        print(f"note: {name_or_path} has no tokenizer.json (a slow-only tokenizer): loading it through "
              "transformers, which takes longer and imports torch where it is installed", file=sys.stderr)
        return _load_with_transformers(name_or_path)
    from tokenizers import Tokenizer

    try:
        backend = Tokenizer.from_file(str(files["tokenizer.json"]))
        cfg = _read(files.get("tokenizer_config.json"))
        if "added_tokens_decoder" not in cfg:  # legacy: special tokens from special_tokens_map.json
            cfg = {**cfg, **_read(files.get("special_tokens_map.json"))}
        major = transformers_major() if transformers_version == "installed" else transformers_version
        clean = _apply_config(backend, cfg, _read(files.get("config.json")), major)
    except Exception as exc:  # a corrupt or unsupported file
        raise TokenizerError(f"cannot load the tokenizer {name_or_path!r} from {files['tokenizer.json'].parent}: "
                             f"{type(exc).__name__}: {_one_line(exc)}. {FIX}") from exc
    return LeanTokenizer(backend, name_or_path=name_or_path, clean_up_tokenization_spaces=clean)


def _load_with_transformers(name_or_path: str) -> Any:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise TokenizerError(f"cannot load the tokenizer {name_or_path!r}: it has no tokenizer.json and transformers "
                             "is not installed: pip install transformers, or give a folder with a tokenizer.json "
                             "with --tokenizer PATH") from exc
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise TokenizerError(f"cannot load the tokenizer {name_or_path!r}: {_one_line(exc)}. {FIX}") from exc
