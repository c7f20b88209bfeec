"""The Hugging Face Hub: search, a repository's files with a fit estimate, and verified, resumable
downloads into the shared cache (through huggingface_hub)."""

from .client import HubUnavailable, offline
from .download import DownloadResult, choose_files, download
from .fit import Fit, estimate_fit
from .search import HubFile, HubModel, RepoFiles, repo_files, search

__all__ = ["HubUnavailable", "offline", "DownloadResult", "choose_files", "download", "Fit", "estimate_fit",
           "HubFile", "HubModel", "RepoFiles", "repo_files", "search"]
