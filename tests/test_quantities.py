"""Quantities: expression functions against numpy, labels, shape errors and user callables."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from scipy.special import expit
from scipy.special import softmax as scipy_softmax

import interp_assert as ia
from interp_assert.evaluate.evaluation import Evaluation
from interp_assert.evaluate.quantities import apply_function
from interp_assert.labels import Axis, Labelled, expand_labels
from interp_assert.language import parse_expression
from interp_assert.loading.subject import get_subject

RNG = np.random.default_rng(42)
W = RNG.normal(size=(6, 4))
U = RNG.normal(size=(4, 3))
V = RNG.normal(size=4)


def labelled_w() -> Labelled:
    return Labelled(W, (Axis("neuron", tuple(f"N{i}" for i in range(6))), Axis("d_model")))


def evaluate(expression: str, **quantities) -> Labelled:
    """Evaluate an expression over the given quantities (defaults: W, U, V above)."""
    defaults = {"W": labelled_w(), "U": U, "V": V}
    s = ia.subject(quantities={**defaults, **quantities})
    spec = s.claim_file.subject
    evaluation = Evaluation(s.claim_file, get_subject(spec) if spec else None)
    return evaluation.value(parse_expression(expression))


# ---- functions vs numpy ---------------------------------------------------------------------
class TestFunctions:
    def test_norm(self):
        np.testing.assert_allclose(evaluate("norm(W)").values, np.linalg.norm(W, axis=1))
        np.testing.assert_allclose(evaluate("norm(W, neuron)").values,
                                   np.linalg.norm(W, axis=0))
        assert evaluate("norm(W)").axes[0].labels == tuple(f"N{i}" for i in range(6))
        assert evaluate("norm(V)").values == pytest.approx(np.linalg.norm(V))

    def test_cos(self):
        unit = W / np.linalg.norm(W, axis=1, keepdims=True)
        np.testing.assert_allclose(evaluate("cos(W)").values, unit @ unit.T)
        expected = W[0] @ W[3] / (np.linalg.norm(W[0]) * np.linalg.norm(W[3]))
        assert evaluate("cos(N0, N3)").values == pytest.approx(expected)
        np.testing.assert_allclose(evaluate("cos(W, V)").values,
                                   unit @ (V / np.linalg.norm(V)))
        pairwise = evaluate("cos(W)")
        assert pairwise.axes[0].name == "neuron" and pairwise.axes[1].name == "neuron_2"

    def test_softmax(self):
        np.testing.assert_allclose(evaluate("softmax(W)").values, scipy_softmax(W, axis=-1))
        big = np.array([1000.0, 1001.0, 999.0])
        np.testing.assert_allclose(evaluate("softmax(B)", B=big).values, scipy_softmax(big))

    def test_layer_norm(self):
        centred = W - W.mean(axis=-1, keepdims=True)
        expected = centred / np.sqrt(centred.var(axis=-1, keepdims=True) + 1e-5)
        np.testing.assert_allclose(evaluate("layer_norm(W)").values, expected)
        np.testing.assert_allclose(evaluate("ln(W)").values, expected)

    def test_sigmoid_and_elementwise(self):
        np.testing.assert_allclose(evaluate("sigmoid(W)").values, expit(W))
        np.testing.assert_allclose(evaluate("relu(W)").values, np.maximum(W, 0))
        np.testing.assert_allclose(evaluate("abs(W)").values, np.abs(W))
        np.testing.assert_allclose(evaluate("exp(W) - 1").values, np.exp(W) - 1)

    def test_svd(self):
        u, s, vh = np.linalg.svd(W, full_matrices=False)
        np.testing.assert_allclose(evaluate("svd_s(W)").values, s)
        np.testing.assert_allclose(evaluate("singular_values(W)").values, s)
        assert evaluate("svd_s(W)").axes[0].labels == ("S0", "S1", "S2", "S3")
        left, right = evaluate("svd_u(W)"), evaluate("svd_v(W)")
        assert left.shape == (4, 6) and right.shape == (4, 4)
        # singular vectors are defined up to sign: compare the reconstruction and |entries|
        np.testing.assert_allclose(left.values.T @ np.diag(s) @ right.values, W, atol=1e-12)
        np.testing.assert_allclose(np.abs(left.values), np.abs(u.T), atol=1e-12)
        np.testing.assert_allclose(np.abs(right.values), np.abs(vh), atol=1e-12)
        assert left.axes[1].labels == tuple(f"N{i}" for i in range(6))

    @pytest.mark.parametrize("energy", [0.1, 0.5, 0.9, 0.99, 1.0])
    def test_effective_rank(self, energy):
        s = np.linalg.svd(W, compute_uv=False)
        cumulative = np.cumsum(s**2) / np.sum(s**2)
        expected = int(np.searchsorted(cumulative, energy - 1e-12) + 1)
        assert evaluate(f"effective_rank(W, {energy})").scalar() == expected
        low_rank = np.outer(np.arange(1.0, 5.0), np.arange(1.0, 4.0))
        assert evaluate(f"effective_rank(L, {energy})", L=low_rank).scalar() == 1

    def test_orthogonalize(self):
        a, b = W[0], W[1]
        expected = a - (a @ b) / (b @ b) * b
        result = evaluate("orthogonalize(N0, N1)").values
        np.testing.assert_allclose(result, expected)
        assert abs(result @ b) < 1e-12
        rows = evaluate("orthogonalize(W, V)").values
        np.testing.assert_allclose(rows @ V, np.zeros(6), atol=1e-12)

    def test_matmul_and_transpose(self):
        np.testing.assert_allclose(evaluate("W @ U").values, W @ U)
        np.testing.assert_allclose(evaluate("W.T").values, W.T)
        np.testing.assert_allclose(evaluate("Wᵀ @ W").values, W.T @ W)
        np.testing.assert_allclose(evaluate("N2 @ U").values, W[2] @ U)
        assert evaluate("V @ V").values == pytest.approx(V @ V)
        product = evaluate("W @ U")
        assert product.axes[0].labels == tuple(f"N{i}" for i in range(6))
        assert evaluate("W.T").axes[1].name == "neuron"

    def test_arithmetic_and_reductions(self):
        np.testing.assert_allclose(evaluate("2 * W - W / 2 + W ^ 2").values,
                                   2 * W - W / 2 + W**2)
        np.testing.assert_allclose(evaluate("-W").values, -W)
        assert evaluate("mean(W)").scalar() == pytest.approx(W.mean())
        np.testing.assert_allclose(evaluate("max(W, d_model)").values, W.max(axis=1))
        np.testing.assert_allclose(evaluate("std(W, neuron)").values, W.std(axis=0))
        np.testing.assert_allclose(evaluate("sum(W, neurons)").values, W.sum(axis=0))
        np.testing.assert_allclose(evaluate("dot(W, V)").values, W @ V)
        np.testing.assert_allclose(evaluate("unit(W)").values,
                                   W / np.linalg.norm(W, axis=1, keepdims=True))

    def test_apply_function_directly(self):
        x = Labelled(np.array([3.0, 4.0]))
        assert apply_function("norm", [x]).scalar() == 5.0
        with pytest.raises(ia.QuantityError, match=r"norm\(\) takes 1 to 2 argument"):
            apply_function("norm", [x, "a", "b"])

    def test_unknown_function(self):
        with pytest.raises(ia.UnknownNameError, match="did you mean 'norm'"):
            evaluate("nrom(W)")


# ---- indexing -------------------------------------------------------------------------------
class TestIndexing:
    def test_index_by_label(self):
        np.testing.assert_allclose(evaluate("W[N3]").values, W[3])
        np.testing.assert_allclose(evaluate("N3").values, W[3])
        assert evaluate("W[N3, 2]").scalar() == W[3, 2]
        np.testing.assert_allclose(evaluate("W[N3:N5, 1]").values, W[3:6, 1])

    def test_label_slices_include_their_end(self):
        part = evaluate("W[N0:N3]")
        np.testing.assert_allclose(part.values, W[0:4])
        assert part.axes[0].labels == ("N0", "N1", "N2", "N3")
        np.testing.assert_allclose(evaluate("W[N4:]").values, W[4:])
        np.testing.assert_allclose(evaluate("W[:N1]").values, W[:2])
        np.testing.assert_allclose(evaluate("W[:]").values, W)

    def test_positions_on_unlabelled_axes(self):
        np.testing.assert_allclose(evaluate("U[1:2]").values, U[1:3])
        assert evaluate("U[1, 2]").scalar() == U[1, 2]

    def test_negative_single_index(self):
        assert evaluate("V[-1]").scalar() == V[-1]

    def test_two_labelled_axes(self):
        grid = RNG.normal(size=(2, 3))
        g = Labelled(grid, (Axis("layer", ("L0", "L1")), Axis("head", ("H0", "H1", "H2"))))
        assert evaluate("G[L1, H2]", G=g).scalar() == grid[1, 2]
        np.testing.assert_allclose(evaluate("G[L1]", G=g).values, grid[1])
        np.testing.assert_allclose(evaluate("G[H2]", G=g).values, grid[:, 2])

    def test_unknown_label_in_index(self):
        with pytest.raises(ia.UnknownNameError, match="did you mean 'N3'"):
            evaluate("W[N33]")

    def test_backwards_label_slice_is_an_error(self):
        with pytest.raises(ia.InterpAssertError):
            evaluate("W[N3:N1]")


# ---- label specs ----------------------------------------------------------------------------
class TestLabels:
    @pytest.mark.parametrize("spec, expected", [
        ("N0..N3", ["N0", "N1", "N2", "N3"]),
        ("0..9", [str(i) for i in range(10)]),
        ("L{0..1}H{0..2}", ["L0H0", "L0H1", "L0H2", "L1H0", "L1H1", "L1H2"]),
        ("X0..X1, +, Y0", ["X0", "X1", "+", "Y0"]),
        ("X0..X2,=,Y0..Y1", ["X0", "X1", "X2", "=", "Y0", "Y1"]),
        (["a", "b0..b1", 7], ["a", "b0", "b1", "7"]),
        ("N5..N5", ["N5"]),
        ("L{0..1}, out", ["L0", "L1", "out"]),
        ("blocks.{0..1}.attn", ["blocks.0.attn", "blocks.1.attn"]),
    ])
    def test_expand(self, spec, expected):
        assert expand_labels(spec) == expected

    @pytest.mark.parametrize("spec, message", [
        ("N3..N0", "runs backwards"),
        ("a, a", "duplicate labels"),
        ("L{0..1}H{0..1}, L0H0", "duplicate labels"),
    ])
    def test_bad_specs(self, spec, message):
        with pytest.raises(ia.SpecError, match=message):
            expand_labels(spec)

    def test_labels_attach_to_named_axes(self, tmp_path):
        from conftest import save_checkpoint, write_claims

        save_checkpoint(tmp_path / "m.pt")
        path = write_claims(tmp_path / "m.claims.yaml", """
            subject: m.pt
            quantities:
              neurons:
                weight: blocks.0.mlp.W_out
                axes: [neuron, d_model]
                labels: {neuron: N0..N15, d_model: "x, y, z, w"}
              rows: {weight: blocks.0.mlp.W_out, labels: "R{0..3}{0..3}"}
            claims:
              - neurons[N2, z] == blocks.0.mlp.W_out[2, 2]
              - rows[R12] @ rows[R12] > 0
              - mean(norm(neurons[N0:N3])) > 0
        """)
        results = ia.load(path).run()
        assert [r.status for r in results] == ["holds", "holds", "holds"], [
            str(r.error) for r in results]

    def test_label_count_mismatch(self, tmp_path):
        from conftest import save_checkpoint, write_claims

        save_checkpoint(tmp_path / "m.pt")
        path = write_claims(tmp_path / "m.claims.yaml", """
            subject: m.pt
            quantities:
              neurons: {weight: blocks.0.mlp.W_out, labels: N0..N9}
              twisted: {weight: blocks.0.mlp.W_out, axes: [neuron]}
              lost: {weight: readout, axes: [digit], labels: {digits: 0..9}}
            claims:
              - norm(N0) > 0
              - norm(twisted) > 0
        """)
        claim_file = ia.load_claim_file(path)
        assert "unknown axis 'digits'; did you mean 'digit'" in str(
            claim_file.quantity_errors["lost"])
        label_error, axes_error = (r.error for r in ia.load(path).run())
        assert isinstance(label_error, ia.QuantityError)
        assert "axis 'dim0' has 16 entries but 10 labels (N0..N9)" in str(label_error)
        assert "fix the label range" in str(label_error)
        assert "m.claims.yaml:3" in str(label_error)  # where the quantity is defined
        assert isinstance(axes_error, ia.QuantityError)
        assert "has 2 axes (shape (16, 4)) but 'axes' names 1" in str(axes_error)


# ---- shape errors ---------------------------------------------------------------------------
class TestShapeErrors:
    def test_matmul_mismatch(self):
        with pytest.raises(ia.QuantityError, match=r"cannot multiply shapes \(6, 4\) @ \(6, 4\)"):
            evaluate("W @ W")

    def test_broadcast_mismatch(self):
        with pytest.raises(ia.QuantityError, match=r"cannot combine shapes \(6, 4\) and \(3,\)"):
            evaluate("W + X", X=np.ones(3))

    def test_svd_of_a_vector(self):
        with pytest.raises(ia.QuantityError, match="svd needs a matrix"):
            evaluate("svd_s(V)")

    def test_non_scalar_in_a_comparison(self):
        s = ia.subject(quantities={"W": W})
        with pytest.raises(ia.QuantityError, match=r"has shape \(6,\), expected a single"):
            ia.check("norm(W) > 0", s)

    def test_non_numeric_quantity(self, user_project):
        folder, module = user_project
        s = ia.subject("model.pt", base_dir=folder,
                       quantities={"words": {"call": f"{module}:words"}})
        with pytest.raises(ia.QuantityError, match="returned a str, which is not numeric"):
            ia.check("words > 0", s)

    def test_circular_definitions(self, tmp_path):
        from conftest import write_claims

        path = write_claims(tmp_path / "c.claims.yaml", """
            quantities:
              a: b + 1
              b: 2 * a
              ok: "3"
            claims:
              - a > 0
              - ok > 2
        """)
        results = ia.load(path).run()
        assert "circular quantity definition: a -> b -> a" in str(results[0].error)
        assert results[1].passed


# ---- callable quantities --------------------------------------------------------------------
USER_MODULE = '''
import numpy as np


def constant(state_dict):
    return np.arange(4.0)


def nothing():
    return np.arange(4.0)


def half_tensor():
    import torch

    return (torch.arange(4.0, requires_grad=True) * 1.5).to(torch.bfloat16)


def total(state_dict, scale=1.0):
    return float(state_dict["readout"].sum()) * scale


def with_checkpoint(checkpoint):
    return len(checkpoint.state_dict)


def explode(state_dict):
    return _helper(state_dict)


def _helper(state_dict):
    raise ValueError("the user's code exploded")


labels = {"a": 1.0, "b": 2.0, "c": 3.0}


def mapping(state_dict):
    return labels


def words(state_dict):
    return "not a number"


NOT_CALLABLE = 3
'''


@pytest.fixture
def user_project(tmp_path, isolated_imports):
    """A checkpoint plus a uniquely named user module next to it."""
    from conftest import save_checkpoint

    save_checkpoint(tmp_path / "model.pt")
    module = f"usermod_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(USER_MODULE))
    return tmp_path, module


class TestCallables:
    def test_module_function_gets_the_state_dict(self, user_project):
        import torch
        from conftest import tiny_state_dict

        folder, module = user_project
        s = ia.subject("model.pt", base_dir=folder, quantities={
            "total": {"call": f"{module}:total"},
            "scaled": {"call": f"{module}:total", "args": {"scale": 2.0}},
            "count": {"call": f"{module}:with_checkpoint"},
        })
        expected = float(tiny_state_dict()["readout"].sum())
        assert ia.check(f"total ≈ {expected!r} ± 1e-6", s).outcome.value == pytest.approx(
            expected)
        assert ia.check("scaled ≈ 2 * total ± 1e-9", s).passed
        assert ia.check("count == 3", s).passed
        assert torch.is_tensor(tiny_state_dict()["readout"])

    def test_file_form_and_mapping_results(self, user_project):
        folder, module = user_project
        s = ia.subject("model.pt", base_dir=folder, quantities={
            "m": {"call": f"{module}.py:mapping"}})
        result = ia.check("argmax of m over keys is c", s)
        assert result.passed
        s = ia.subject("model.pt", base_dir=folder, quantities={
            "c": {"call": f"{module}.py:constant", "labels": "P0..P3"}})
        assert ia.check("P3 in top 1 of c", s).passed

    def test_in_a_claim_file(self, user_project):
        from conftest import write_claims

        folder, module = user_project
        path = write_claims(folder / "u.claims.yaml", f"""
            subject: model.pt
            quantities:
              total: {{call: "{module}:total"}}
              direct: {{call: "{module}.py:constant"}}
            claims:
              - total > -100
              - max(direct) == 3
        """)
        assert all(r.passed for r in ia.load(path).run())

    def test_user_exception_is_reported_with_the_users_frame(self, user_project):
        folder, module = user_project
        s = ia.subject("model.pt", base_dir=folder, quantities={
            "bad": {"call": f"{module}.py:explode"}})
        with pytest.raises(ia.UserCodeError) as info:
            ia.check("bad > 0", s)
        text = str(info.value)
        assert "ValueError: the user's code exploded" in text
        assert "user traceback" in text
        user_file = str(folder / f"{module}.py")
        raising = '    raise ValueError("the user\'s code exploded")'
        line = USER_MODULE.splitlines().index(raising) + 1
        assert f'File "{user_file}", line {line}, in _helper' in text
        assert "in explode" in text
        assert "interp_assert/" not in info.value.user_traceback

    def test_import_errors(self, user_project):
        folder, module = user_project
        (folder / "broken_mod_x.py").write_text("raise RuntimeError('import-time failure')\n")
        cases = {
            "nosuchmodule_zz:f": (ia.SpecError, "module 'nosuchmodule_zz' not found"),
            f"{module}:totl": (ia.SpecError, "did you mean 'total'"),
            f"{module}:NOT_CALLABLE": (ia.SpecError, "is not callable"),
            "broken_mod_x.py:f": (ia.UserCodeError, "import-time failure"),
        }
        for reference, (kind, message) in cases.items():
            s = ia.subject("model.pt", base_dir=folder, quantities={"q": {"call": reference}})
            with pytest.raises(kind, match=message):
                ia.check("q > 0", s)

    def test_missing_file_is_a_spec_error(self, user_project):
        folder, _ = user_project
        s = ia.subject("model.pt", base_dir=folder,
                       quantities={"q": {"call": "missing_file.py:f"}})
        with pytest.raises(ia.SpecError) as info:
            ia.check("q > 0", s)
        assert not isinstance(info.value, ia.UserCodeError)
        assert "file 'missing_file.py' not found" in str(info.value)

    def test_bad_reference_is_a_spec_error(self, tmp_path):
        with pytest.raises(ia.SpecError, match="must look like"):
            ia.check("q > 0", ia.subject(quantities={"q": {"call": "no_colon"}}))

    def test_callable_without_a_checkpoint(self, user_project):
        folder, module = user_project
        s = ia.subject(base_dir=folder, quantities={"c": {"call": f"{module}:nothing"}})
        assert ia.check("max(c) == 3", s).passed

    def test_a_returned_tensor_comes_to_the_host_as_numpy(self, user_project):
        from interp_assert.evaluate.quantities.builtin import host_value

        folder, module = user_project
        s = ia.subject(base_dir=folder, quantities={"h": {"call": f"{module}:half_tensor"}})
        assert ia.check("max(h) ≈ 4.5 ± 1e-9", s).passed  # 3 × 1.5 is exact in bfloat16
        import torch

        value = host_value(torch.arange(3.0, dtype=torch.float16, requires_grad=True) * 2)
        assert isinstance(value, np.ndarray) and value.dtype == np.float32
        np.testing.assert_array_equal(value, [0.0, 2.0, 4.0])
        assert host_value(torch.arange(3, dtype=torch.float64)).dtype == np.float64
        assert host_value([1, 2]) == [1, 2]


# ---- caching ------------------------------------------------------------------------------
def test_expression_cache_is_not_shared_between_different_definitions():
    first = ia.subject(quantities={"W": np.array([3.0, 4.0]), "n": "norm(W)"})
    assert ia.check("n ≈ 5 ± 1e-9", first).passed
    second = ia.subject(quantities={"W": np.array([6.0, 8.0]), "n": "norm(W)"})
    assert ia.check("n ≈ 10 ± 1e-9", second).passed


def test_expression_cache_across_claim_files(tmp_path):
    import torch
    from conftest import save_checkpoint, write_claims

    save_checkpoint(tmp_path / "m.pt", {"a": torch.tensor([3.0, 4.0]),
                                        "b": torch.tensor([6.0, 8.0])})
    for name, weight, expected in (("a", "a", 5), ("b", "b", 10)):
        write_claims(tmp_path / f"{name}.claims.yaml", f"""
            subject: m.pt
            quantities:
              x: {{weight: {weight}}}
              n: norm(x)
            claims:
              - n ≈ {expected} ± 0.001
        """)
    statuses = [r.status for name in "ab" for r in ia.load(tmp_path / f"{name}.claims.yaml").run()]
    assert statuses == ["holds", "holds"]
