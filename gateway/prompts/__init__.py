"""Prompt templates with versions, stored in the gateway's database and rendered before routing.

    render.py   `{{name}}` placeholders, variables checked against the declared ones
    store.py    templates, immutable versions, labels that move atomically, diffs, every change audited
    apply.py    a Chat Completions request's `prompt: {id, version, variables}` turned into its messages
"""
