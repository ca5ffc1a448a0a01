"""`python -m services.monitoring.ui`: the Evidently UI over the monitoring workspace, access-controlled.

With `--secret-file` (the stack passes a Pulumi secret delivered as a file) Evidently's write API needs
the secret (its `evidently-secret` header), and every page and read API needs it too (Bearer, or Basic
with the secret as password, so a browser can log in); `/api/version` stays open for health checks.
Without it, this is plain `evidently ui`.
"""

from __future__ import annotations

import argparse

from services.access import RequireCredential, read_credential

HEALTH_PATH = "/api/version"  # Evidently has no /health; this answers 200 once the UI serves


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.monitoring.ui", description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True, help="the Evidently workspace directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--secret-file", help="file holding the UI's secret (one line); omit for no access control")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _arguments(argv)
    secret = read_credential(args.secret_file)
    import uvicorn
    from evidently.ui.service.app import create_app, get_config
    from evidently.ui.service.security.token import SECRET_HEADER_NAME

    config = get_config(host=args.host, port=args.port, workspace=args.workspace, secret=secret)
    app = create_app(config)
    if secret is not None:
        # Evidently's own clients send the secret in their own header; people and scripts use Authorization.
        app = RequireCredential(app, secret, open_paths=[HEALTH_PATH], realm="Evidently UI",
                                own_header=SECRET_HEADER_NAME)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
