"""The composition root: settings, the Chainlit app and the `kb` command line."""
