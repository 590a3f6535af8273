"""A real local SMTP server that keeps what it receives: the development mail catcher (`manage.py
smtp_sink`) and the sink the end-to-end tests read. Built on aiosmtpd, so it speaks real SMTP."""

import email
import email.policy
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)


@dataclass
class SinkHandler:
    """Keeps messages in memory (tests) and, when `folder` is set, writes each as an .eml file."""

    folder: Path | None = None
    messages: list[ReceivedMessage] = field(default_factory=list)
    # Recipients that get a permanent (5xx) or temporary (4xx) refusal, for bounce and retry tests.
    reject: dict[str, str] = field(default_factory=dict)
    # The same by recipient domain ("slow.example.org": "451 4.7.1 Try again later"): a provider deferring.
    reject_domains: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = self.reject.get(address.lower()) or self.reject_domains.get(address.lower().rpartition("@")[2])
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        received = ReceivedMessage(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or b"")
        with self._lock:
            self.messages.append(received)
        if self.folder is not None:
            save_message(self.folder, received.data)
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()


def save_message(folder: Path, data: bytes) -> Path:
    """Write one message as a new file of `folder`, never over an existing one: names sort by arrival
    (UTC time first) and carry a random part, so a restarted sink, or two on one folder, keep every mail."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(4)}.eml"
        try:
            with open(path, "xb") as file:
                file.write(data)
            return path
        except FileExistsError:
            continue


class SmtpSink:
    """`with SmtpSink() as sink:` runs a sink on a free port of 127.0.0.1 in a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, folder: Path | None = None):
        self.handler = SinkHandler(folder=folder)
        self.host = host
        self._port = port or _free_port(host)
        self.controller = Controller(self.handler, hostname=host, port=self._port, data_size_limit=64 * 1024 * 1024)

    @property
    def port(self) -> int:
        return self._port

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.handler.messages

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
