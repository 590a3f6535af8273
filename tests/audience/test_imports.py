"""CSV contact import: the service (called as the Celery task would), the API and the command."""

import io

import kombu
import kombu.exceptions
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audience.models import Contact, ContactImport, Label
from audience.services import contact_import_create
from audience.tasks import contact_import_process
from common import errors
from common.validators import SINGLE_LINE_MESSAGE
from tests import queues
from tests.factories import ContactFactory, LabelFactory

GOOD_AND_BAD = (
    "email,first_name,last_name,timezone,status,labels,plan\n"
    "Ana@Example.org,Ana,Lima,Asia/Jakarta,,news;vip,pro\n"
    "not-an-email,Bad,Row,,,,\n"
    "bo@example.org,Bo,,Mars/Base,,,\n"
    "\n"
    'cy@example.org,Cy,,,unsubscribed,news|other,"pro\nannual"\n'
    "di@example.org,Di,,,deleted,,\n"
    "ed@example.org,Ed,,,,,free\n"
)


def _import(workspace, text: str | bytes) -> ContactImport:
    payload = text.encode() if isinstance(text, str) else text
    contact_import = contact_import_create(workspace=workspace, filename="c.csv", fileobj=io.BytesIO(payload))
    contact_import_process(str(contact_import.id))
    contact_import.refresh_from_db()
    return contact_import


def test_good_rows_are_kept_and_bad_rows_reported_with_their_line(workspace):
    result = _import(workspace, GOOD_AND_BAD)
    assert result.status == ContactImport.Status.COMPLETED
    assert (result.total_rows, result.created_count, result.updated_count, result.error_count) == (6, 3, 0, 3)
    assert [(e["line"], e["email"], sorted(e["errors"])) for e in result.errors] == [
        (3, "not-an-email", ["email"]),
        (4, "bo@example.org", ["timezone"]),
        (8, "di@example.org", ["status"]),
    ]
    assert set(Contact.objects.filter(workspace=workspace).values_list("email", flat=True)) == {
        "ana@example.org",
        "cy@example.org",
        "ed@example.org",
    }


def test_imported_columns_land_in_fields_attributes_and_labels(workspace):
    _import(workspace, GOOD_AND_BAD)
    ana = Contact.objects.get(workspace=workspace, email="ana@example.org")
    assert (ana.first_name, ana.last_name, ana.timezone, ana.status) == (
        "Ana",
        "Lima",
        "Asia/Jakarta",
        "subscribed",
    )
    assert ana.attributes == {"plan": "pro"}
    assert sorted(ana.labels.values_list("name", flat=True)) == ["news", "vip"]
    cy = Contact.objects.get(workspace=workspace, email="cy@example.org")
    assert cy.status == "unsubscribed" and cy.attributes == {"plan": "pro\nannual"}
    assert sorted(cy.labels.values_list("name", flat=True)) == ["news", "other"]
    assert Label.objects.filter(workspace=workspace).count() == 3


@pytest.mark.parametrize("column", ["first_name", "last_name"])
def test_a_name_with_a_line_break_skips_the_row_with_its_reason(workspace, column):
    result = _import(workspace, f'email,{column}\neve@example.org,"Eve\r\nX-Injected: yes"\nann@example.org,Ann\n')
    assert (result.created_count, result.error_count) == (1, 1)
    assert result.errors == [
        {"line": 2, "email": "eve@example.org", "errors": {column: [SINGLE_LINE_MESSAGE]}},
    ]
    assert list(Contact.objects.filter(workspace=workspace).values_list("email", flat=True)) == ["ann@example.org"]


def test_an_email_with_a_control_character_skips_the_row(workspace):
    # validate_email accepts a quoted local part holding VT; the single-line rule does not.
    result = _import(workspace, 'email\n"""eve\x0bx""@example.org"\n')
    assert (result.created_count, result.error_count) == (0, 1)
    assert result.errors[0]["errors"] == {"email": [SINGLE_LINE_MESSAGE]}
    assert not Contact.objects.exists()


