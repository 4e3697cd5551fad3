"""Whether what an accuracy gate needs from the Hugging Face hub can be had, asked before any server starts.

A resource is available when this machine's Hugging Face cache holds it, or when the hub answers for it
with the token this machine has. Otherwise :func:`hub_problem` says what is missing, distinguishing the
cases a user fixes differently: no token (a gated repository), a token without access (the licence not
accepted), the hub out of reach (no network route, or ``HF_HUB_OFFLINE``). No message ever holds a token:
only whether one is set is read."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pytest_inferencemax.errors import MissingExtraError, import_extra

HUB = "https://huggingface.co"


@dataclass(frozen=True)
class HubResource:
    """A hub repository a gate needs, the file whose metadata proves access, and how to do without it."""

    repo_id: str
    repo_type: str  # "model" or "dataset"
    filename: str
    what: str  # e.g. "chunk tokenizer"
    local_option: str  # the option that names a local copy instead

    @property
    def page(self) -> str:
        return f"{HUB}/{'datasets/' if self.repo_type == 'dataset' else ''}{self.repo_id}"


def is_cached(res: HubResource) -> bool:
    """Whether the hub cache holds the resource's file (or, for a dataset, ``datasets``' cache holds it)."""
    import huggingface_hub
    from huggingface_hub import constants

    if isinstance(huggingface_hub.try_to_load_from_cache(res.repo_id, res.filename, repo_type=res.repo_type), str):
        return True
    if res.repo_type != "dataset":
        return False
    dirs = [Path(constants.HF_HUB_CACHE) / f"datasets--{res.repo_id.replace('/', '--')}"]
    try:  # the [eval] extra; without it, only the hub cache counts
        ds_config = import_extra("datasets.config", "eval", "the accuracy gate's dataset cache")
        dirs.append(Path(ds_config.HF_DATASETS_CACHE) / res.repo_id.replace("/", "___"))
    except MissingExtraError:
        pass
    return any(d.is_dir() and any(d.iterdir()) for d in dirs)


def has_token() -> bool:
    """Whether a Hugging Face token is set (HF_TOKEN, or a stored login); the token itself is never read out."""
    import huggingface_hub

    return huggingface_hub.get_token() is not None


def hub_problem(res: HubResource, *, endpoint: str | None = None, timeout: float = 10.0) -> str | None:
    """None when the resource is cached or the hub grants access to it; else what is missing and the fix.
    ``endpoint``: another hub (tests use a local stand-in)."""
    import huggingface_hub

    if is_cached(res):
        return None
    token = has_token()
    url = huggingface_hub.hf_hub_url(res.repo_id, res.filename, repo_type=res.repo_type, endpoint=endpoint)
    try:
        huggingface_hub.get_hf_file_metadata(url, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 (every failure is classified and reported, none is swallowed)
        return classify_hub_error(exc, res, token)
    return None


def classify_hub_error(exc: BaseException, res: HubResource, token: bool) -> str:
    """The message for a failed access check: what is missing (token, licence, network) and how to fix it."""
    from huggingface_hub import errors

    head = f"the accuracy gate's {res.what} {res.repo_id} is not in this machine's Hugging Face cache"
    local = f"or pass {res.local_option} (a local copy), or --skip-accuracy (development only: nothing submittable)"
    login = "set HF_TOKEN, or log in with `hf auth login` (formerly `huggingface-cli login`)"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, errors.GatedRepoError) or (status in (401, 403) and isinstance(exc, errors.HfHubHTTPError)):
        gated = isinstance(exc, errors.GatedRepoError)
        if not token:
            return (f"{head}, and no Hugging Face token is set{' (the repository is gated)' if gated else ''}: "
                    f"{login}, with an account that has accepted its licence at {res.page}; {local}")
        if gated or status == 403:
            return (f"{head}, and the Hugging Face token's account has no access to it (gated repository, HTTP "
                    f"{status}): accept its licence at {res.page} with that account (the repository's owners "
                    f"approve requests, which can take a while), then run again; {local}")
        return (f"{head}, and the hub refused the Hugging Face token (HTTP 401): the token is invalid or "
                f"expired; {login} again; {local}")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return f"{head}, and HF_HUB_OFFLINE is set, so the hub is not asked: unset it on a machine with access; {local}"
    if isinstance(exc, errors.HfHubHTTPError):
        if status == 404 or isinstance(exc, errors.RepositoryNotFoundError):
            return f"{head}, and the hub has no such repository or file (HTTP {status}): check the name; {local}"
        return f"{head}, and the hub answered HTTP {status}: try again later; {local}"
    why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
    return (f"{head}, and the hub cannot be reached ({why}): there is no network route to {HUB} from this "
            f"machine; fill the Hugging Face cache (HF_HOME) on a machine with access, {local}")
