import smtplib

from common.smtp_sink import SmtpSink


def _send(sink: SmtpSink, subject: str) -> None:
    with smtplib.SMTP(sink.host, sink.port) as smtp:
        smtp.sendmail("a@example.com", ["b@example.org"], f"Subject: {subject}\r\n\r\nbody\r\n")


def test_a_restarted_sink_keeps_the_mail_of_the_previous_run(tmp_path):
    with SmtpSink(folder=tmp_path) as first:
        _send(first, "first run")
    with SmtpSink(folder=tmp_path) as second:
        _send(second, "second run")
    saved = sorted(tmp_path.glob("*.eml"))
    assert [b"first run" in p.read_bytes() for p in saved] == [True, False]
    assert b"second run" in saved[1].read_bytes()