def test_existing_label_is_reused(workspace):
    news = LabelFactory(workspace=workspace, name="news")
    _import(workspace, "email,labels\na@x.org,news\n")
    assert list(Contact.objects.get(email="a@x.org").labels.all()) == [news]


def test_reimport_updates_without_duplicates_and_keeps_blank_cells(workspace):
    _import(workspace, GOOD_AND_BAD)
    result = _import(workspace, "email,first_name,last_name,plan,labels\nANA@example.org,Anita,,team,extra\n")
    assert (result.created_count, result.updated_count, result.error_count) == (0, 1, 0)
    assert Contact.objects.filter(workspace=workspace).count() == 3
    ana = Contact.objects.get(workspace=workspace, email="ana@example.org")
    assert (ana.first_name, ana.last_name, ana.attributes["plan"]) == ("Anita", "Lima", "team")
    assert sorted(ana.labels.values_list("name", flat=True)) == ["extra", "news", "vip"]


def test_same_email_twice_in_a_file_makes_one_contact(workspace):
    result = _import(workspace, "email,first_name\na@x.org,First\nA@x.org,Second\n")
    assert (result.created_count, result.updated_count) == (1, 1)
    assert list(Contact.objects.filter(workspace=workspace).values_list("first_name", flat=True)) == [
        "Second"
    ]


def test_rows_across_chunks_are_all_imported(workspace, settings):
    settings.CONTACT_IMPORT_CHUNK_SIZE = 2
    rows = "".join(f"p{i}@x.org,{i}\n" for i in range(5))
    result = _import(workspace, "email,score\n" + rows + "p0@x.org,99\n")
    assert (result.created_count, result.updated_count) == (5, 1)
    assert Contact.objects.get(email="p0@x.org").attributes == {"score": "99"}


def test_import_queries_per_chunk_not_per_row(workspace, settings, django_assert_max_num_queries):
    settings.CONTACT_IMPORT_CHUNK_SIZE = 1000
    rows = "".join(f"p{i}@x.org,P{i},news\n" for i in range(200))
    contact_import = contact_import_create(
        workspace=workspace,
        filename="c.csv",
        fileobj=io.BytesIO(("email,first_name,labels\n" + rows).encode()),
    )
    with django_assert_max_num_queries(20):
        contact_import_process(str(contact_import.id))
    assert Contact.objects.filter(workspace=workspace).count() == 200


def test_import_only_touches_its_own_workspace(workspace, other_workspace):
    theirs = ContactFactory(workspace=other_workspace, email="a@x.org", first_name="Theirs")
    result = _import(workspace, "email,first_name\na@x.org,Mine\n")
    assert result.created_count == 1
    theirs.refresh_from_db()
    assert theirs.first_name == "Theirs"


def test_running_the_task_twice_processes_once(workspace):
    result = _import(workspace, "email\na@x.org\n")
    ContactImport.objects.filter(pk=result.pk).update(created_count=0)
    contact_import_process(str(result.id))
    result.refresh_from_db()
    assert result.created_count == 0
    assert Contact.objects.filter(workspace=workspace).count() == 1


def test_non_utf8_file_is_rejected_at_upload(workspace):
    with pytest.raises(errors.ValidationError) as exc_info:
        contact_import_create(
            workspace=workspace, filename="c.csv", fileobj=io.BytesIO("email\né@x.org\n".encode("latin-1"))
        )
    assert "UTF-8" in exc_info.value.details["file"][0]


def test_file_without_email_column_is_rejected_at_upload(workspace):
    with pytest.raises(errors.ValidationError) as exc_info:
        contact_import_create(
            workspace=workspace, filename="c.csv", fileobj=io.BytesIO(b"name,plan\nA,pro\n")
        )
    assert "email" in exc_info.value.details["file"][0]


# --- API ------------------------------------------------------------------------------------------------


def _upload(api, content: bytes, name: str = "contacts.csv"):
    upload = io.BytesIO(content)
    upload.name = name
    return api.post("/api/v1/contacts/import", {"file": upload}, format="multipart")


