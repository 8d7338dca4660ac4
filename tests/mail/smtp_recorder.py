"""A real SMTP server for the email tests: it records what it accepts and refuses on request.

Started by scripts/mail-servers (see tests/mail/README.md); runs until SIGTERM.

    python smtp_recorder.py --dir DIR --password PW [--cert CERT --key KEY] [--ready FILE]

Listens on three free loopback ports, chosen by the kernel and written to the ready file as
JSON once all three accept connections:
  - "plain":    no TLS offered at all; AUTH PLAIN/LOGIN allowed in the clear,
  - "starttls": STARTTLS offered (not required); AUTH only after STARTTLS, as on real servers,
  - "smtps":    TLS from the first byte (implicit TLS, port-465 style).
The last two only with --cert/--key. AUTH is optional on every port; when used, any user name
logs in with the --password, any other password gets 535.

Each accepted message becomes two files in DIR, written in this order so that a reader that
sees the JSON also sees the message:
  NAME.eml   the message exactly as received after DATA,
  NAME.json  {"mail_from", "rcpt_to": [...], "auth_login", "listener", "tls", "peer",
              "arrival" (RFC 3339, UTC), "eml": "NAME.eml", "size"}
and every RCPT and DATA answer is appended to DIR/attempts.jsonl (one JSON object a line:
{"time", "listener", "mail_from", "rcpt" or "rcpt_to", "stage": "rcpt"|"data", "reply"}), so
a test can count retries.

Behaviour per recipient, so that tests running in parallel against one server do not
interfere (the local part's prefix, case-insensitive, decides):
  tempfail-...@    RCPT answered 451 4.3.0 (every time)
  reject-...@      RCPT answered 550 5.1.1 (every time)
  tempfailN-...@   RCPT answered 451 the first N times this exact address is given, then
                   accepted (N = 1..999, counted per recipient address for the server's life)
  datafail-...@    RCPT accepted, the message answered 451 4.3.0 after DATA (not recorded)
  datareject-...@  RCPT accepted, the message answered 554 5.6.0 after DATA (not recorded)
  slowN-...@       RCPT answered 250 only after N seconds (N = 1..999): for client timeouts
  anything else    accepted.
A message with several recipients is accepted for the accepted ones only (as a real server
does); a DATA rule applies when any accepted recipient carries it.
"""

import argparse
import asyncio
import datetime
import itertools
import json
import os
import re
import signal
import ssl
import time

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

RULE = re.compile(r"^(tempfail|reject|datafail|datareject|slow)(\d{0,3})-", re.IGNORECASE)


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


class Recorder:
    def __init__(self, directory, listener):
        self.directory = directory
        self.listener = listener

    # Shared among the listeners (one event loop, so no locking needed).
    seq = itertools.count(1)
    tempfail_counts = {}

    def log_attempt(self, entry):
        entry = {"time": now_rfc3339(), "listener": self.listener, **entry}
        with open(os.path.join(self.directory, "attempts.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.rsplit("@", 1)[0]
        m = RULE.match(local)
        reply = "250 2.1.5 OK"
        if m:
            kind, n = m.group(1).lower(), m.group(2)
            if kind == "tempfail" and not n:
                reply = "451 4.3.0 Temporary failure requested by the test (tempfail)"
            elif kind == "reject":
                reply = "550 5.1.1 Recipient rejected as requested by the test (reject)"
            elif kind == "tempfail":
                key = address.lower()
                seen = Recorder.tempfail_counts.get(key, 0)
                if seen < int(n):
                    Recorder.tempfail_counts[key] = seen + 1
                    reply = f"451 4.3.0 Temporary failure {seen + 1} of {n} requested by the test"
            elif kind == "slow" and n:
                await asyncio.sleep(int(n))
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        self.log_attempt({"stage": "rcpt", "mail_from": envelope.mail_from, "rcpt": address,
                          "reply": reply})
        return reply

    async def handle_DATA(self, server, session, envelope):
        kinds = {m.group(1).lower() for a in envelope.rcpt_tos
                 if (m := RULE.match(a.rsplit("@", 1)[0]))}
        if "datareject" in kinds:
            reply = "554 5.6.0 Message rejected as requested by the test (datareject)"
        elif "datafail" in kinds:
            reply = "451 4.3.0 Temporary failure after DATA requested by the test (datafail)"
        else:
            name = f"{time.time_ns()}-{next(Recorder.seq):06d}"
            raw = envelope.original_content or b""
            login = None
            if session.authenticated and isinstance(session.auth_data, LoginPassword):
                login = session.auth_data.login.decode("utf-8", "replace")
            meta = {
                "mail_from": envelope.mail_from,
                "rcpt_to": list(envelope.rcpt_tos),
                "auth_login": login,
                "listener": self.listener,
                "tls": self.listener == "smtps" or session.ssl is not None,
                "peer": list(session.peer) if session.peer else None,
                "arrival": now_rfc3339(),
                "eml": name + ".eml",
                "size": len(raw),
            }
            with open(os.path.join(self.directory, name + ".eml"), "wb") as f:
                f.write(raw)
            tmp = os.path.join(self.directory, "." + name + ".json.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(meta, f, indent=1)
            os.rename(tmp, os.path.join(self.directory, name + ".json"))
            reply = f"250 2.0.0 Message accepted as {name}"
        self.log_attempt({"stage": "data", "mail_from": envelope.mail_from,
                          "rcpt_to": list(envelope.rcpt_tos), "reply": reply})
        return reply


def make_authenticator(password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.password == password.encode("utf-8")
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return authenticate


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where accepted messages are written")
    parser.add_argument("--password", required=True, help="the one password AUTH accepts")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", help="PEM certificate for the STARTTLS and SMTPS listeners")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--ready", help="file written with the ports once listening")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    loop = asyncio.get_running_loop()
    authenticator = make_authenticator(args.password)

    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)

    def factory(listener, **kw):
        return lambda: SMTP(Recorder(args.dir, listener), hostname="smtp.switchboard.test",
                            enable_SMTPUTF8=True, authenticator=authenticator, timeout=120,
                            loop=loop, **kw)

    servers = {"plain": await loop.create_server(
        factory("plain", auth_require_tls=False), args.host, 0)}
    if tls:
        servers["starttls"] = await loop.create_server(
            factory("starttls", tls_context=tls, auth_require_tls=True), args.host, 0)
        servers["smtps"] = await loop.create_server(
            factory("smtps", auth_require_tls=False), args.host, 0, ssl=tls)
    ports = {name: s.sockets[0].getsockname()[1] for name, s in servers.items()}
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"pid": os.getpid(), **ports}, f)
        os.rename(tmp, args.ready)
    print(f"smtp_recorder: listening on {ports}, writing to {args.dir}", flush=True)

    # Every message is on disk before its 250 is sent: nothing to flush, so stop at once.
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
