"""MkDocs hook: publish the plots committed beside the examples (``examples/<name>/*.png``)
and the benchmarks (``benchmarks/*.png``).

They live beside the scripts that make them, outside ``docs/``; this adds them to the site as
``examples/<name>/<file>`` so the reproduction pages can show them without a second copy. The
benchmark plots go to the site's root, where the Benchmarks page (``benchmarks/README.md``
included into ``docs/benchmarks.md``) finds them by the same relative name as on GitHub.
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
    for path in sorted((root.parent / "benchmarks").glob("*.png")):
        files.append(File.generated(config, path.name, abs_src_path=str(path)))
    return files
