"""FHIR R4 messages (UK Core profiles, BaRS messaging) for the changes events make to POD episodes."""
from .errors import MappingError
from .messages import build_message

__all__ = ["MappingError", "build_message"]
