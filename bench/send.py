"""Send throughput: messages per second handed to a local SMTP sink for a personalised campaign, ours
against the alternatives, side by side in one run on the same sink program (Postfix's smtp-sink).

- bare smtplib: pre-rendered bytes over one connection per process; with as many processes as the others
  get (the ceiling at the same concurrency, which the ratios are read against) and with one process.
- mailsched: the campaign fanned out by the engine, sent by real bulk workers (delivery.tasks.send_batch).
- django-post-office: the same mails queued (personalised, rendered on delivery) and sent by its
  `send_queued_mail --processes N` command.
- naive Celery: one task per recipient (bench/naive_tasks.py), each with its own SMTP connection, run by a
  real worker with the same concurrency as ours.

Each contender gets a fresh smtp-sink; its rate is messages / (last - first message at the sink), so
process start-up is not counted for anyone. Run: bench/run send [--recipients N] [--concurrency N]
"""

import argparse
import multiprocessing
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time

from bench.common import (
    HTML,
    SUBJECT,
    TEXT,
    VENV_BIN,
    Proc,
    Sink,
    audience,
    campaign,
    celery_worker,
    clear_campaigns,
    flush_redis,
    log,
    print_table,
    product_env,
    save_result,
    setup_django,
)


def prerendered(contacts: list[tuple[str, str, str]]) -> list[tuple[str, bytes]]:
    """The same messages as the others send, rendered before the clock starts (bare loop only)."""
    from email.message import EmailMessage
    from email.policy import SMTP

    out = []
    for pk, email, first in contacts:
        ctx = {"first_name": first, "last_name": "Lopez", "unsubscribe_url": f"https://example.com/u/{pk}"}

        def render(source: str, ctx=ctx) -> str:
            for key, value in ctx.items():
                source = source.replace("{{ " + key + " }}", value)
            return source

        msg = EmailMessage(policy=SMTP)
        msg["From"] = "News <news@mail.example.com>"
        msg["To"] = email
        msg["Subject"] = render(SUBJECT)
        msg["List-Unsubscribe"] = f"<https://example.com/u/{pk}>"
        msg.set_content(render(TEXT))
        msg.add_alternative(render(HTML), subtype="html")
        out.append((email, msg.as_bytes()))
    return out


def _bare_loop(port: int, messages: list[tuple[str, bytes]]) -> None:
    smtp = smtplib.SMTP("127.0.0.1", port)
    for to, raw in messages:
        smtp.sendmail("news@mail.example.com", [to], raw)
    smtp.quit()


def run_bare(messages, *, parallel: int = 1) -> dict:
    """`parallel` > 1 runs that many bare loops at once (separate processes): it checks that the sink is
    not what limits the senders."""
    with Sink() as sink:
        chunks = [messages[i::parallel] for i in range(parallel)]
        start = time.monotonic()
        if parallel == 1:
            _bare_loop(sink.port, messages)
        else:
            procs = [multiprocessing.Process(target=_bare_loop, args=(sink.port, c)) for c in chunks]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
        end = sink.wait_count(len(messages), timeout=300)
        return _rate(sink, len(messages), wall=end - start)


def _rate(sink: Sink, n: int, *, wall: float) -> dict:
    span = max(sink.last_at - sink.first_at, 1e-9)
    return {
        "messages": n,
        "seconds": round(span, 3),
        "per_second": round(n / span, 1),
        "wall_seconds": round(wall, 3),
    }


