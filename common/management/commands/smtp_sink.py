import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from common.smtp_sink import SmtpSink


class Command(BaseCommand):
    help = "Run a local SMTP sink for development: every message is saved as an .eml file."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=1025)
        parser.add_argument("--folder", default=str(Path(settings.DATA_DIR) / "outbox"))

    def handle(self, *args, host, port, folder, **options):
        sink = SmtpSink(host=host, port=port, folder=Path(folder)).start()
        self.stdout.write(f"SMTP sink listening on {host}:{port}; messages are saved in {folder}")
        self.stdout.flush()
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            sink.stop()