def test_upload_answers_202_and_enqueues_the_task_on_the_imports_queue(
    api, workspace, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = _upload(api, GOOD_AND_BAD.encode())
    assert response.status_code == 202, response.content
    assert response.json()["status"] == "pending"
    assert len(callbacks) == 1
    [task] = queues.queued("imports")
    assert (task.name, task.args) == ("audience.tasks.contact_import_process", [response.json()["id"]])
    assert queues.queued("default") == []

    queues.run_queued("imports")
    status = api.get(f"/api/v1/contacts/imports/{response.json()['id']}").json()
    assert status["status"] == "completed"
    assert (status["created_count"], status["error_count"]) == (3, 3)
    assert status["errors"][0] == {
        "line": 3,
        "email": "not-an-email",
        "errors": {"email": ["Enter a valid email address."]},
    }


def test_upload_without_commit_enqueues_nothing(api, workspace, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _upload(api, b"email\na@x.org\n")
    assert response.status_code == 202
    assert len(callbacks) == 1
    assert not Contact.objects.exists()


def test_upload_over_the_size_limit_is_413(api, settings):
    settings.CONTACT_IMPORT_MAX_BYTES = 10
    response = _upload(api, b"email\nlong-address@example.org\n")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert not ContactImport.objects.exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [(b"name\nA\n", "email"), ("email\né@x.org\n".encode("latin-1"), "UTF-8"), (b"", "empty")],
)
def test_unreadable_upload_is_400_with_a_clear_message(api, content, needle):
    response = _upload(api, content)
    assert response.status_code == 400
    assert needle in response.json()["error"]["details"]["file"][0]


def test_upload_without_file_is_400(api):
    response = api.post("/api/v1/contacts/import", {}, format="multipart")
    assert "file" in response.json()["error"]["details"]


def test_import_status_of_another_workspace_is_404(api, other_workspace):
    theirs = contact_import_create(
        workspace=other_workspace, filename="c.csv", fileobj=io.BytesIO(b"email\n")
    )
    assert api.get(f"/api/v1/contacts/imports/{theirs.id}").status_code == 404
    assert api.get("/api/v1/contacts/imports").json()["results"] == []


# --- command --------------------------------------------------------------------------------------------


def test_command_imports_and_prints_summary_last(workspace, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text(GOOD_AND_BAD)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_contacts", str(path), "--workspace", workspace.name, stdout=out, stderr=err)
    last = out.getvalue().strip().splitlines()[-1]
    assert last.startswith(f"Imported 6 rows into '{workspace.name}': 3 created, 0 updated, 3 skipped")
    assert "line 3 (not-an-email)" in err.getvalue()
    assert Contact.objects.filter(workspace=workspace).count() == 3


def test_command_with_unknown_workspace_fails_cleanly(db, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("email\na@x.org\n")
    with pytest.raises(CommandError, match="No workspace named"):
        call_command("import_contacts", str(path), "--workspace", "nope", stdout=io.StringIO())


def test_command_with_missing_file_fails_cleanly(workspace):
    with pytest.raises(CommandError, match="No such file"):
        call_command(
            "import_contacts", "/nonexistent.csv", "--workspace", workspace.name, stdout=io.StringIO()
        )


def test_upload_as_json_is_415(api):
    response = api.post("/api/v1/contacts/import", {"file": "email\na@x.org\n"}, format="json")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_unreachable_broker_is_503_and_the_import_is_marked_failed(transactional_db, api, monkeypatch):
    # The broker is the outside thing here: publishing fails as it does when Redis is down.
    def refuse(*args, **kwargs):
        raise kombu.exceptions.OperationalError("Error 111 connecting to redis. Connection refused.")

    monkeypatch.setattr(kombu.Producer, "publish", refuse)
    response = _upload(api, b"email\na@x.org\n")
    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert ContactImport.objects.get().status == ContactImport.Status.FAILED
