#!/usr/bin/env python3
"""Lambda stream mode through a local Runtime API (docs/benchmarks.md, "Streaming through
the Lambda Runtime API").

Runs the function binary in Lambda mode with RESPONSE_MODE=stream against a small Runtime
API written here, and measures:

1. cold start to a complete streamed response: exec -> the Runtime API has read a
   streamed GET /v1/models to its last chunk (BENCH_COLD_RUNS runs, default 30), and,
   alternating with it for a reference under the same load, the same in buffered mode;
2. relay delay per event: an upstream (also here) answers a streamed chat completion with
   an event every 5 ms (BENCH_EVENTS events, default 200); for each event, the time from
   the upstream writing it to the Runtime API reading it, p50/p99/max; and, for the
   harness's own share under the same load, the same reader on the upstream directly
   (no function in between). The upstream runs
   in a process of its own (no shared interpreter lock with the Runtime API's reader);
   both read CLOCK_MONOTONIC (time.perf_counter). The figure includes both loopback hops
   and Python's own reading, so it bounds the function's delay from above.

Usage: scripts/bench-lambda-stream.py BOOTSTRAP   (a release build of the function:
`cargo build --release -p openai-proxy-function`, or the bootstrap from bootstrap.zip).
Prints a markdown table (BENCH_VERBOSE=1: each run's times and each event's delay on
stderr). Not a test: run it on a quiet machine.
"""

import http.server
import json
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

binary = sys.argv[1]
cold_runs = int(os.environ.get("BENCH_COLD_RUNS", "30"))
events = int(os.environ.get("BENCH_EVENTS", "200"))
interval = 0.005


def apigw_event(method, path, body=None):
    return json.dumps({
        "resource": "/{proxy+}", "path": path, "httpMethod": method,
        "headers": {"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Content-Type": "application/json"},
        "multiValueHeaders": {"Host": ["abc123.execute-api.us-east-1.amazonaws.com"],
                              "Content-Type": ["application/json"]},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")}, "stageVariables": None,
        "requestContext": {"accountId": "123456789012", "resourceId": "r", "stage": "prod",
                           "requestId": "bench", "identity": {"sourceIp": "203.0.113.7"},
                           "resourcePath": "/{proxy+}", "httpMethod": method, "apiId": "abc123",
                           "path": "/prod" + path, "protocol": "HTTP/1.1",
                           "requestTimeEpoch": 1764000000000},
        "body": body, "isBase64Encoded": False}).encode()


