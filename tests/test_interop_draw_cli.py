"""tensornetwork interop, drawing, and the command line."""

import json

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


def test_cli_reports_bad_input_without_a_traceback(capsys):
    assert main(["cost", "mpo", "--in", "4,7", "--out", "4,4,4", "--bond", "2"]) == 2
    assert "as many input legs as output legs" in capsys.readouterr().err
    assert main(["cost", "nonsense"]) == 2
    assert "unknown network 'nonsense'" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(capsys):
    assert main(["demo", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "fc2-mpo1-d2" in out and "MPO-FC2 D=4" in out and "test acc" in out
