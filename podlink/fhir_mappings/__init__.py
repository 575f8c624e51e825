"""FHIR R4 messages (UK Core profiles, BaRS messaging) for the changes events make to POD episodes."""
from podlink.fhir_mappings.errors import MappingError
from podlink.fhir_mappings.messages import build_message
from podlink.fhir_mappings.systems import DEFAULT_BASE_URL, check_base_url

__all__ = ["DEFAULT_BASE_URL", "MappingError", "build_message", "check_base_url"]
