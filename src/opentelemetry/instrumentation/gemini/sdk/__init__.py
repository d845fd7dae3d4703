"""The only package that touches google-genai: what we hook (seams) and the adapters that turn an
SDK call into a recorded call. Everything else reads plain objects and never imports the SDK."""
