"""python -m sandbox: run the amoCRM sandbox for local development (`make run`)."""

import argparse
import os

import uvicorn

from sandbox.app import SandboxSettings, create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=os.environ.get("SANDBOX_TOKEN", "sandbox-token"))
    args = parser.parse_args()
    base_url = f"http://{args.host}:{args.port}"
    print(f"amoCRM sandbox at {base_url}  (token: {args.token})", flush=True)
    print(f"look inside: curl {base_url}/_sandbox/state  (also /_sandbox/stats)", flush=True)
    app = create_app(SandboxSettings(token=args.token))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
