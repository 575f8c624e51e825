"""FHIR R4 messages (UK Core profiles, BaRS messaging) for the changes events make to POD episodes."""
from podlink.fhir_mappings.errors import MappingError
from podlink.fhir_mappings.messages import build_message

__all__ = ["MappingError", "build_message"]
