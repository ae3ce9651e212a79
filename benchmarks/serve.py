"""``v0lite serve`` under load, on loopback, with the client in the same run (issue 28's speed targets).

Fits a kNN router (routerdc-7model's train split when the data is there, else the synthetic demo
log), saves it, and starts two subprocesses on 127.0.0.1 free ports: an OpenAI-compatible upstream
stub and ``v0lite serve`` (the real CLI, real MiniLM encoder). Then, each phase capped in requests
and in seconds, an asyncio httpx client measures throughput and p50/p99 of

* ``GET /healthz`` (the HTTP floor: FastAPI + uvicorn doing nothing),
* ``POST /v1/route`` with cached prompts (the router's own log prompts, embeddings known) and with
  new prompts (never seen: each is embedded by the server),
* ``POST /v1/chat/completions`` one at a time: straight to the stub, through v0lite naming a pool
  model (no routing), and through v0lite with ``model: "v0lite"`` (routed; cached and new prompts),

and, in the same run with the server idle, the encoder's own batch rate (MiniLM, batches of
``--max-batch`` new prompts). Targets: cached ``/v1/route`` >= 25% of ``/healthz``'s throughput;
new prompts >= 80% of the encoder's batch rate; routing adds <= 10 ms p50 to a chat completion.

    python benchmarks/serve.py [--seconds 10] [--requests 4000] [--concurrency 32] [--no-write]
    python benchmarks/serve.py --quick    # smoke test (implies --no-write)

``--quick``: 3 s / 500 requests per phase, 50 chat completions per variant, 256 prompts for the encoder
rate; flags given still win; it never writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks._results import command_with_env, machine_info, parse_quick, write_section  # noqa: E402

QUICK = {"seconds": 3.0, "requests": 500, "chat_requests": 50, "encoder_prompts": 256}

_STUB = """
import sys, uvicorn
from fastapi import FastAPI, Request
app = FastAPI()
@app.post("/v1/chat/completions")
async def chat(request: Request):
    body = await request.json()
    text = "echo: " + str(body["messages"][-1]["content"])[:40]
    return {"id": "c", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def router_log():
    """(train log, query prompts, where from): routerdc-7model's train split, else the demo log."""
    import polars as pl

    from v0lite.data import convert_routerdc, data_dir

    root = data_dir()
    if root is not None and (root / "routerdc-7model").is_dir():
        df = convert_routerdc(root / "routerdc-7model")
        train = df.filter(pl.col("split") == "train").drop("split")
        test = df.filter(pl.col("split") != "train")["prompt"].unique(maintain_order=True).to_list()
        return train.select("policy", "prompt", "score"), test, "routerdc-7model train split"
    from v0lite.log import read_log

    train = read_log(ROOT / "data" / "demo_log.jsonl")
    test = read_log(ROOT / "data" / "demo_queries.jsonl")["prompt"].unique(maintain_order=True).to_list()
    return train.select("policy", "prompt", "score"), test, "synthetic demo log"


def wait_ready(url: str, proc, seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {seconds:.0f} s")


async def load(url, make_request, *, n: int, seconds: float, concurrency: int) -> dict:
    """Up to ``n`` requests (or ``seconds``), ``concurrency`` in flight; throughput and latency percentiles."""
    import httpx

    lat, errors = [], 0
    counter = iter(range(n))
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker():
            nonlocal errors
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                r = await make_request(client, i)
                lat.append(time.perf_counter() - t0)
                errors += r.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ms = np.asarray(lat) * 1000
    return {
        "requests": len(lat),
        "errors": errors,
        "rps": len(lat) / wall,
        "p50": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
    }


def encoder_rate(prompts: list[str], batch: int) -> float:
    """New prompts per second through MiniLM in batches of ``batch`` (no cache), after one warm-up batch."""
    from v0lite.embed import Embedder

    emb = Embedder(cache_dir=False, batch_size=batch)
    emb.encode(prompts[:batch])
    rest = prompts[batch:]
    t0 = time.perf_counter()
    for i in range(0, len(rest), batch):
        emb.encode(rest[i : i + batch])
    return len(rest) / (time.perf_counter() - t0)


def parse_args(argv=None) -> argparse.Namespace:
    """The options; ``--quick`` (a smoke test) never writes RESULTS.md."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="cap of each load phase")
    ap.add_argument("--requests", type=int, default=4000, help="cap of requests per load phase")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--chat-requests", type=int, default=200, help="sequential chat completions per variant")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--encoder-prompts", type=int, default=1024)
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--quick", action="store_true", help="smoke test (see the module docstring); implies --no-write")
    args = parse_quick(ap, argv, QUICK)
    if args.encoder_prompts <= args.max_batch:  # the first batch warms the encoder up: nothing else to time
        ap.error(
            f"--encoder-prompts {args.encoder_prompts} must exceed --max-batch {args.max_batch} (the first batch "
            "warms the encoder up and is not timed). Fix: raise --encoder-prompts, e.g. to 3 x --max-batch."
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    from v0lite.estimator import V0Regressor
    from v0lite.routing import Router

    train, queries, source = router_log()
    run_tag = f"{os.getpid()}-{time.time_ns()}"  # new prompts are new in every run (never in any cache)

    def novel(i: int) -> str:
        return f"{queries[i % len(queries)]}\n(request {run_tag}-{i})"

    tmp = Path(tempfile.mkdtemp(prefix="v0lite-serve-bench-"))
    t0 = time.perf_counter()
    vm = V0Regressor(head="knn").fit(train)
    Router(vm, cost_model="unit", policies=sorted(vm.index_.policies)).fit().save(tmp / "router")
    print(
        f"router: kNN on {train.height:,} rows of the {source}, {len(vm.index_.policies)} models, "
        f"fitted and saved in {time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    cached = train["prompt"].unique(maintain_order=True).to_list()[:2000]

    stub_port, port = free_port(), free_port()
    stub_url, url = f"http://127.0.0.1:{stub_port}", f"http://127.0.0.1:{port}"
    pool = sorted(vm.index_.policies)
    (tmp / "upstreams.json").write_text(json.dumps({p: {"base_url": f"{stub_url}/v1", "model": p} for p in pool}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    serve_cmd = [
        sys.executable,
        "-m",
        "v0lite",
        "serve",
        "--router",
        str(tmp / "router"),
        "--upstreams",
        str(tmp / "upstreams.json"),
        "--port",
        str(port),
        "--quiet",
        "--max-batch",
        str(args.max_batch),
        "--max-queue",
        "100000",
    ]
    procs = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-c", _STUB, str(stub_port)], env=env))
        procs.append(subprocess.Popen(serve_cmd, env=env))
        wait_ready(f"{url}/readyz", procs[1])
        wait_ready(f"{stub_url}/docs", procs[0])

        def run(fn, **kw):
            return asyncio.run(load(url if kw.pop("direct", False) is False else stub_url, fn, **kw))

        phase = {"n": args.requests, "seconds": args.seconds, "concurrency": args.concurrency}

        async def health(c, i):
            return await c.get("/healthz")

        async def route_cached(c, i):
            return await c.post("/v1/route", json={"prompt": cached[i % len(cached)]})

        async def route_new(c, i):
            return await c.post("/v1/route", json={"prompt": novel(i + 10**8)})

        # warm-up: every cached prompt once (and the encoder loaded), then the phases
        run(route_cached, n=len(cached), seconds=60, concurrency=args.concurrency)
        run(health, n=200, seconds=5, concurrency=4)

        async def route_warm(c, i):  # new prompts of their own: the measured ones stay new
            return await c.post("/v1/route", json={"prompt": novel(i + 9 * 10**8)})

        run(route_warm, n=args.max_batch, seconds=60, concurrency=args.concurrency)
        res = {}
        res["/healthz"] = run(health, **phase)
        res["/v1/route, cached prompts"] = run(route_cached, **phase)
        # enough in flight that the server's batches can fill to --max-batch, as the encoder's do below
        res["/v1/route, new prompts"] = run(
            route_new, **{**phase, "concurrency": max(args.concurrency, 2 * args.max_batch)}
        )
        enc = encoder_rate([novel(10**7 + i) for i in range(args.encoder_prompts)], args.max_batch)

        def chat(model, prompt_of):
            async def call(c, i):
                return await c.post(
                    "/v1/chat/completions",
                    json={"model": model, "messages": [{"role": "user", "content": prompt_of(i)}]},
                )

            return call

        seq = {"n": args.chat_requests, "seconds": args.seconds * 3, "concurrency": 1}
        res["chat: straight to the stub"] = run(chat(pool[0], lambda i: cached[i % len(cached)]), direct=True, **seq)
        res["chat: v0lite, a pool model named"] = run(chat(pool[0], lambda i: cached[i % len(cached)]), **seq)
        res["chat: v0lite routes, cached prompts"] = run(chat("v0lite", lambda i: cached[i % len(cached)]), **seq)
        res["chat: v0lite routes, new prompts"] = run(chat("v0lite", lambda i: novel(5 * 10**6 + i)), **seq)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()

    lines = ["| phase | requests | errors | req/s | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for name, r in res.items():
        lines.append(
            f"| {name} | {r['requests']:,} | {r['errors']} | {r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} |"
        )
    lines.append(
        f"| MiniLM alone, batches of {args.max_batch} new prompts (server idle) | "
        f"{args.encoder_prompts - args.max_batch:,} | - | {enc:,.0f} prompts/s | - | - |"
    )
    health_rps = res["/healthz"]["rps"]
    cached_rps = res["/v1/route, cached prompts"]["rps"]
    new_rps = res["/v1/route, new prompts"]["rps"]
    direct = res["chat: straight to the stub"]["p50"]
    bypass = res["chat: v0lite, a pool model named"]["p50"]
    added_cached = res["chat: v0lite routes, cached prompts"]["p50"] - direct
    added_new = res["chat: v0lite routes, new prompts"]["p50"] - direct

    def verdict(ok):
        return "met" if ok else "NOT met"

    targets = [
        f"- cached `/v1/route` / `/healthz` throughput: {cached_rps / health_rps:.0%} (target >= 25%: "
        f"{verdict(cached_rps >= 0.25 * health_rps)})",
        f"- new-prompt `/v1/route` / the encoder's batch rate: {new_rps / enc:.0%} (target >= 80%: "
        f"{verdict(new_rps >= 0.8 * enc)})",
        f"- p50 added by v0lite to a chat completion, over calling the stub straight: {bypass - direct:+.1f} ms "
        f"with a pool model named (the proxy alone), {added_cached:+.1f} ms routed on a cached prompt "
        f"({verdict(added_cached <= 10)}), {added_new:+.1f} ms routed on a new prompt, embedding included "
        f"({verdict(added_new <= 10)}) (target <= 10 ms)",
    ]
    table = "\n".join(lines)
    print(table)
    print("\n".join(targets))
    if not args.no_write:
        cmd = command_with_env("serve.py", argv or None, ("V0LITE_DATA",))
        body = (
            f"Command: `{cmd.strip()}`  \n{machine_info()}\n\n"
            f"Router: kNN head on {train.height:,} rows of the {source} ({len(pool)} models, MiniLM), "
            f"saved and served by `v0lite serve` (subprocess, `--max-batch {args.max_batch}`); an OpenAI-"
            f"compatible stub as every model's upstream (subprocess); the client is httpx (asyncio) in the "
            f"benchmark's process, {args.concurrency} requests in flight ({max(args.concurrency, 2 * args.max_batch)} "
            f"for new prompts, so that batches can fill), each phase capped at "
            f"{args.requests:,} requests or {args.seconds:.0f} s; chat completions one at a time, "
            f"{args.chat_requests} per variant. Everything on 127.0.0.1; server, stub and client share the "
            f"machine's cores.\n\n{table}\n\n" + "\n".join(targets)
        )
        write_section("serve", "Serve (issue 28): throughput and latency on loopback", body)
        print("wrote the Serve section of benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
