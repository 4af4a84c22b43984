"""Generated documentation: a pipeline and one of its runs as HTML or Markdown.

Reads the log through the public API only; see ``build.build_docs``.
"""
