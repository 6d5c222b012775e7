"""Records every notification Alertmanager sends: webhook/Slack JSON over HTTP and
email over SMTP. GET /records returns them all; DELETE /records forgets them.

The SMTP side requires AUTH LOGIN with SMTP_USERNAME and SMTP_PASSWORD (the stack's
generated secret) before it takes a mail, as a real smarthost does: a delivered mail
proves Alertmanager logged in with the password from .env. Refused logins are recorded
too (kind "smtp-auth-refused")."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import os
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


USERNAME = os.environ["SMTP_USERNAME"]
PASSWORD = os.environ["SMTP_PASSWORD"]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


async def smtp_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough SMTP for Alertmanager (EHLO, AUTH LOGIN, MAIL, RCPT, DATA, QUIT),
    without TLS: AUTH LOGIN is the mechanism Alertmanager uses over plain text (Go's
    PLAIN refuses to send a password unencrypted to a host other than localhost)."""

    def say(line: str) -> None:
        writer.write((line + "\r\n").encode())

    async def ask(prompt: str) -> str:
        say(f"334 {b64(prompt)}")
        await writer.drain()
        return unb64((await reader.readline()).decode("utf-8", "replace"))

    say("220 sink ESMTP")
    sender, rcpts, user = None, [], None
    while line := (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n"):
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            say("250-sink")
            say("250 AUTH LOGIN")
        elif verb == "AUTH":
            parts = line.split()
            if len(parts) < 2 or parts[1].upper() != "LOGIN":
                say("504 5.5.4 only AUTH LOGIN")
            else:
                name = unb64(parts[2]) if len(parts) > 2 else await ask("Username:")
                secret = await ask("Password:")
                if name == USERNAME and secret == PASSWORD:
                    user = name
                    say("235 2.7.0 authenticated")
                else:
                    record("smtp-auth-refused", "smtp", {"username": name})
                    say("535 5.7.8 authentication failed")
        elif verb == "MAIL":
            if user is None:
                say("530 5.7.0 authentication required")
            else:
                sender, rcpts = line.split(":", 1)[1].strip(), []
                say("250 OK")
        elif verb == "RCPT":
            if sender is None:
                say("503 5.5.1 MAIL first")
            else:
                rcpts.append(line.split(":", 1)[1].strip())
                say("250 OK")
        elif verb == "DATA":
            if user is None or sender is None:
                say("503 5.5.1 MAIL first")
                await writer.drain()
                continue
            say("354 end with .")
            await writer.drain()
            lines = []
            while (data := (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")) != ".":
                lines.append(data[1:] if data.startswith("..") else data)
            record("email", "smtp", {"from": sender, "to": rcpts, "user": user, "message": "\n".join(lines)})
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