def _py_spy(pid: int, out: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(VENV_BIN / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            out,
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# The DKIM variants of ours: signing as shipped (dkimpy, RSA in OpenSSL), off (DKIM_SIGN_MESSAGES=0, as when
# the relay signs), and dkimpy's own pure-Python RSA (bench/dkim_pure_rsa.py, loaded into the worker).
DKIM_VARIANTS = {
    "signed": ({}, []),
    "unsigned": ({"DKIM_SIGN_MESSAGES": "0"}, []),
    "pure-rsa": ({}, ["--include", "bench.dkim_pure_rsa"]),
}


def ensure_signing_key(workspace) -> None:
    """The bench's sending domain signs like any other: give it its key if it has none."""
    from accounts.models import DkimKey, SendingDomain
    from accounts.services import sending_domain_rotate_key

    domain = SendingDomain.objects.get(workspace=workspace, domain="mail.example.com")
    if not domain.dkim_keys.filter(status=DkimKey.Status.ACTIVE).exists():
        sending_domain_rotate_key(workspace=workspace, domain_id=domain.pk)


def run_ours(
    workspace, label, n: int, *, concurrency: int, profile: str | None = None, dkim: str = "signed"
) -> dict:
    """Fan out with the engine (in this process: its send tasks wait in Redis), then start real bulk
    workers and time the sends at the sink. While they send, this process plays beat's dispatcher tick
    every 2 s (the fan-out enqueues what the backpressure budget allows; the ticks enqueue the rest)."""
    from campaigns import launching
    from campaigns.models import CampaignRun
    from campaigns.services import campaign_send_now
    from delivery import engine
    from delivery.models import Delivery, Event

    clear_campaigns()
    flush_redis()
    c = campaign(workspace, label, name="send bench")
    campaign_send_now(workspace=workspace, campaign_id=c.id)
    run = CampaignRun.objects.get(campaign=c)
    t = time.monotonic()
    launching.run_fan_out(run_id=run.id)
    fan_out = time.monotonic() - t
    planned = Delivery.objects.filter(run=run).count()
    assert planned == n, f"fan-out planned {planned} of {n}"
    stop = threading.Event()

    def ticks():
        from django.db import connection

        while not stop.wait(2):
            engine.dispatch_due()
        connection.close()

    with Sink() as sink:
        env_extra, worker_extra = DKIM_VARIANTS[dkim]
        worker = celery_worker(
            f"bulk-{dkim}",
            queues="bulk",
            concurrency=concurrency,
            env=product_env(email_url=sink.url, **env_extra),
            extra=worker_extra,
        )
        start = time.monotonic()
        worker.start()
        ticker = threading.Thread(target=ticks, daemon=True)
        ticker.start()
        spy = None
        try:
            if profile:
                wait_for_children(worker, concurrency)
                spy = _py_spy(worker.pid, profile)
            end = sink.wait_count(n, timeout=600)
        finally:
            stop.set()
            if spy:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            worker.stop()
    sent = Delivery.objects.filter(run=run, status=Delivery.Status.SENT).count()
    # The event stream is always on: every sent delivery must have left its `sent` event.
    events = Event.objects.filter(run_id=run.id, type=Event.Type.SENT).count()
    result = _rate(sink, n, wall=end - start)
    result.update({"fan_out_seconds": round(fan_out, 3), "rows_sent": sent, "sent_events": events, "dkim": dkim})
    return result


def wait_for_children(worker: Proc, count: int) -> None:
    from bench.common import wait_for

    wait_for(lambda: len(worker.children()) >= count, timeout=60, what="worker pool processes", every=0.05)


def run_post_office(workspace, contacts, n: int, *, processes: int) -> dict:
    from post_office import mail
    from post_office.models import Email, EmailTemplate

    Email.objects.all().delete()
    template, _ = EmailTemplate.objects.update_or_create(
        name="bench",
        language="",
        default_template=None,
        defaults={"subject": SUBJECT, "content": TEXT, "html_content": HTML},
    )
    t = time.monotonic()
    for i in range(0, len(contacts), 2000):
        mail.send_many(
            [
                {
                    "sender": "News <news@mail.example.com>",
                    "recipients": [email],
                    "template": template,
                    "render_on_delivery": True,
                    "priority": "medium",
                    "headers": {"List-Unsubscribe": f"<https://example.com/u/{pk}>"},
                    "context": {
                        "first_name": first,
                        "last_name": "Lopez",
                        "unsubscribe_url": f"https://example.com/u/{pk}",
                    },
                }
                for pk, email, first in contacts[i : i + 2000]
            ]
        )
    queued = time.monotonic() - t
    with Sink() as sink:
        command = Proc(
            "post-office",
            [sys.executable, "manage.py", "send_queued_mail", "--processes", str(processes)],
            product_env(email_url=sink.url),
        )
        start = time.monotonic()
        command.start()
        end = sink.wait_count(n, timeout=1200)
        command.popen.wait(timeout=600)
        command_seconds = time.monotonic() - start
    sent = Email.objects.filter(status=0).count()  # post_office.models.STATUS.sent == 0
    result = _rate(sink, n, wall=end - start)
    result.update(
        {"queue_seconds": round(queued, 3), "command_seconds": round(command_seconds, 3), "rows_sent": sent}
    )
    return result


def run_naive(workspace, label, contacts, n: int, *, concurrency: int) -> dict:
    from bench import naive_tasks

    flush_redis()
    c = campaign(workspace, label, name="naive bench")
    t = time.monotonic()
    with naive_tasks.send_one.app.producer_or_acquire() as producer:
        for pk, _email, _first in contacts:
            naive_tasks.send_one.apply_async(args=[str(pk), str(c.id)], producer=producer)
    queued = time.monotonic() - t
    with Sink() as sink:
        worker = celery_worker(
            "naive",
            queues=naive_tasks.QUEUE,
            concurrency=concurrency,
            env=product_env(email_url=sink.url),
            extra=["--include", "bench.naive_tasks"],
        )
        start = time.monotonic()
        worker.start()
        try:
            end = sink.wait_count(n, timeout=1800)
        finally:
            worker.stop()
    result = _rate(sink, n, wall=end - start)
    result["queue_seconds"] = round(queued, 3)
    return result


def sign_cost(messages: list[tuple[str, bytes]], *, count: int = 300) -> dict:
    """CPU milliseconds per DKIM signature of these messages in this process, RSA in OpenSSL (as shipped)
    and in dkimpy's pure Python: the per-message cost without the noise of workers and the sink."""
    from accounts import dkim_keys

    key = dkim_keys.generate_key()
    signer = dkim_keys.signer_from(
        domain="mail.example.com", selector=key.selector, private_key_encrypted=key.private_key_encrypted
    )
    sample = [raw for _, raw in messages[:count]]
    out = {}
    for name, openssl in (("openssl", True), ("pure-python", False)):
        dkim_keys.use_openssl_rsa(openssl)
        start = time.process_time()
        for raw in sample:
            signer.sign(raw)
        out[f"ms_per_signature_{name}"] = round((time.process_time() - start) * 1000 / len(sample), 3)
    dkim_keys.use_openssl_rsa(True)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run send", description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("BENCH_CONCURRENCY", os.cpu_count() or 2)),
        help="worker processes for ours, naive Celery and post-office (default: cores)",
    )
    parser.add_argument(
        "--only",
        default="bare,ours,post-office,naive",
        help="comma-separated contenders (bare,ours,post-office,naive; ours-unsigned and ours-pure-rsa are the "
        "DKIM comparison: signing off, and dkimpy's pure-Python RSA)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, send once more under py-spy and print where ours spends its time (signed if ours ran, "
        "else unsigned)",
    )
    args = parser.parse_args(argv)
    setup_django()
    only = set(args.only.split(","))
    n = args.recipients
    workspace, label = audience(f"send{n}", n)
    from audience.models import Contact

    contacts = list(
        Contact.objects.filter(workspace=workspace).order_by("email").values_list("id", "email", "first_name")
    )
    results: dict[str, dict] = {}
    ceiling = f"bare smtplib, {args.concurrency} processes (c, the ceiling)"
    if "bare" in only:
        messages = prerendered(contacts)
        log(f"bare smtplib: {args.concurrency} loops at once (one connection each, pre-rendered)")
        results[ceiling] = run_bare(messages, parallel=args.concurrency)
        log("bare smtplib: one process")
        results["bare smtplib, 1 process"] = run_bare(messages)
    ensure_signing_key(workspace)
    if "ours" in only:
        log(f"mailsched: fan-out + {args.concurrency} bulk worker processes, DKIM-signed")
        results["mailsched"] = run_ours(workspace, label, n, concurrency=args.concurrency)
    if "ours-unsigned" in only:
        log("mailsched, DKIM signing off (DKIM_SIGN_MESSAGES=0: the relay signs)")
        results["mailsched, unsigned"] = run_ours(workspace, label, n, concurrency=args.concurrency, dkim="unsigned")
    if "ours-pure-rsa" in only:
        log("mailsched, DKIM-signed with dkimpy's pure-Python RSA")
        results["mailsched, pure-Python RSA"] = run_ours(
            workspace, label, n, concurrency=args.concurrency, dkim="pure-rsa"
        )
    if "post-office" in only:
        log(f"django-post-office: send_queued_mail --processes {args.concurrency}")
        results["django-post-office (a)"] = run_post_office(
            workspace, contacts, n, processes=args.concurrency
        )
    if "naive" in only:
        log(f"naive Celery: one task per recipient, {args.concurrency} worker processes")
        results["naive Celery (b)"] = run_naive(workspace, label, contacts, n, concurrency=args.concurrency)

    ours = results.get("mailsched", {}).get("per_second")
    rows = []
    for name, r in results.items():
        ratio = round(ours / r["per_second"], 2) if ours and r.get("per_second") else None
        rows.append([name, r["messages"], r["seconds"], r["per_second"], ratio])
    table = print_table(
        f"Send throughput, {n:,} personalised messages to smtp-sink, concurrency {args.concurrency}",
        ["sender", "messages", "seconds", "msg/s", "mailsched is x times"],
        rows,
    )
    if "mailsched" in results:
        r = results["mailsched"]
        print(f"events on: {r['sent_events']} `sent` events for {r['rows_sent']} deliveries sent")
    targets = {}
    if ours:
        for key, label_, need in (
            ("naive Celery (b)", "at least 5x naive Celery", 5),
            ("django-post-office (a)", "at least 5x post-office", 5),
            (ceiling, f"at least 0.5x of bare smtplib at concurrency {args.concurrency}", 0.5),
        ):
            if key in results:
                ratio = ours / results[key]["per_second"]
                targets[label_] = {"ratio": round(ratio, 2), "met": ratio >= need}
        for k, v in targets.items():
            print(f"target {k}: {'MET' if v['met'] else 'MISSED'} ({v['ratio']}x)")
    dkim_cost = None
    if only & {"ours-unsigned", "ours-pure-rsa"}:
        dkim_cost = sign_cost(prerendered(contacts))
        print(f"DKIM signing CPU per message in one process: {dkim_cost}")
    profile = None
    if args.profile and only & {"ours", "ours-unsigned"}:
        from bench.profiles import summarize_raw

        out = str(save_dir() / "send-profile.txt")
        # The signed send when it ran, else the unsigned one.
        dkim = "signed" if "ours" in only else "unsigned"
        log(f"profiling ours ({dkim}) under py-spy (not counted in the table)")
        run_ours(workspace, label, n, concurrency=args.concurrency, profile=out, dkim=dkim)
        profile = summarize_raw(out, top=25)
        print(profile["text"])
    save_result(
        "send",
        {
            "recipients": n,
            "concurrency": args.concurrency,
            "results": results,
            "targets": targets,
            "table": table,
            "dkim_sign_cost": dkim_cost,
            "profile": profile,
        },
    )
    return results


def save_dir():
    from bench.common import RESULTS

    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS


if __name__ == "__main__":
    main()