class Quiet(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the killed function resets its idle connection: expected


class Handler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1, no request log, and TCP_NODELAY: the measuring side must not add Nagle
    delays of its own."""

    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *a):
        pass


def chunks(reader):
    """The chunks of a chunked body from `reader`, each as soon as it is read."""
    while (size := int(reader.readline().split(b";")[0], 16)) > 0:
        yield reader.read(size)
        reader.readline()
    while reader.readline() not in (b"\r\n", b""):
        pass  # trailers, if any


def invoke(event, config, on_chunk=None, mode="stream"):
    """Runs the function for one invocation of `event`; returns (exec time, end of
    response time, body) in perf_counter seconds."""
    state = {"served": False}
    done, stop = threading.Event(), threading.Event()

    class Api(Handler):
        def do_GET(self):
            if state["served"]:
                stop.wait(30)  # idle: the next invocation never comes
                return
            state["served"] = True
            self.send_response(200)
            for k, v in {"lambda-runtime-aws-request-id": "inv-1",
                         "lambda-runtime-deadline-ms": str(int(time.time() * 1000) + 60000),
                         "lambda-runtime-invoked-function-arn": "arn:aws:lambda:us-east-1:123456789012:function:proxy",
                         "content-length": str(len(event))}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(event)

        def do_POST(self):
            state["post"] = time.perf_counter()
            body = b""
            if self.headers.get("transfer-encoding", "").lower() != "chunked":  # buffered mode
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
            else:
                for chunk in chunks(self.rfile):
                    if on_chunk:
                        on_chunk(time.perf_counter(), chunk)
                    body += chunk
            state["end"], state["body"], state["path"] = time.perf_counter(), body, self.path
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()
            done.set()

    server = Quiet(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
           "AWS_LAMBDA_FUNCTION_NAME": "proxy", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_LOG_STREAM_NAME": "s",
           "AWS_LAMBDA_LOG_GROUP_NAME": "g", "AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH": "true",
           "RESPONSE_MODE": mode, "PROXY_CONFIG_FILE": config}
    started = time.perf_counter()
    process = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = done.wait(30)
    process.kill()
    process.wait()
    stop.set()
    server.shutdown()
    server.server_close()
    if not ok or not state["path"].endswith("/response"):
        sys.exit(f"the function posted no streamed response: {state.get('path')} {state.get('body', b'')[:200]!r}")
    if os.environ.get("BENCH_VERBOSE"):
        print("POST head after %.1f ms, complete after %.1f ms" % (
            (state["post"] - started) * 1000, (state["end"] - started) * 1000), file=sys.stderr)
    return started, state["end"], state["body"]


def sse_upstream(port, sent_times):
    """An upstream process answering one POST with `events` SSE events, one every 5 ms;
    puts the list of times each was written on `sent_times`."""
    sent = {}

    class Upstream(Handler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            start = time.perf_counter()
            for n in range(events):
                delay = start + n * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                chunk = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1,
                         "model": "gpt-4o-mini",
                         "choices": [{"index": 0, "delta": {"content": f"tok{n}"}, "finish_reason": None}]}
                data = f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode()
                sent[n] = time.perf_counter()
                if n == 0 and os.environ.get("BENCH_VERBOSE"):
                    print("event 0 at %.4f" % sent[n], file=sys.stderr)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            done = b"data: [DONE]\n\n"
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
            sent_times.put([sent[n] for n in range(events)])

    Quiet(("127.0.0.1", port), Upstream).serve_forever()


def config_file(base_url):
    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"openai_api_key": "sk-bench-not-a-real-key",
               "model_mappings": {"bench-model": "gpt-4o-mini"},
               "timeout_settings": {"openai_api_timeout": 30, "secrets_manager_timeout": 10,
                                    "lambda_timeout": 300},
               "openai_base_url": base_url}, f)
    f.close()
    return f.name


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


# 1. cold start to a complete streamed response, and to a buffered one for reference
config = config_file("http://127.0.0.1:9/v1")
cold = {"stream": [], "buffered": []}
for _ in range(cold_runs):
    for mode, times in cold.items():
        started, end, body = invoke(apigw_event("GET", "/v1/models"), config, mode=mode)
        if b"bench-model" not in body:
            sys.exit(f"unexpected {mode} /v1/models: {body[:200]!r}")
        times.append((end - started) * 1000)
os.unlink(config)

# 2. relay delay per event, through the function and, as the harness's own share under the
# same load, with the reader on the upstream directly
def start_upstream():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    # fork: the upstream needs nothing but the function above (spawn would rerun this script).
    context = multiprocessing.get_context("fork")
    sent_times = context.Queue()
    process = context.Process(target=sse_upstream, args=(port, sent_times), daemon=True)
    process.start()
    for _ in range(100):  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return port, process, sent_times


def delays_of(arrived, sent, path):
    if sorted(arrived) != list(range(events)):
        sys.exit(f"{path}: {len(arrived)} of {events} events arrived")
    delays = [(arrived[n] - sent[n]) * 1000 for n in range(events)]
    if os.environ.get("BENCH_VERBOSE"):
        print(path, " ".join("%.2f" % d for d in delays), file=sys.stderr)
    return delays


def events_in(arrived):
    def on_chunk(at, chunk):
        for n in re.findall(rb'tok(\d+)"', chunk):
            arrived.setdefault(int(n), at)
    return on_chunk


request = json.dumps({"model": "bench-model", "stream": True,
                      "messages": [{"role": "user", "content": "Say hello"}]})

# The direct path: the same reader on the upstream's own chunked answer.
port, process, sent_times = start_upstream()
arrived = {}
with socket.create_connection(("127.0.0.1", port)) as connection:
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connection.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: upstream\r\n"
                       b"content-length: %d\r\n\r\n%s" % (len(request), request.encode()))
    reader, on_chunk = connection.makefile("rb"), events_in(arrived)
    while reader.readline() not in (b"\r\n", b""):
        pass  # the head
    for chunk in chunks(reader):
        on_chunk(time.perf_counter(), chunk)
direct = delays_of(arrived, sent_times.get(timeout=30), "direct")
process.terminate()

# Through the function in Lambda stream mode.
port, process, sent_times = start_upstream()
config = config_file(f"http://127.0.0.1:{port}/v1")
arrived = {}
invoke(apigw_event("POST", "/v1/chat/completions", request), config, events_in(arrived))
delays = delays_of(arrived, sent_times.get(timeout=30), "function")
process.terminate()
os.unlink(config)

load = " ".join(open("/proc/loadavg").read().split()[:3])
print(f"Lambda stream mode, {os.cpu_count()} cores, load average {load} after the runs.\n")
print("| Lambda stream mode (local Runtime API) | p50 | p99 | max | target |")
print("|---|---:|---:|---:|---|")
for mode, times in cold.items():
    print(f"| cold start from exec to a complete {mode} GET /v1/models ({cold_runs} runs, modes alternating) "
          f"| **{statistics.median(times):.1f} ms** | {pct(times, 0.99):.1f} ms | {max(times):.1f} ms | ≤ 20 ms |")
print(f"| upstream writes an event → the Runtime API has read it ({events} events, one every 5 ms) "
      f"| {statistics.median(delays):.3f} ms | **{pct(delays, 0.99):.3f} ms** | {max(delays):.3f} ms | p99 ≤ 1 ms |")
print(f"| the same reader on the upstream directly, no function (the harness's share) "
      f"| {statistics.median(direct):.3f} ms | {pct(direct, 0.99):.3f} ms | {max(direct):.3f} ms | |")
