"""`bitsmith serve MODEL`: the model on an OpenAI-compatible endpoint (/v1/models,
/v1/chat/completions, /v1/completions) until Ctrl-C. Bound to 127.0.0.1 unless --allow-remote and
--api-key say otherwise."""

from __future__ import annotations

import sys

from .. import api
from ..api import ServerSettings
from .cmd_info import resolve_model_arg


def register(sub) -> None:
    d = ServerSettings()
    p = sub.add_parser("serve", help="serve a model on an OpenAI-compatible local endpoint")
    p.add_argument("model", help="a GGUF file or a model folder ('bundled' for the bundled model)")
    p.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host}: this machine only)")
    p.add_argument("--port", type=int, default=d.port,
                   help=f"port (default {d.port}, or a free one if it is taken; 0: any free port)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on every request")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host other than this machine (needs --api-key)")
    p.add_argument("--name", default=None, help="model name clients see (default: the file or folder name)")
    p.add_argument("--queue", type=int, default=d.max_queue, help="requests that may wait for the model")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--ctx", type=int, default=None, help="context length (GGUF)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (GGUF)")
    p.add_argument("--gpu-layers", type=int, default=None, help="layers to offload to the GPU (GGUF)")
    p.set_defaults(func=run)


def run(args) -> int:
    settings = ServerSettings(host=args.host, port=args.port, api_key=args.api_key, allow_remote=args.allow_remote,
                              max_queue=args.queue, model_name=args.name)
    backend = api.load_model(resolve_model_arg(args.model), args.device, n_ctx=args.ctx, n_threads=args.threads,
                             n_gpu_layers=args.gpu_layers)
    server = api.serve(backend, settings)
    moved = " (port 8000 is taken)" if args.port == 8000 and server.port != 8000 else ""
    print(f"Serving {server.model_id} ({backend.kind}, {backend.device}) at {server.url}{moved}", flush=True)
    print(f"  e.g. OpenAI(base_url='{server.url}', api_key='{'<your key>' if args.api_key else 'unused'}'); "
          "Ctrl-C stops.", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # uvicorn passes Ctrl-C on once it has shut down: the normal way to stop
        pass
    finally:
        backend.close()
    print("Stopped.", file=sys.stderr)
    return 0
