"""Wire formats shared by the SDK and the server: REST/event models, SFU signalling, tokens."""
