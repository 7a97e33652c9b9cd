#!/usr/bin/python3
"""End to end: the demo chat_server and chat_client, with a server crash.

usage: chat_demo_test.py PATH/TO/chat_server PATH/TO/chat_client

Starts chat_server on an ephemeral port and two chat_clients (alice, bob)
with piped stdin. Both type lines; then the server is frozen (SIGSTOP) while
alice types more, so those lines are on the wire but unanswered, and killed
(SIGKILL). While it is down both type lines that can only be queued. The
server is restarted on the same port (a new process: new epochs, no dedup
state), both clients must reconnect, and every line typed by either client
must appear exactly once in both outputs: none lost, none doubled. Then a
--script client, the end-of-input exit, --exit-after-ms against a dead port
and the token path are checked.

Lines the frozen server never processed are resent after the restart with
their ids; the new server has never seen them, so each is delivered once.
(A message the old server had processed and broadcast but whose ack died
with it would be delivered again by the new server: its dedup state is in
memory. The test freezes the server first so that it does not race that.)

Prints 'N passed, M failed'; exits non-zero on any failure. Bounded: every
wait has a deadline inside a 55 s budget.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUDGET_S = 55.0
T0 = time.monotonic()
MSG_RE = re.compile(r"^\[([A-Za-z0-9._:-]+) #(\d+)\] (\S+): (.*)$")

passed = 0
failures = []


def check(name, cond, detail=""):
    global passed
    if cond:
        passed += 1
        print(f"ok   {name}", flush=True)
    else:
        failures.append(name)
        print(f"FAIL {name} {detail}", flush=True)
    return cond


def remaining():
    return max(0.0, BUDGET_S - (time.monotonic() - T0))


class Proc:
    """A subprocess whose stdout lines are collected by a thread."""

    def __init__(self, name, argv, stdin=True):
        self.name = name
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  encoding="utf-8", errors="replace", bufsize=1)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def snapshot(self):
        with self.cond:
            return list(self.lines)

    def wait_for(self, pred, timeout):
        """Waits until pred(lines) is true; returns it (False on timeout)."""
        deadline = time.monotonic() + min(timeout, remaining())
        with self.cond:
            while True:
                if pred(self.lines):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))

    def type(self, *lines):
        for line in lines:
            self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def close_stdin(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass

    def wait_exit(self, timeout):
        try:
            return self.p.wait(min(timeout, remaining()))
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()

    def dump(self):
        print(f"---- {self.name} ({' '.join(self.argv[1:])})")
        for line in self.snapshot():
            print(f"  {line}")


def messages(lines):
    """(room, event_id, sender, text) of every message line."""
    out = []
    for line in lines:
        m = MSG_RE.match(line)
        if m:
            out.append((m.group(1), int(m.group(2)), m.group(3), m.group(4)))
    return out


def counts(lines, sender, texts):
    got = [t for (_, _, s, t) in messages(lines) if s == sender]
    return {t: got.count(t) for t in texts}


def all_once(lines, expected):
    """expected: {sender: [texts]} -> every text exactly once."""
    for sender, texts in expected.items():
        if any(n != 1 for n in counts(lines, sender, texts).values()):
            return False
    return True


def all_seen(lines, expected):
    for sender, texts in expected.items():
        if any(n < 1 for n in counts(lines, sender, texts).values()):
            return False
    return True


def last_status(lines):
    for line in reversed(lines):
        if line.startswith("-- "):
            return line
    return ""


def start_server(binary, port=0, extra=()):
    for _ in range(20):
        srv = Proc("chat_server", [binary, "--host", "127.0.0.1", "--port", str(port), *extra], stdin=False)
        if srv.wait_for(lambda ls: any("listening on" in l for l in ls), 5):
            line = next(l for l in srv.snapshot() if "listening on" in l)
            return srv, int(re.search(r":(\d+)\s*$", line).group(1))
        srv.kill()
        if port == 0 or remaining() < 5:
            break
        time.sleep(0.2)  # the old listener may linger a moment
    return None, 0


def dead_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main(server_bin, client_bin):
    seed = int(os.environ.get("CHAT_TEST_SEED", str(int(time.time() * 1000) % 1000000)))
    print(f"seed {seed} (set CHAT_TEST_SEED to repeat)", flush=True)
    procs = []
    try:
        srv, port = start_server(server_bin)
        procs.append(srv)
        if not check("server reports its port", srv is not None and port > 0):
            return
        client = lambda user, s, *extra: Proc(user, [client_bin, "--host", "127.0.0.1", "--port", str(port),
                                                     "--user", user, "--seed", str(s), *extra])
        alice = client("alice", seed)
        bob = client("bob", seed + 1)
        procs += [alice, bob]
        live = lambda ls: any(l.startswith("-- live") for l in ls)
        check("both clients go live", alice.wait_for(live, 10) and bob.wait_for(live, 10))
        # bob is in the room when alice sees him join (or he was there first).
        check("alice sees bob", alice.wait_for(lambda ls: any("bob" in l and ("joined" in l) for l in ls), 5))

        # Phase 1: normal traffic. Quotes, backslashes, JSON look-alikes and
        # non-ASCII must come back verbatim (the payload is escaped JSON).
        a1 = ["a1 plain hello", 'a2 "quoted" and \\back\\slash\\', "a3 ünïcødé ✓ 日本語",
              'a4 {"text":"not","injected":true}']
        b1 = ["b1 hi alice", "b2 <html>&amp; 100%", "//b3 starts with a slash"]
        shown = lambda t: t[1:] if t.startswith("//") else t
        alice.type(*a1)
        bob.type(*b1)
        exp1 = {"alice": a1, "bob": [shown(t) for t in b1]}
        ok = alice.wait_for(lambda ls: all_seen(ls, exp1), 10) and bob.wait_for(lambda ls: all_seen(ls, exp1), 10)
        check("phase 1 delivered to both", ok)
        check("phase 1 acked (pending 0)",
              alice.wait_for(lambda ls: last_status(ls).endswith("(pending 0)"), 5) and
              bob.wait_for(lambda ls: last_status(ls).endswith("(pending 0)"), 5),
              f"alice {last_status(alice.snapshot())!r} bob {last_status(bob.snapshot())!r}")

        # Phase 2: freeze the server, alice types (sent, never answered),
        # kill it, both type while it is down (queued), restart it.
        srv.p.send_signal(signal.SIGSTOP)
        a2 = ["a5 sent to a frozen server", "a6 also unanswered"]
        alice.type(*a2)
        check("alice has unacked lines in flight",
              alice.wait_for(lambda ls: last_status(ls) == "-- live (pending 2)", 5), last_status(alice.snapshot()))
        n_a, n_b = len(alice.snapshot()), len(bob.snapshot())
        srv.p.send_signal(signal.SIGKILL)
        srv.p.wait()
        lost = lambda n: (lambda ls: any(l.startswith("-- reconnecting") for l in ls[n:]))
        check("both clients notice the crash", alice.wait_for(lost(n_a), 5) and bob.wait_for(lost(n_b), 5))
        a3 = ["a7 typed while the server is down", "a8 still down"]
        b3 = ["b4 bob typed while down"]
        alice.type(*a3)
        bob.type(*b3)
        queued = lambda n, k: (lambda ls: sum(1 for l in ls[n:] if l.startswith("(queued, pending")) >= k)
        check("lines typed while down are queued",
              alice.wait_for(queued(n_a, 2), 5) and bob.wait_for(queued(n_b, 1), 5) and
              any(l == "(queued, pending 4)" for l in alice.snapshot()[n_a:]),
              str([l for l in alice.snapshot()[n_a:] if l.startswith("(queued")]))
        time.sleep(1.0)  # let them fail a reconnect or two (ECONNREFUSED -> backoff)
        srv2, port2 = start_server(server_bin, port)
        if srv2:
            procs.append(srv2)
        if not check("server restarts on the same port", srv2 is not None and port2 == port):
            return
        exp2 = {"alice": a1 + a2 + a3, "bob": [shown(t) for t in b1] + b3}
        ok = alice.wait_for(lambda ls: all_seen(ls, exp2), 25) and bob.wait_for(lambda ls: all_seen(ls, exp2), 25)
        check("everything typed before and during the outage arrives after the restart", ok)

        # Phase 3: live again; a --script client joins in.
        a4, b4 = ["a9 after the restart"], ["b5 bob after the restart"]
        alice.type(*a4)
        bob.type(*b4)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
            f.write("c1 from a script\n/room lobby\nc2 last line without newline")
            script = f.name
        carol = Proc("carol", [client_bin, "--port", str(port), "--user", "carol", "--seed", str(seed + 2),
                               "--script", script], stdin=False)
        procs.append(carol)
        carol_rc = carol.wait_exit(15)
        os.unlink(script)
        check("--script client exits 0 once its lines are acked", carol_rc == 0, f"rc={carol_rc}")
        exp3 = {"alice": a1 + a2 + a3 + a4, "bob": [shown(t) for t in b1] + b3 + b4,
                "carol": ["c1 from a script", "c2 last line without newline"]}
        ok = alice.wait_for(lambda ls: all_seen(ls, exp3), 10) and bob.wait_for(lambda ls: all_seen(ls, exp3), 10)
        check("phase 3 and the script's lines delivered", ok)
        # Let any late duplicate (a resend the server did not dedup) show up.
        alice.wait_for(lambda ls: last_status(ls).endswith("(pending 0)"), 5)
        bob.wait_for(lambda ls: last_status(ls).endswith("(pending 0)"), 5)
        time.sleep(0.5)

        # End of input: wait for acks, close 1000, exit 0.
        alice.close_stdin()
        bob.close_stdin()
        ra, rb = alice.wait_exit(10), bob.wait_exit(10)
        check("clients exit 0 at the end of their input", ra == 0 and rb == 0, f"alice {ra} bob {rb}")

        for c in (alice, bob):
            ls = c.snapshot()
            check(f"{c.name}: every line exactly once", all_once(ls, exp3),
                  str({s: {t: n for t, n in counts(ls, s, ts).items() if n != 1} for s, ts in exp3.items()}))
            expected_texts = {(s, t) for s, ts in exp3.items() for t in ts}
            extra = [m for m in messages(ls) if (m[2], m[3]) not in expected_texts]
            check(f"{c.name}: no unexpected message lines", not extra, str(extra))
            ids = [(r, i) for (r, i, _, _) in messages(ls)]
            # Event ids restart with the new server's epoch, so compare within
            # each server's lifetime: strictly increasing, no repeats.
            segs, cur = [], []
            for r, i in ids:
                if cur and i <= cur[-1]:
                    segs.append(cur)
                    cur = []
                cur.append(i)
            segs.append(cur)
            check(f"{c.name}: event ids increase within each server lifetime", len(segs) <= 2, str(ids))
        check("the server saw clean closes (1000)",
              srv2.wait_for(lambda ls: sum(1 for l in ls if l.endswith("code=1000")) >= 3, 5))

        # --exit-after-ms with nothing to talk to: the line stays queued -> 4.
        t = time.monotonic()
        lone = Proc("lone", [client_bin, "--port", str(dead_port()), "--user", "lone", "--exit-after-ms", "1500"])
        procs.append(lone)
        lone.type("nobody hears this")
        rc = lone.wait_exit(6)
        took = time.monotonic() - t
        check("--exit-after-ms exits 4 with a pending line", rc == 4 and 1.3 < took < 5, f"rc={rc} took={took:.1f}s")
        check("refused connects back off", any(l.startswith("-- reconnecting") for l in lone.snapshot()))

        # Token path: a server that wants a token.
        tsrv, tport = start_server(server_bin, 0, ["--token", "dave=s3cret"])
        if tsrv:
            procs.append(tsrv)
        if check("token server starts", tsrv is not None):
            nok = Proc("anon", [client_bin, "--port", str(tport), "--user", "x"])
            procs.append(nok)
            nok.type("hello?")
            nok.close_stdin()
            rc = nok.wait_exit(8)
            check("no token: 'token required' and exit 3",
                  rc == 3 and any("token required (http 401)" in l for l in nok.snapshot()), f"rc={rc}")
            tok = Proc("dave", [client_bin, "--port", str(tport)])
            procs.append(tok)
            tok.type("/token s3cret", "with a token")
            tok.close_stdin()
            rc = tok.wait_exit(8)
            check("/token NEW after a 401: delivered, exit 0",
                  rc == 0 and any(m[2] == "dave" and m[3] == "with a token" for m in messages(tok.snapshot())),
                  f"rc={rc}")
    finally:
        if failures or os.environ.get("CHAT_TEST_VERBOSE"):
            for p in procs:
                p.dump()
        for p in procs:
            p.close_stdin() if p.p.stdin else None
            p.kill()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: chat_demo_test.py PATH/TO/chat_server PATH/TO/chat_client")
    try:
        main(sys.argv[1], sys.argv[2])
    except Exception as e:  # a harness error is a failure, not a crash without a summary
        failures.append(f"harness: {e!r}")
        print(f"FAIL harness {e!r}", flush=True)
    print(f"{passed} passed, {len(failures)} failed (in {time.monotonic() - T0:.1f} s)")
    sys.exit(1 if failures else 0)
