"""The web app's security: sessions that end, throttled logins, one origin, honest
outages, security headers, and ownership on the Chainlit routes kb exposes.

`composition.build_security(services)` composes the pieces from the app's one `Services`;
`chat_app/app.py` installs the middleware and routes and calls them from Chainlit's
callbacks. What is enforced where is summarised in docs/notes-hardening.md.
"""
