"""MkDocs hook: publish the plots committed beside the examples (``examples/<name>/*.png``).

They live beside the scripts that make them, outside ``docs/``; this adds them to the site as
``examples/<name>/<file>`` so the reproduction pages can show them without a second copy.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).parent / "examples"
    for path in sorted(root.glob("*/*.png")):
        uri = f"examples/{path.parent.name}/{path.name}"
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
