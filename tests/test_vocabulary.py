"""Users know papers by authors and titles: no internal file numbers or issue talk in what the
command line prints, in the README or in the examples' committed results.

The built site is checked by ``.ci/check_site.py`` (rendered text, in headless Chromium); this
test reads the same list of patterns from it.
"""

import importlib.util
from pathlib import Path

import pytest

import tnlayers
from tnlayers.cli import main
from tnlayers.models import LeNet5

ROOT = Path(__file__).parent.parent


def _vocabulary():
    spec = importlib.util.spec_from_file_location("check_site", ROOT / ".ci" / "check_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VOCABULARY


VOCABULARY = _vocabulary()


def _internal(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [m.group(0) for pattern in VOCABULARY for m in pattern.finditer(flat)]


def test_the_patterns_catch_what_they_are_for():
    assert _internal("as in seed\n003's eq. 9, see spec § 4 and issue 15") == [
        "seed\n003".replace("\n", " "),
        "spec §",
        "issue 15",
    ]
    assert _internal("the seed writes the product left to right") == ["the seed writes"]
    assert _internal("Gao et al. 2020, eq. 9; seeds are 0-4; the seed of the split") == []


@pytest.mark.parametrize(
    "argv",
    [
        ["cost", "--list"],
        ["cost", "--list", "--json"],
        ["cost", "fc2-mpo1-d2"],
        ["cost", "fc2-mpo2", "--json"],
        ["cost", "mpo", "--in", "4,7,7,4", "--out", "4,4,4,4", "--bond", "8", "--batch", "1024"],
        ["cost", "ia,ajb,bk : ik -> j", "--sizes", "i=28,k=28,j=64,a=8,b=8"],
        ["--help"],
        ["cost", "--help"],
        ["draw", "--help"],
        ["demo", "--help"],
    ],
)
def test_command_line_output_speaks_of_papers_not_files(argv, capsys):
    try:
        main(argv)
    except SystemExit:  # --help
        pass
    out = capsys.readouterr()
    assert _internal(out.out + out.err) == []


def test_summaries_and_reports_speak_of_papers_not_files():
    text = str(tnlayers.summary(LeNet5(mpo=True), input_size=(1, 28, 28)))
    text += str(tnlayers.GivensLinear(16).cost(64))
    assert _internal(text) == []


def test_readme_and_committed_results_speak_of_papers_not_files():
    files = [ROOT / "README.md", *sorted((ROOT / "examples").glob("*/*.md"))]
    found = {str(f.relative_to(ROOT)): _internal(f.read_text(encoding="utf-8")) for f in files}
    assert {name: hits for name, hits in found.items() if hits} == {}
