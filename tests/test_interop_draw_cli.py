"""tensornetwork interop, drawing, and the command line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensornetwork as tn
import torch
from hypothesis import given, settings

import tnlayers
from tnlayers import TNLinear
from tnlayers.cli import main

from .strategies import any_network


@settings(max_examples=20)
@given(any_network)
def test_tensornetwork_round_trip_preserves_the_weight(net):
    layer = TNLinear(net, dtype=torch.float64)
    nodes, inputs, outputs = tnlayers.contraction.to_tensornetwork(net, layer.tensors)
    # Contracting the exported nodes with tensornetwork gives the same dense weight.
    result = tn.contractors.auto(list(nodes.values()), output_edge_order=[*outputs, *inputs])
    dense = np.asarray(result.tensor).reshape(net.padded_out_features, net.padded_in_features)
    dense = dense[: net.out_features, : net.in_features]
    np.testing.assert_allclose(dense, layer.to_dense().detach().numpy(), atol=1e-12)
    nodes, inputs, outputs = tnlayers.contraction.to_tensornetwork(net, layer.tensors)
    imported, values = tnlayers.contraction.from_tensornetwork(
        list(nodes.values()),
        inputs,
        outputs,
        in_features=net.in_features,
        out_features=net.out_features,
        allow_padding=True,
    )
    assert imported.num_params == net.num_params
    again = TNLinear.from_tensors(imported, {k: torch.from_numpy(v) for k, v in values.items()})
    torch.testing.assert_close(again.to_dense(), layer.to_dense(), rtol=0, atol=1e-12)


def test_draw_writes_a_figure(tmp_path):
    path = tmp_path / "mpo.png"
    fig = tnlayers.draw(tnlayers.kronecker((2, 3, 4), (2, 3, 4), 2), path)
    assert path.stat().st_size > 5000
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "i3 (4)" in texts and "body1" in texts and "k (2)" in texts


def test_cli_cost_report(capsys):
    assert main(["cost", "mpo", "--in", "4,7,7,4", "--out", "4,4,4,4", "--bond", "2"]) == 0
    out = capsys.readouterr().out
    assert "parameters   288 vs dense 200,704" in out
    assert main(["cost", "fc2-mpo2", "--json", "--batch", "100"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 736 and data["batch"] == 100
    assert main(["cost", "--list"]) == 0
    assert "lenet5-mpo1" in capsys.readouterr().out


def test_cli_cost_of_a_network_given_as_a_string(capsys):
    argv = ["cost", "ia,ajb,bk : ik -> j", "--sizes", "i=28,k=28,j=64,a=8,b=8", "--json"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == 28 * 8 + 8 * 64 * 8 + 8 * 28
    assert (report["in_features"], report["out_features"]) == (784, 64)


def test_cli_cost_list_as_json(capsys):
    assert main(["cost", "--list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"fc2-mpo1-d2", "fc2-mpo2"} <= {row["name"] for row in listing}
    assert all(row["paper"] and row["description"] for row in listing)


@pytest.mark.parametrize(
    "argv",
    [
        ["draw", "fc2-mpo1-d2"],
        ["draw", "mpo", "--in", "4,7,7,4", "--out", "4,4,4,4", "--bond", "4", "--path"],
        ["draw", "fc2-mpo1-d2", "--path", "--strategy", "materialize", "--batch", "1024"],
        ["draw", "ia,ajb,bk : ik -> j", "--sizes", "i=28,k=28,j=64,a=8,b=8"],
    ],
)
def test_cli_draw_writes_an_image(argv, tmp_path, capsys):
    target = tmp_path / "figure.png"
    assert main([*argv, "-o", str(target), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["written"] == str(target)
    assert written["drawing"] == ("contraction path" if "--path" in argv else "network")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_reports_bad_input_without_a_traceback(capsys):
    assert main(["cost", "mpo", "--in", "4,7", "--out", "4,4,4", "--bond", "2"]) == 2
    assert "as many input legs as output legs" in capsys.readouterr().err
    assert main(["cost", "nonsense"]) == 2
    assert "unknown network 'nonsense'" in capsys.readouterr().err


@pytest.mark.slow
def test_the_demo_prints_the_same_accuracies_in_two_fresh_processes():
    # Its result must not depend on the machine's load: fixed epochs, seeds and strategies.
    runs = [
        subprocess.run(
            [sys.executable, "-m", "tnlayers.cli", "demo", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        for _ in range(2)
    ]
    results = [json.loads(run.stdout) for run in runs]
    accuracies = [[row["accuracy"] for row in result] for result in results]
    assert accuracies[0] == accuracies[1]
    assert [row["steps"] for row in results[0]] == [1600, 1600]
    dense, small = results[0]
    assert dense["accuracy"] > 0.9 and small["accuracy"] > 0.85  # it learned


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(capsys):
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "fc2-mpo1-d2" in out and "MPO-FC2 D=4" in out and "test acc" in out


def test_plot_path_draws_one_bar_per_step_sized_by_its_flops(tmp_path):
    from tnlayers.analysis import plot_path

    net = tnlayers.mpo((4, 7, 7, 4), (4, 4, 4, 4), 4)
    report = tnlayers.cost(net, 1024)
    for strategy in ("sequential", "materialize"):
        fig = plot_path(report, strategy=strategy, path=tmp_path / f"{strategy}.png")
        steps = report.plan.strategies[strategy].steps
        widths = [bar.get_width() for bar in fig.axes[0].patches]
        assert widths == [float(step.flops) for step in steps]
        assert (tmp_path / f"{strategy}.png").stat().st_size > 0
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "x · W → out"  # the materialize GEMM, drawn last (at the bottom)...
    assert labels[0].endswith("→ t1") or labels[0].endswith("→ W")  # ...after the weight build


def test_plot_path_refuses_what_has_no_path():
    from tnlayers.analysis import plot_path

    with pytest.raises(tnlayers.OptionError, match="unknown strategy 'fast'"):
        plot_path(tnlayers.low_rank(8, 8, 2), strategy="fast")
    circuit = tnlayers.GivensLinear(8, layout="clements")
    with pytest.raises(tnlayers.OptionError, match="Givens circuits have no contraction path"):
        plot_path(circuit.cost(16))
