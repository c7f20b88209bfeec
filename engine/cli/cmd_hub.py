"""`bitsmith hub search TEXT`, `bitsmith hub files REPO`, `bitsmith hub download REPO`: find models
on the Hugging Face Hub, see their files with format, quantization and whether they fit this
machine, and download into the shared Hugging Face cache (resumable, verified). Offline, each
says so in one line."""

from __future__ import annotations

import json
import signal

from .. import api
from ..api import CancelToken, HubSettings, human_bytes, human_count, run_job
from .progress import ProgressPrinter


def register(sub) -> None:
    p = sub.add_parser("hub", help="search and download models from the Hugging Face Hub")
    hub = p.add_subparsers(dest="hub_command", metavar="ACTION", required=True)
    s = hub.add_parser("search", help="models whose name matches TEXT, most downloaded first")
    s.add_argument("text")
    s.add_argument("--limit", type=int, default=20)
    f = hub.add_parser("files", help="a repository's files: size, format, quantization, fit")
    f.add_argument("repo", help="owner/name")
    f.add_argument("--revision", default=None)
    d = hub.add_parser("download", help="download into the Hugging Face cache (resumes an interrupted one)")
    d.add_argument("repo", help="owner/name")
    d.add_argument("--file", action="append", default=None, metavar="NAME",
                   help="a file name or glob (repeatable); default: the whole repository but pickle weights")
    d.add_argument("--revision", default=None)
    for q in (s, f, d):
        q.add_argument("--endpoint", default=None, help="hub address (default: HF_ENDPOINT, else huggingface.co)")
        q.add_argument("--token", default=None, help="Hugging Face token for gated or private repositories")
        q.add_argument("--json", action="store_true", help="one JSON object for scripts")
    s.set_defaults(func=run_search)
    f.set_defaults(func=run_files)
    d.set_defaults(func=run_download)


def _settings(args) -> HubSettings:
    return HubSettings(endpoint=args.endpoint, token=args.token)


def run_search(args) -> int:
    models = api.hub_search(args.text, args.limit, _settings(args))
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2))
        return 0
    if not models:
        print(f"no model matches {args.text!r}")
    width = max((len(m.repo) for m in models), default=0)
    for m in models:
        print(f"{m.repo:<{width}}  {human_count(m.downloads):>7} downloads  {m.library or ''}")
    return 0


def run_files(args) -> int:
    listing = api.hub_files(args.repo, _settings(args), args.revision)
    if args.json:
        print(json.dumps(listing.to_dict(), indent=2))
        return 0
    print(f"{listing.repo} at {listing.revision[:12]}: {len(listing.files)} files, {human_bytes(listing.total_bytes)}")
    width = max((len(f.name) for f in listing.files), default=0)
    for f in listing.files:
        fit = f"  needs ~{human_bytes(f.fit.needed_bytes)}: {f.fit.label}" if f.fit else ""
        print(f"  {f.name:<{width}}  {human_bytes(f.size):>9}  {f.format:<11} {f.quant or '':<8}{fit}")
    if listing.folder_fit:
        ff = listing.folder_fit
        print(f"as a model folder ({listing.quant or 'unquantized'}): needs ~{human_bytes(ff.needed_bytes)} "
              f"of {human_bytes(ff.available_bytes)} free: {ff.label}")
    for note in listing.notes:
        print(f"note: {note}")
    return 0


def run_download(args) -> int:
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        result = run_job(api.hub_download(args.repo, args.file, _settings(args), cancel, args.revision),
                         ProgressPrinter(quiet=args.json))
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps({"repo": result.repo, "revision": result.revision, "folder": str(result.folder),
                          "files": [str(p) for p in result.files]}, indent=2))
    else:
        print(f"downloaded {len(result.files)} file(s) of {result.repo} into {result.folder}")
    return 0
