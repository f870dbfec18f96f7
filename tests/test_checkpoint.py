"""Checkpoints: formats, broken files, the pickle opt-in, missing tensors and load-once."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest
import torch
from conftest import save_checkpoint, tiny_state_dict, write_claims

import interp_assert as ia
from interp_assert.loading.checkpoint import STATE_DICT_KEYS, load_checkpoint
from interp_assert.loading.subject import SubjectSpec, get_subject


class Opaque:
    """A class that only full unpickling can rebuild."""

    def __init__(self, value: int) -> None:
        self.value = value


def run_file(path: Path) -> list[ia.ClaimResult]:
    return ia.load(path).run()


def norm_claims(checkpoint: str, extra_subject: str = "") -> str:
    expected = float(tiny_state_dict()["readout"].double().norm())
    return f"""
        subject:
          checkpoint: {checkpoint}
        {extra_subject}
        quantities:
          AV: {{weight: readout, axes: [digit], labels: {{digit: 0..9}}}}
        claims:
          - id: norm
            claim: norm(AV) ≈ {expected!r} ± 1e-5
          - id: argmax
            claim: argmax of AV over digits is 9
    """


# ---- formats ------------------------------------------------------------------------------
class TestFormats:
    def test_plain_state_dict(self, tmp_path):
        save_checkpoint(tmp_path / "m.pt")
        checkpoint = load_checkpoint(tmp_path / "m.pt")
        reference = tiny_state_dict()
        assert list(checkpoint.state_dict) == list(reference)
        for key, tensor in reference.items():
            assert torch.equal(checkpoint.state_dict[key], tensor)
        assert checkpoint.metadata == {}
        results = run_file(write_claims(tmp_path / "m.claims.yaml", norm_claims("m.pt")))
        assert [r.status for r in results] == ["holds", "holds"]

    @pytest.mark.parametrize("wrap", STATE_DICT_KEYS)
    def test_wrapped_state_dict_with_metadata(self, tmp_path, wrap):
        save_checkpoint(tmp_path / "m.pt", wrap=wrap, epoch=3, config={"d_model": 4},
                        accuracy=torch.tensor(0.5))
        checkpoint = load_checkpoint(tmp_path / "m.pt")
        assert set(checkpoint.state_dict) == set(tiny_state_dict())
        assert checkpoint.metadata["epoch"] == 3
        assert checkpoint.metadata["config"] == {"d_model": 4}
        assert wrap not in checkpoint.metadata
        results = run_file(write_claims(tmp_path / "m.claims.yaml", norm_claims("m.pt")))
        assert all(r.passed for r in results), [str(r.error) for r in results]

    def test_top_level_tensors_mixed_with_metadata(self, tmp_path):
        torch.save({"w": torch.ones(2), "step": 7}, tmp_path / "m.pt")
        checkpoint = load_checkpoint(tmp_path / "m.pt")
        assert list(checkpoint.state_dict) == ["w"]
        assert checkpoint.metadata == {"step": 7}

    def test_safetensors(self, tmp_path):
        from safetensors.torch import save_file

        save_file(tiny_state_dict(), str(tmp_path / "m.safetensors"))
        checkpoint = load_checkpoint(tmp_path / "m.safetensors")
        assert set(checkpoint.state_dict) == set(tiny_state_dict())
        results = run_file(write_claims(tmp_path / "m.claims.yaml",
                                        norm_claims("m.safetensors")))
        assert all(r.passed for r in results), [str(r.error) for r in results]

    def test_sha256_identifies_the_file(self, tmp_path):
        save_checkpoint(tmp_path / "m.pt")
        digest = hashlib.sha256((tmp_path / "m.pt").read_bytes()).hexdigest()
        assert load_checkpoint(tmp_path / "m.pt").sha256 == digest
        results = run_file(write_claims(tmp_path / "m.claims.yaml", norm_claims("m.pt")))
        assert results[0].sha256 == digest
        assert results[0].subject == "m.pt"

    def test_a_checkpoint_is_hashed_once_per_process(self, tmp_path, monkeypatch):
        """The checkpoint's identity and the result cache's key read one memo: the file's
        bytes are read for hashing once (a file changed in the last seconds is hashed again:
        its timestamp cannot tell a rewrite apart)."""
        import os

        from interp_assert.evaluate.cache_keys import path_digest
        from interp_assert.loading import digests

        path = save_checkpoint(tmp_path / "m.pt")
        old = path.stat().st_mtime - 60
        os.utime(path, (old, old))
        reads: list[str] = []

        def counted(name, *args, **kwargs):
            reads.append(str(name))
            return open(name, *args, **kwargs)

        monkeypatch.setattr(digests, "open", counted, raising=False)
        expected = hashlib.sha256(path.read_bytes()).hexdigest()
        assert load_checkpoint(path).sha256 == expected
        assert load_checkpoint(path).sha256 == expected
        assert path_digest(path) == expected
        assert reads == [str(path)]

    def test_paths_are_relative_to_the_claim_file(self, tmp_path):
        save_checkpoint(tmp_path / "weights" / "m.pt")
        path = write_claims(tmp_path / "claims" / "m.claims.yaml", norm_claims("../weights/m.pt"))
        assert all(r.passed for r in run_file(path))


# ---- broken files ---------------------------------------------------------------------------
class TestBrokenFiles:
    def test_missing_file(self, tmp_path):
        with pytest.raises(ia.CheckpointError, match="checkpoint not found") as info:
            load_checkpoint(tmp_path / "nope.pt")
        assert "relative to the claim file" in info.value.hint
        results = run_file(write_claims(tmp_path / "m.claims.yaml", norm_claims("nope.pt")))
        for result in results:
            assert isinstance(result.error, ia.CheckpointError)
            assert "nope.pt" in str(result.error)
            assert "m.claims.yaml" in str(result.error)

    def test_folder(self, tmp_path):
        with pytest.raises(ia.CheckpointError, match="is not a Hugging Face model folder: it "
                                                     r"has no config\.json"):
            load_checkpoint(tmp_path)

    @pytest.mark.parametrize("cut", [0, 10, 0.5, -20])
    def test_truncated_torch_file(self, tmp_path, cut):
        save_checkpoint(tmp_path / "full.pt")
        data = (tmp_path / "full.pt").read_bytes()
        end = int(len(data) * cut) if isinstance(cut, float) else (cut if cut >= 0 else len(data)
                                                                    + cut)
        (tmp_path / "m.pt").write_bytes(data[:end])
        for allow in (False, True):
            with pytest.raises(ia.CheckpointError, match="truncated or corrupt"):
                load_checkpoint(tmp_path / "m.pt", allow_pickle=allow)

    def test_garbage_bytes(self, tmp_path):
        (tmp_path / "m.pt").write_bytes(bytes(range(256)) * 4)
        for allow in (False, True):
            with pytest.raises(ia.CheckpointError, match=r"m\.pt"):
                load_checkpoint(tmp_path / "m.pt", allow_pickle=allow)

    def test_garbage_bytes_are_not_called_a_pickle(self, tmp_path):
        (tmp_path / "m.pt").write_bytes(b"\x00this is not a checkpoint" * 8)
        with pytest.raises(ia.CheckpointError) as info:
            load_checkpoint(tmp_path / "m.pt")
        assert "allow_pickle" not in str(info.value)
        assert "corrupt" in str(info.value)

    @pytest.mark.parametrize("content", [b"", b"{}", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
    def test_broken_safetensors(self, tmp_path, content):
        (tmp_path / "m.safetensors").write_bytes(content)
        with pytest.raises(ia.CheckpointError, match="not a readable safetensors file"):
            load_checkpoint(tmp_path / "m.safetensors")

    def test_truncated_safetensors(self, tmp_path):
        from safetensors.torch import save_file

        save_file(tiny_state_dict(), str(tmp_path / "full.safetensors"))
        data = (tmp_path / "full.safetensors").read_bytes()
        (tmp_path / "m.safetensors").write_bytes(data[:-7])
        with pytest.raises(ia.CheckpointError, match="not a readable safetensors file"):
            load_checkpoint(tmp_path / "m.safetensors")

    @pytest.mark.parametrize("content", [{"epoch": 3}, {}, [1, 2]])
    def test_no_state_dict(self, tmp_path, content):
        torch.save(content, tmp_path / "m.pt")
        with pytest.raises(ia.CheckpointError, match="holds no state dict") as info:
            load_checkpoint(tmp_path / "m.pt")
        assert "model_state_dict" in info.value.hint

    def test_a_broken_checkpoint_is_reported_per_claim_not_raised(self, tmp_path):
        (tmp_path / "m.pt").write_bytes(b"PK\x03\x04 truncated zip")
        results = run_file(write_claims(tmp_path / "m.claims.yaml", norm_claims("m.pt")))
        assert [r.status for r in results] == ["error", "error"]
        assert all(isinstance(r.error, ia.CheckpointError) for r in results)


# ---- pickles ------------------------------------------------------------------------------
class TestPickle:
    @pytest.fixture(params=["module", "custom-class", "module-under-model"])
    def pickled(self, request, tmp_path):
        torch.manual_seed(0)
        linear = torch.nn.Linear(4, 10)
        if request.param == "module":
            obj = linear
        elif request.param == "custom-class":
            obj = {"readout": torch.linspace(-1.0, 2.0, 10), "extra": Opaque(3)}
        else:
            obj = {"model": linear, "epoch": 1}
        torch.save(obj, tmp_path / "m.pt")
        return tmp_path / "m.pt", request.param

    def test_refused_without_allow_pickle(self, pickled):
        path, _ = pickled
        with pytest.raises(ia.CheckpointError) as info:
            load_checkpoint(path)
        assert "needs full unpickling" in info.value.message
        assert "allow_pickle: true" in info.value.hint

    def test_accepted_with_allow_pickle(self, pickled):
        path, kind = pickled
        checkpoint = load_checkpoint(path, allow_pickle=True)
        if kind == "custom-class":
            assert isinstance(checkpoint.metadata["extra"], Opaque)
            assert list(checkpoint.state_dict) == ["readout"]
        else:
            assert set(checkpoint.state_dict) == {"weight", "bias"}
        if kind == "module-under-model":
            assert checkpoint.metadata == {"epoch": 1}

    def test_claim_file_opt_in(self, tmp_path):
        torch.save({"readout": torch.linspace(-1.0, 2.0, 10), "extra": Opaque(3)},
                   tmp_path / "m.pt")
        refused = write_claims(tmp_path / "a.claims.yaml", """
            subject: m.pt
            quantities:
              AV: {weight: readout}
            claims:
              - argmax of AV over dim0 is 9
        """)
        allowed = write_claims(tmp_path / "b.claims.yaml", """
            subject:
              checkpoint: m.pt
              allow_pickle: true
            quantities:
              AV: {weight: readout}
            claims:
              - argmax of AV over dim0 is 9
              - argmax of readout over dim0 is 9
        """)
        [result] = run_file(refused)
        assert isinstance(result.error, ia.CheckpointError)
        assert "allow_pickle: true" in str(result.error)
        assert all(r.passed for r in run_file(allowed))

    def test_load_failure_is_not_hidden_behind_unknown_name(self, tmp_path):
        torch.save(torch.nn.Linear(2, 2), tmp_path / "m.pt")
        path = write_claims(tmp_path / "m.claims.yaml", """
            subject: m.pt
            claims:
              - norm(readout) > 0
        """)
        [result] = run_file(path)
        assert isinstance(result.error, ia.CheckpointError)

    def test_allow_pickle_must_be_boolean(self, tmp_path):
        path = write_claims(tmp_path / "m.claims.yaml", """
            subject: {checkpoint: m.pt, allow_pickle: "yes please"}
            claims: [x > 0]
        """)
        with pytest.raises(ia.SpecError, match="allow_pickle' must be true or false"):
            ia.load(path)

    @pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
    def test_plain_pickle_module_file_is_refused(self, tmp_path):
        with open(tmp_path / "m.pt", "wb") as handle:
            pickle.dump({"w": Opaque(1)}, handle)
        with pytest.raises(ia.CheckpointError):
            load_checkpoint(tmp_path / "m.pt")

    def test_refusal_message_is_plain_text(self, tmp_path):
        torch.save(torch.nn.Linear(2, 2), tmp_path / "m.pt")
        with pytest.raises(ia.CheckpointError) as info:
            load_checkpoint(tmp_path / "m.pt")
        assert "\x1b" not in str(info.value)


# ---- missing tensors ----------------------------------------------------------------------
class TestMissingTensor:
    def test_checkpoint_tensor_names_near_matches(self, tmp_path):
        save_checkpoint(tmp_path / "m.pt")
        checkpoint = load_checkpoint(tmp_path / "m.pt")
        with pytest.raises(ia.CheckpointError) as info:
            checkpoint.tensor("blocks.0.mlp.W_ot")
        assert "no tensor 'blocks.0.mlp.W_ot'; did you mean 'blocks.0.mlp.W_out'" in str(
            info.value)
        assert "it holds 3 tensors" in info.value.hint

    def test_weight_quantity_names_near_matches(self, tmp_path):
        save_checkpoint(tmp_path / "m.pt")
        path = write_claims(tmp_path / "m.claims.yaml", """
            subject: m.pt
            quantities:
              neurons: {weight: blocks.0.mlp.W_ot}
            claims:
              - id: typo
                claim: max(norm(neurons)) > 0
              - id: direct
                claim: norm(unembed.W_V) > 0
              - id: fine
                claim: norm(readout) > 0
        """)
        typo, direct, fine = run_file(path)
        assert isinstance(typo.error, ia.CheckpointError)
        assert "has no weight 'blocks.0.mlp.W_ot'; did you mean 'blocks.0.mlp.W_out'" in str(
            typo.error)
        assert "m.claims.yaml:3" in str(typo.error)
        assert isinstance(direct.error, ia.CheckpointError)
        assert "did you mean 'unembed.W_U'" in str(direct.error)
        assert fine.passed

    def test_unknown_plain_name(self, tmp_path):
        save_checkpoint(tmp_path / "m.pt")
        path = write_claims(tmp_path / "m.claims.yaml", """
            subject: m.pt
            claims:
              - norm(readot) > 0
        """)
        [result] = run_file(path)
        assert isinstance(result.error, ia.UnknownNameError)
        assert "unknown name 'readot'" in str(result.error)
        assert "did you mean 'readout'" in str(result.error)


# ---- loaded once ---------------------------------------------------------------------------
@pytest.fixture
def load_counter(monkeypatch):
    """Counts torch.load and safetensors calls made while loading checkpoints."""
    calls: list[str] = []
    original = torch.load

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return calls


class TestLoadOnce:
    def test_many_claims_and_files_load_once(self, tmp_path, load_counter):
        save_checkpoint(tmp_path / "m.pt")
        paths = [write_claims(tmp_path / f"{name}.claims.yaml", norm_claims("m.pt"))
                 for name in ("a", "b", "c")]
        for path in paths:
            assert all(r.passed for r in run_file(path))
        for path in paths:  # a second run reuses the loaded subject too
            run_file(path)
        assert load_counter == [str(tmp_path / "m.pt")]

    def test_equal_specs_share_one_subject(self, tmp_path, load_counter):
        save_checkpoint(tmp_path / "m.pt")
        spec = SubjectSpec(checkpoint=tmp_path / "m.pt", search_path=(tmp_path,))
        same = SubjectSpec(checkpoint=tmp_path / "m.pt", search_path=(tmp_path,))
        assert get_subject(spec) is get_subject(same)
        get_subject(spec).weight("readout")
        get_subject(same).weight("readout")
        assert len(load_counter) == 1

    def test_a_failure_is_remembered(self, tmp_path, load_counter):
        (tmp_path / "m.pt").write_bytes(b"PK\x03\x04 broken")
        path = write_claims(tmp_path / "m.claims.yaml", norm_claims("m.pt"))
        run_file(path)
        run_file(path)
        assert len(load_counter) == 1

    def test_allow_pickle_is_a_different_subject(self, tmp_path, load_counter):
        save_checkpoint(tmp_path / "m.pt")
        write_claims(tmp_path / "a.claims.yaml", norm_claims("m.pt"))
        write_claims(tmp_path / "b.claims.yaml", norm_claims("m.pt", "  allow_pickle: true"))
        run_file(tmp_path / "a.claims.yaml")
        run_file(tmp_path / "b.claims.yaml")
        assert len(load_counter) == 2

    def test_claim_files_in_different_folders_load_once(self, tmp_path, load_counter):
        save_checkpoint(tmp_path / "m.pt")
        run_file(write_claims(tmp_path / "a.claims.yaml", norm_claims("m.pt")))
        run_file(write_claims(tmp_path / "sub" / "b.claims.yaml", norm_claims("../m.pt")))
        ia.check("norm(readout) > 0", ia.subject("m.pt", base_dir=tmp_path))
        assert len(load_counter) == 1


def test_weights_are_held_once_after_the_model_loads(tmp_path: Path) -> None:
    """Once the loader has built the model, the state dict holds the model's own tensors
    (same storage) wherever the model kept them unchanged, so the weights are not held twice;
    a weight the loader changed keeps the file's values."""
    from interp_assert.loading.subject import LoadedSubject

    root = Path(__file__).resolve().parents[1]
    tiny = pytest.importorskip("examples.tiny_transformer")
    torch.manual_seed(0)
    model = tiny.TinyTransformer(tiny.TinyConfig(n_layers=1, d_model=8, n_heads=2, d_head=4,
                                                 d_mlp=8, d_vocab=11, n_ctx=6))
    path = tmp_path / "model.pt"
    tiny.save_checkpoint(path, model)
    (tmp_path / "scaled.py").write_text(
        "from examples.tiny_transformer import load as _load\n"
        "def load(raw):\n"
        "    model = _load(raw)\n"
        "    model.unembed.W_U.data.mul_(2.0)\n"
        "    return model\n")
    on_file = torch.load(path, weights_only=True)["model_state_dict"]
    for loader, changed in (("examples.tiny_transformer:load", set()),
                            ("scaled:load", {"unembed.W_U"})):
        subject = LoadedSubject(SubjectSpec(checkpoint=path, loader=loader,
                                            search_path=(tmp_path, root)))
        loaded = subject.model
        params = dict(loaded.named_parameters())
        assert set(on_file) <= set(subject.checkpoint.state_dict)
        for name, tensor in on_file.items():
            held = subject.weight(name)
            assert torch.equal(held, tensor), name
            if name in params and name not in changed:
                assert held.data_ptr() == params[name].data_ptr(), name
                assert subject.checkpoint.raw["model_state_dict"][name] is held
            elif name in changed:
                assert held.data_ptr() != params[name].data_ptr()
                assert torch.equal(params[name].detach(), 2.0 * tensor)
