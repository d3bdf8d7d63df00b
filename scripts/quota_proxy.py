"""A quota-enforcing HTTP/1.1 proxy in front of moto, for scripts/fleet-bench.sh.

AWS enforces request quotas per account and Region with token buckets; moto enforces none. This
proxy puts one bucket per API in front of moto: BatchGetSecretValue, GetSecretValue and STS
(AssumeRoleWithWebIdentity and every other STS action share one), each refilling at the real
quota divided by --scale, holding at most one second of it (the burst). A request with no token
gets AWS's own throttling answer, never reaching moto:
  Secrets Manager (awsJson1.1): HTTP 400, X-Amzn-ErrorType: ThrottlingException, JSON __type;
  STS (awsQuery): HTTP 400, XML <ErrorResponse> with <Code>Throttling</Code>.
Counts (forwarded and throttled, per action) are served as JSON at GET /quota-proxy/stats;
POST /quota-proxy/reset refills the buckets and zeroes the counts.

Standard library only (asyncio). Usage: python quota_proxy.py UPSTREAM_URL SCALE PORTFILE
"""

import asyncio
import json
import sys
import time
import urllib.parse

# The real quotas, requests per second per account and Region (see BENCHMARKS.md, "Fleet").
REAL = {"BatchGetSecretValue": 100.0, "GetSecretValue": 10000.0, "STS": 600.0}


class Bucket:
    def __init__(self, rate):
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self):
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Proxy:
    def __init__(self, upstream, scale):
        u = urllib.parse.urlsplit(upstream)
        self.host, self.port = u.hostname, u.port or 80
        self.scale = scale
        # moto answers one request per thread; a bounded number in flight keeps it efficient.
        self.upstream_slots = asyncio.Semaphore(16)
        self.reset()

    def reset(self):
        self.buckets = {k: Bucket(v / self.scale) for k, v in REAL.items()}
        self.counts = {}
        self.first = None
        self.last = None
        self.timeline = {}

    def count(self, action, what):
        c = self.counts.setdefault(action, {"forwarded": 0, "throttled": 0})
        c[what] += 1
        now = time.monotonic()
        self.first = self.first or now
        self.last = now
        if what == "forwarded":
            # Forwarded calls per second since the first call: where a bucket sat idle.
            line = self.timeline.setdefault(action, [])
            second = int(now - self.first)
            line.extend([0] * (second + 1 - len(line)))
            line[second] += 1

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                status, out_headers, out_body = await self.answer(method, target, headers, body, lines)
                writer.write(
                    ("HTTP/1.1 %s\r\n" % status).encode()
                    + b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in out_headers)
                    + b"Content-Length: %d\r\n\r\n" % len(out_body)
                    + out_body
                )
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def answer(self, method, target, headers, body, lines):
        if target.startswith("/quota-proxy/"):
            if target == "/quota-proxy/reset":
                self.reset()
                return "200 OK", [("Content-Type", "application/json")], b"{}"
            span = (self.last - self.first) if self.first else 0.0
            stats = {"scale": self.scale, "rates": {k: b.rate for k, b in self.buckets.items()},
                     "actions": self.counts, "active_seconds": span, "timeline": self.timeline}
            return "200 OK", [("Content-Type", "application/json")], json.dumps(stats).encode()
        amz_target = headers.get("x-amz-target", "")
        if amz_target:
            action, bucket, protocol = amz_target.split(".")[-1], amz_target.split(".")[-1], "json"
        else:
            form = urllib.parse.parse_qs(body.decode("latin-1"))
            action, bucket, protocol = form.get("Action", ["unknown"])[0], "STS", "query"
        limiter = self.buckets.get(bucket)
        if limiter is not None and not limiter.take():
            self.count(action, "throttled")
            if protocol == "json":
                return ("400 Bad Request",
                        [("Content-Type", "application/x-amz-json-1.1"),
                         ("X-Amzn-ErrorType", "ThrottlingException"),
                         ("X-Amzn-RequestId", "quota-proxy")],
                        b'{"__type":"ThrottlingException","message":"Rate exceeded"}')
            return ("400 Bad Request", [("Content-Type", "text/xml")],
                    b"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
                    b"<Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
                    b"</Error><RequestId>quota-proxy</RequestId></ErrorResponse>")
        self.count(action, "forwarded")
        return await self.forward(lines, body)

    async def forward(self, lines, body):
        async with self.upstream_slots:
            r, w = await asyncio.open_connection(self.host, self.port)
            keep = [l for l in lines[1:] if l and l.split(":", 1)[0].strip().lower()
                    not in ("connection", "content-length", "expect")]
            w.write(("\r\n".join([lines[0]] + keep) + "\r\nConnection: close\r\n"
                     "Content-Length: %d\r\n\r\n" % len(body)).encode("latin-1") + body)
            await w.drain()
            raw = await r.read()
            w.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        hl = head.decode("latin-1").split("\r\n")
        status = hl[0].split(" ", 1)[1]
        out = []
        chunked = False
        for line in hl[1:]:
            k, _, v = line.partition(":")
            lk = k.strip().lower()
            if lk == "transfer-encoding" and "chunked" in v.lower():
                chunked = True
            if lk in ("connection", "content-length", "transfer-encoding", "keep-alive"):
                continue
            out.append((k.strip(), v.strip()))
        if chunked:
            rest = dechunk(rest)
        return status, out, rest


def dechunk(data):
    out, i = b"", 0
    while True:
        j = data.index(b"\r\n", i)
        size = int(data[i:j].split(b";")[0], 16)
        if size == 0:
            return out
        out += data[j + 2:j + 2 + size]
        i = j + 2 + size + 2


async def main():
    upstream, scale, portfile = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    proxy = Proxy(upstream, scale)
    server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0, backlog=1024)
    with open(portfile, "w") as f:
        f.write("%d\n" % server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
