import pytest
from pydantic import ValidationError

from podlink.services.deliver.metrics import answer_label
from podlink.services.deliver.settings import DeliverSettings

URL = "https://epr.example.nhs.uk/fhir"


@pytest.mark.parametrize("status,code,failure,label", [
    (200, None, None, "2xx"), (204, "ok", None, "2xx"), (404, None, None, "4xx"), (503, None, None, "5xx"),
    (429, None, None, "429"), (408, None, None, "408"), (200, "transient-error", None, "transient-error"),
    (400, "fatal-error", None, "fatal-error"), (None, None, "timeout", "timeout"),
    (None, None, "connection failed (ClientConnectorError)", "connection"),
])
def test_answer_labels_are_a_closed_set(status, code, failure, label):
    assert answer_label(status, code, failure) == label


def test_endpoint_and_defaults():
    settings = DeliverSettings(epr_url=URL + "/")
    assert settings.endpoint() == "https://epr.example.nhs.uk/fhir/$process-message"
    assert settings.deliver_web_port == 6069
    assert settings.backoff().max_attempts is None
    assert settings.token() is None


def test_client_certificate_and_key_go_together(tmp_path):
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ValidationError, match="PODLINK_EPR_CERT_FILE and PODLINK_EPR_KEY_FILE go together"):
        DeliverSettings(epr_url=URL, epr_cert_file=cert)
    with pytest.raises(ValidationError, match="is not a readable file"):
        DeliverSettings(epr_url=URL, epr_ca_file=tmp_path / "missing.pem")


def test_the_epr_url_is_required(monkeypatch):
    monkeypatch.delenv("PODLINK_EPR_URL", raising=False)
    with pytest.raises(ValidationError, match="epr_url"):
        DeliverSettings()
