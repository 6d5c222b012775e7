"""Records every notification Alertmanager sends: webhook/Slack JSON over HTTP and
email over SMTP. GET /records returns them all; DELETE /records forgets them."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RECORDS: list[dict] = []
LOCK = threading.Lock()


def record(kind: str, path: str, body) -> None:
    with LOCK:
        RECORDS.append({"kind": kind, "path": path, "received": time.time(), "body": body})


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record("http", self.path, body)
        self._reply(200, b"ok")

    def do_GET(self):
        if self.path == "/records":
            with LOCK:
                self._reply(200, json.dumps(RECORDS).encode(), "application/json")
        else:
            self._reply(200 if self.path == "/health" else 404, b"ok")

    def do_DELETE(self):
        with LOCK:
            RECORDS.clear()
        self._reply(200, b"ok")

    def _reply(self, code, data, kind="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


async def smtp_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough SMTP for Alertmanager (EHLO, MAIL, RCPT, DATA, QUIT), without TLS."""

    def say(line: str) -> None:
        writer.write((line + "\r\n").encode())

    say("220 sink ESMTP")
    sender, rcpts = None, []
    while line := (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n"):
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            say("250 sink")
        elif verb == "MAIL":
            sender, rcpts = line.split(":", 1)[1].strip(), []
            say("250 OK")
        elif verb == "RCPT":
            rcpts.append(line.split(":", 1)[1].strip())
            say("250 OK")
        elif verb == "DATA":
            say("354 end with .")
            await writer.drain()
            lines = []
            while (data := (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")) != ".":
                lines.append(data[1:] if data.startswith("..") else data)
            record("email", "smtp", {"from": sender, "to": rcpts, "message": "\n".join(lines)})
            say("250 OK")
        elif verb == "QUIT":
            say("221 bye")
            await writer.drain()
            break
        else:
            say("250 OK")
        await writer.drain()
    writer.close()


async def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", 8080), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    smtp = await asyncio.start_server(smtp_session, "0.0.0.0", 2525)
    async with smtp:
        await smtp.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
