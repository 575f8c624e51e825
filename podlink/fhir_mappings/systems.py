"""Every URI the messages use: profiles, code systems, identifier systems and extensions.

National and HL7 URIs are fixed by their owners (see ../shared/DOMAIN.md sections 2 and 3).
Our own (local code systems, extensions, identifier systems) live under the trust's namespace,
a base URL set by deployment (`PODLINK_FHIR_BASE_URL`): `Namespace` derives each of them from
it, so a trust publishes them where it controls the domain. `conformance.py` renders the
CodeSystems and extension StructureDefinitions that those URLs name.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import urlsplit

_UK_CORE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-"
PROFILE_BUNDLE = _UK_CORE + "Bundle"
PROFILE_MESSAGE_HEADER = _UK_CORE + "MessageHeader"
PROFILE_PATIENT = _UK_CORE + "Patient"
PROFILE_SERVICE_REQUEST = _UK_CORE + "ServiceRequest"
PROFILE_ENCOUNTER = _UK_CORE + "Encounter"
PROFILE_CARE_PLAN = _UK_CORE + "CarePlan"
PROFILE_OBSERVATION = _UK_CORE + "Observation"
PROFILE_PRACTITIONER = _UK_CORE + "Practitioner"
PROFILE_RELATED_PERSON = _UK_CORE + "RelatedPerson"
PROFILE_LOCATION = _UK_CORE + "Location"
PROFILE_TASK = _UK_CORE + "Task"

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS_ORGANISATION = "https://fhir.nhs.uk/Id/ods-organization-code"
EXT_NHS_NUMBER_VERIFICATION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
NHS_NUMBER_VERIFICATION = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
BARS_MESSAGE_EVENTS = "https://fhir.nhs.uk/CodeSystem/message-events-bars"
BARS_MESSAGE_REASON = "https://fhir.nhs.uk/CodeSystem/message-reason-bars"

SNOMED = "http://snomed.info/sct"
DMD = "https://dmd.nhs.uk"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V3_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
V3_NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

SOURCE_ENDPOINT = "urn:podlink"

# An example.org host (RFC 2606: reserved, owned by nobody) says plainly that the trust has not
# set its own namespace yet, where a real-looking default would be taken for a published one.
DEFAULT_BASE_URL = "https://podlink.example.org/fhir"


# Compared and hashed as an object (eq=False), not by its base: `namespace` makes one per base
# URL, and the mappings' caches take it in their keys, where the generated value hash was a
# Python call on every lookup, a few per element of a message.
@dataclass(frozen=True, eq=False)
class Namespace:
    """The URIs of podlink's own terms under one base URL (no trailing slash); get one from
    `namespace`.

    Canonical URLs follow the FHIR REST pattern `[base]/CodeSystem/[id]`, so the intake service
    can serve each resource at the address that names it.
    """

    base: str

    def code_system(self, system_id: str) -> str:
        return f"{self.base}/CodeSystem/{system_id}"

    def value_set(self, system_id: str) -> str:
        return f"{self.base}/ValueSet/{system_id}"

    def extension(self, extension_id: str) -> str:
        return f"{self.base}/StructureDefinition/{extension_id}"

    @property
    def referral_id(self) -> str:
        return f"{self.base}/Id/referral-id"

    @property
    def meeting_id(self) -> str:
        return f"{self.base}/Id/meeting-id"

    @property
    def staff_id(self) -> str:
        return f"{self.base}/Id/staff-id"

    @property
    def team_code(self) -> str:
        return f"{self.base}/Id/team-code"


def check_base_url(text: str) -> str:
    """`text` as a base URL (trailing slash removed), or ValueError saying what is wrong."""
    base = text.strip().rstrip("/")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("the FHIR base URL must be an absolute http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError("the FHIR base URL must not have a query or a fragment")
    return base


@functools.lru_cache(maxsize=16)
def namespace(base_url: str) -> Namespace:
    """The Namespace of a base URL, checked once per base (ValueError if it is not one)."""
    return Namespace(check_base_url(base_url))
