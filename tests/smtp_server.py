"""A small real SMTP server for the transport's tests: it records every read from the socket, so a test can
say what the client wrote and in how many writes, and it can offer PIPELINING (RFC 2920) or not.

Why not common.smtp_sink: aiosmtpd neither offers PIPELINING nor shows the raw bytes a client sent, and
"the body was not sent" is a statement about those bytes.

Offering PIPELINING, the server holds its replies until the command that ends a group (DATA, EHLO, NOOP,
QUIT, RSET with nothing pending, or the end of a message), as RFC 2920 §3.2 allows a server to: a client
that waits for the reply to MAIL before writing RCPT never gets one, so a passing test shows the envelope
went in one group without any timing. Without PIPELINING every command is answered at once.
"""

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

GROUP_ENDS = {"DATA", "EHLO", "HELO", "NOOP", "QUIT"}


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class SmtpServer:
    pipelining: bool = True
    # Recipient address -> the reply to its RCPT ("550 5.1.1 No such user").
    reject_rcpt: dict[str, str] = field(default_factory=dict)
    reject_mail: str = ""
    # A server that answers DATA with 354 even when every RCPT was refused (RFC 2920 §1 names such servers).
    accept_data_without_recipients: bool = False
    # Called with each message before its final reply (a test's hook into "the server has the message").
    on_message: Callable[[Received], None] | None = None
    reads: list[bytes] = field(default_factory=list)  # every recv() of every connection, in order
    lines: list[bytes] = field(default_factory=list)  # every line received (commands and message lines)
    messages: list[Received] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self):
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._command_lines: list[bytes] = []

    def __enter__(self) -> "SmtpServer":
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._sock.close()

    @property
    def commands(self) -> list[str]:
        """The verbs of the command lines received (message lines excluded)."""
        return [line.split(b" ", 1)[0].split(b":", 1)[0].decode().upper() for line in self._command_lines]

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        held: list[str] = []
        state = {"from": None, "to": [], "data": None}

        def reply(text: str, *, end_group: bool) -> None:
            held.append(text)
            if end_group or not self.pipelining:
                conn.sendall("".join(f"{r}\r\n" for r in held).encode())
                held.clear()

        reply("220 test.example ESMTP", end_group=True)
        with conn:
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                self.reads.append(chunk)
                buffer += chunk
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    self.lines.append(line)
                    if state["data"] is not None:
                        if line == b".":
                            self._end_message(state, reply)
                        else:
                            state["data"].append(line[1:] if line.startswith(b".") else line)
                        continue
                    self._command_lines.append(line)
                    if self._command(line, state, reply):
                        return

    def _command(self, line: bytes, state: dict, reply) -> bool:
        verb = line.split(b" ", 1)[0].split(b":", 1)[0].decode().upper()
        end = verb in GROUP_ENDS
        if verb == "EHLO":
            extensions = ["250-test.example", "250-SIZE 10485760", "250-8BITMIME"]
            if self.pipelining:
                extensions.append("250-PIPELINING")
            reply("\r\n".join([*extensions, "250 HELP"]), end_group=True)
        elif verb == "MAIL":
            if self.reject_mail:
                reply(self.reject_mail, end_group=end)
            else:
                state.update({"from": line.split(b":", 1)[1].split(b" ")[0].strip(b"<>").decode(), "to": []})
                reply("250 OK", end_group=end)
        elif verb == "RCPT":
            address = line.split(b":", 1)[1].strip().strip(b"<>").decode()
            if state["from"] is None:
                reply("503 5.5.1 Error: need MAIL command", end_group=end)
            elif address in self.reject_rcpt:
                reply(self.reject_rcpt[address], end_group=end)
            else:
                state["to"].append(address)
                reply("250 OK", end_group=end)
        elif verb == "DATA":
            if state["to"] or (state["from"] is not None and self.accept_data_without_recipients):
                state["data"] = []
                reply("354 End data with <CR><LF>.<CR><LF>", end_group=True)
            else:
                reply("554 5.5.1 Error: no valid recipients", end_group=True)
        elif verb == "RSET":
            state.update({"from": None, "to": [], "data": None})
            reply("250 OK", end_group=True)
        elif verb == "NOOP":
            reply("250 OK", end_group=True)
        elif verb == "QUIT":
            reply("221 Bye", end_group=True)
            return True
        else:
            reply("500 5.5.2 Error: command not recognized", end_group=True)
        return False

    def _end_message(self, state: dict, reply) -> None:
        data, recipients = state["data"], state["to"]
        state.update({"data": None})
        if not recipients:
            reply("554 5.5.1 Error: no valid recipients", end_group=True)
        else:
            received = Received(state["from"], list(recipients), b"\r\n".join(data) + b"\r\n")
            if self.on_message is not None:
                self.on_message(received)
            self.messages.append(received)
            reply("250 2.0.0 Ok: queued", end_group=True)
        state.update({"from": None, "to": []})
