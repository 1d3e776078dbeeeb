"""Typed views of SP-API responses (pydantic), one module per API."""
