"""dphelpers.evaluation.cache: load-or-compute keyed by settings, file content and tensors."""
import pytest
import torch

from dphelpers.evaluation import cache


def test_load_or_compute_computes_once_and_reads_back(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"losses": [1.0, 0.5], "x": torch.arange(3.0), "note": "made"}

    v1, loaded1 = cache.load_or_compute("demo", {"steps": 2}, compute, tmp_path)
    v2, loaded2 = cache.load_or_compute("demo", {"steps": 2}, compute, tmp_path)
    assert (loaded1, loaded2) == (False, True) and len(calls) == 1
    assert v2["losses"] == v1["losses"] and torch.equal(v2["x"], v1["x"])
    _, loaded3 = cache.load_or_compute("demo", {"steps": 3}, compute, tmp_path)
    assert not loaded3 and len(calls) == 2                 # other settings: computed again
    assert not list(tmp_path.glob("*.tmp"))                 # no half-written file left


def test_key_ignores_order_and_env_off(tmp_path, monkeypatch):
    assert cache.cache_key({"a": 1, "b": 2}) == cache.cache_key({"b": 2, "a": 1})
    assert cache.cache_key({"a": 1}) != cache.cache_key({"a": 2})
    monkeypatch.setenv(cache.CACHE_ENV, "off")
    assert cache.cache_dir() is None
    calls = []
    for _ in range(2):
        cache.load_or_compute("demo", {}, lambda: calls.append(1) or 1)
    assert len(calls) == 2
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    assert cache.cache_dir() == tmp_path


def test_digests(tmp_path):
    f = tmp_path / "m.pt"
    f.write_bytes(b"abc")
    d = cache.file_digest(f)
    assert d == cache.file_digest(f) and len(d) == 64
    f.write_bytes(b"abcd")
    assert cache.file_digest(f) != d                        # content (size, mtime) changed
    a = torch.zeros(2, 3)
    assert cache.tensor_digest(a) == cache.tensor_digest(torch.zeros(2, 3))
    assert cache.tensor_digest(a) != cache.tensor_digest(torch.zeros(3, 2))
    assert cache.tensor_digest(a) != cache.tensor_digest(a.double())


def test_bad_name_and_damaged_file(tmp_path):
    with pytest.raises(ValueError, match="letters"):
        cache.load_or_compute("a/b", {}, lambda: 1, tmp_path)
    cache.load_or_compute("demo", {}, lambda: 1, tmp_path)
    (path,) = tmp_path.glob("demo-*.pt")
    path.write_bytes(b"not a torch file")
    value, loaded = cache.load_or_compute("demo", {}, lambda: 2, tmp_path)
    assert (value, loaded) == (2, False)


def test_cached_evaluate_equals_evaluate(tmp_path, splits):
    from dphelpers.diffusion import DiffPose, DiffPoseConfig
    from dphelpers.evaluation.evaluate import evaluate
    from dphelpers.pipeline import make_test_set

    torch.manual_seed(0)
    model = DiffPose(DiffPoseConfig()).eval()
    model_file = tmp_path / "model.pt"
    torch.save(model.state_dict(), model_file)
    test = make_test_set(splits[1], 2)
    plain = evaluate(model, test, 3, 2, seed=0, progress=False, keep=True)
    first, loaded1 = cache.cached_evaluate(model, model_file, test, 3, 2, keep=True,
                                           folder=tmp_path)
    again, loaded2 = cache.cached_evaluate(model, model_file, test, 3, 2, keep=True,
                                           folder=tmp_path)
    assert (loaded1, loaded2) == (False, True)
    for ev in (first, again):
        assert torch.equal(ev.p1_min, plain.p1_min) and ev.n_hypo == 3
        assert torch.equal(ev.predictions, plain.predictions)
    _, in_memory = cache.cached_evaluate(model, None, test, 3, 2, folder=tmp_path)
    assert not in_memory


def test_package_digest_is_stable():
    assert cache.package_digest() == cache.package_digest()


def test_code_text_ignores_documentation_but_not_code():
    """A docstring, a comment or the layout changes nothing cached; any code change does."""
    base = ('"""Module doc."""\nimport torch\n\n\ndef f(x):\n    """Doc."""\n    return x + 1\n\n\n'
            'class C:\n    """Doc."""\n    y = 2\n')
    documented = base.replace('"""Doc."""', '"""Better words, several\n    lines."""')
    commented = base.replace("return x + 1", "return x + 1   # one more").replace("\n\n\n", "\n\n")
    assert cache.code_text(documented) == cache.code_text(base)
    assert cache.code_text(commented) == cache.code_text(base)
    assert cache.code_text(base.replace("x + 1", "x + 2")) != cache.code_text(base)
    assert cache.code_text(base.replace("y = 2", "y = 3")) != cache.code_text(base)
    # a function whose body is only its docstring keeps a body (pass) and stays valid
    only_doc = 'def g():\n    """Only a docstring."""\n'
    assert "Pass" in cache.code_text(only_doc)
