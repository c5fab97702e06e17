"""`make serve`: the offline stack in the foreground on 127.0.0.1 until interrupted.

Prints the settings a client needs as KEY=value lines (paste them into `export`), then serves:
the HTTP API (TheRouter's async contract), and moto's AWS endpoint for aws cli / boto3.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from imagejobs_local.sim_behaviour import Latency
from imagejobs_local.stack import REGION, LocalStack, StackOptions, provider_from_env

STATIC = Path(__file__).with_name("static")
# The official OpenAI JS SDK as npm installed it (make test: npm ci), for /sdk: an ES module tree
# with no bare imports, so a browser loads it straight from here.
OPENAI_JS = Path(__file__).resolve().parents[2] / "node_modules" / "openai"
PAGES = {"/playground": "playground.html", "/playground.html": "playground.html", "/sdk": "sdk.html"}
_playground_server: ThreadingHTTPServer | None = None


def serve_playground() -> str:
    """/playground on a port of its own: another origin than the API's, as a web app would be."""
    global _playground_server

    class Page(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/vendor/openai/"):
                file = (OPENAI_JS / path.removeprefix("/vendor/openai/")).resolve()
                if not file.is_relative_to(OPENAI_JS) or file.suffix != ".mjs" or not file.is_file():
                    self.send_error(404)
                    return
                body, content_type = file.read_bytes(), "text/javascript; charset=utf-8"
            elif path in PAGES:
                body, content_type = (STATIC / PAGES[path]).read_bytes(), "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    _playground_server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=_playground_server.serve_forever, name="playground", daemon=True).start()
    return f"http://127.0.0.1:{_playground_server.server_address[1]}/playground"


def _latency(low: float | None, high: float | None) -> Latency:
    """By quality unless a range is given (either end alone keeps the other from 30-180 s)."""
    if low is None and high is None:
        return Latency(kind="quality")
    return Latency(low=30.0 if low is None else low, high=180.0 if high is None else high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="HTTP API port (0: a free one)")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=0.1,
        help="job seconds per real second, inverted: 0.1 runs a 60 s generation in 6 s; 1 is real time",
    )
    parser.add_argument(
        "--latency-low",
        type=float,
        help="simulated generation time, shortest (job s); default: by quality (sim_behaviour.QUALITY_LATENCY)",
    )
    parser.add_argument("--latency-high", type=float, help="simulated generation time, longest (job s)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    provider, time_scale = provider_from_env(args.time_scale)  # PROVIDER_URL / PROVIDER_KEY, if set

    stack = LocalStack(
        StackOptions(
            server=True,
            schedules=True,  # the sweeper runs every 5 minutes of job time
            gateway_port=args.port,
            time_scale=time_scale,
            latency=_latency(args.latency_low, args.latency_high),
            log_level=args.log_level,
            **provider,
        )
    )
    stack.start()
    playground = serve_playground()
    stopped = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        settings = {
            "IMAGEJOBS_BASE_URL": stack.base_url,
            "IMAGEJOBS_API_KEY": stack.api_key,
            "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
            "AWS_DEFAULT_REGION": REGION,
            # IAM is enforced offline: these are the local admin user's keys (imagejobs_local.iam)
            "AWS_ACCESS_KEY_ID": stack.admin.access_key_id if stack.admin else "testing",
            "AWS_SECRET_ACCESS_KEY": stack.admin.secret_access_key if stack.admin else "testing",
            "IMAGEJOBS_RESULTS_BUCKET": stack.outputs["ResultsBucketName"],
            "IMAGEJOBS_INBOX_BUCKET": stack.outputs["InboxBucketName"],
            "IMAGEJOBS_TABLE": stack.outputs["JobsTableName"],
            "IMAGEJOBS_EVENT_BUS": stack.event_bus_name,
            "IMAGEJOBS_EVENT_SOURCE": stack.request_source,
            "IMAGEJOBS_WEBHOOK_SECRET": stack.webhook_secret,
            "IMAGEJOBS_STATE_MACHINE_ARN": stack.state_machine_arn,
            # a page on another origin that calls the API from a browser (CORS); its fragment
            # carries the base URL and key (a fragment never reaches a server)
            "IMAGEJOBS_PLAYGROUND_URL": f"{playground}#base={stack.base_url}&key={stack.api_key}",
        }
        if not provider:  # the simulated provider: its own counts at /sim/stats
            settings["IMAGEJOBS_SIMULATOR_URL"] = stack.provider.base_url
        for name, value in settings.items():
            # Shell-safe (the playground URL holds '&' and '#'): each line can be pasted or eval'd.
            print(f"{name}={shlex.quote(value or '')}")
        print(
            f"# serving on {stack.base_url} (time scale {time_scale}); Ctrl-C stops. Try:\n"
            f'# curl -s -X POST "{stack.base_url}/v1/images/generations?async=true" '
            f'-H "Authorization: Bearer {stack.api_key}" -H "Content-Type: application/json" '
            '-d \'{"prompt": "a lighthouse at dawn", "quality": "low"}\'',
            flush=True,
        )
        stopped.wait()
    finally:
        stack.stop()
        if _playground_server is not None:
            _playground_server.shutdown()
        print("# stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
