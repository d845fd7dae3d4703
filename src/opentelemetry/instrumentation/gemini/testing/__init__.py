"""Test helpers shipped with the package: a fake Gemini server for examples and tests."""
