"""Ready-made ends of the wire: tether driving the services a conversation talks to.

Each integration is built on the runtime's public API (the manager's hooks
and its reply API) and knows nothing of the HTTP service, which only wires
them in from settings. :mod:`tether.integrations.openai` answers user
messages with a streamed reply from any OpenAI-compatible Chat Completions
endpoint.
"""
