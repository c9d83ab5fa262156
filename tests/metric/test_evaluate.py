"""Evaluating a tiny net on list files: embeddings equal the hand-computed features of
training's preprocessing, and the metrics follow."""

from __future__ import annotations

import numpy as np
import pytest

from caffe2torch.errors import CaffeError, DataError
from caffe2torch.metric import evaluate as ev
from tests.metric.conftest import Work


def _net(work: Work, lists, **kw):
    return ev.load_metric_net(work.train_test, str(work.weights), lists=lists, **kw)


def test_embeddings_use_the_data_layer_preprocessing(work: Work):
    name = work.write("one.txt", [f"{work.paths[0]} 0"])
    net, pre = _net(work, [name])
    assert pre.input_blob == "data" and pre.new_height == 8 and pre.is_color
    assert float(pre.transform.scale) == pytest.approx(1 / 256)
    assert ev.default_feature_blob(net) == "feat"  # the ContrastiveLoss's first bottom
    emb = ev.embed_images(net, work.paths, preprocess=pre)
    want = np.stack([work.expected(i) for i in range(len(work.paths))])
    np.testing.assert_allclose(emb, want, rtol=1e-5)
    # any batch size (the last batch padded) gives the same rows
    np.testing.assert_allclose(ev.embed_images(net, work.paths, batch=5), emb, rtol=1e-6)


def test_arrays_go_through_the_same_preprocessing(work: Work):
    import cv2

    name = work.write("one.txt", [f"{work.paths[0]} 0"])
    net, pre = _net(work, [name])
    images = np.stack([cv2.imread(p) for p in work.paths[:3]])
    np.testing.assert_allclose(ev.embed_images(net, images, "feat", preprocess=pre),
                               ev.embed_images(net, work.paths[:3], "feat", preprocess=pre))


def test_deploy_net_with_preprocessing_from_the_train_net(work: Work):
    net, pre = ev.load_metric_net(work.deploy, str(work.weights),
                                  preprocess_from=work.train_test)
    assert pre.input_blob == "data"
    assert ev.default_feature_blob(net) == "feat"  # the deploy net's one output
    emb = ev.embed_images(net, work.paths, preprocess=pre)
    np.testing.assert_allclose(emb[1], work.expected(1), rtol=1e-5)
    # without it the deploy net has no transform: raw pixel values, resized to 8 x 8
    raw, plain = ev.load_metric_net(work.deploy, str(work.weights))
    assert float(plain.transform.scale) == 1 and (plain.new_height, plain.new_width) == (8, 8)
    np.testing.assert_allclose(ev.embed_images(raw, work.paths[1:2], preprocess=plain)[0],
                               work.expected(1) * 256, rtol=1e-5)


def _pairs(work: Work):
    # every pair of distinct images, both lines carrying the pair label
    n = len(work.paths)
    i, j = np.triu_indices(n, 1)
    same = (work.labels[i] == work.labels[j]).astype(int)
    l1 = work.write("pairs1.txt", [f"{work.paths[a]} {s}" for a, s in zip(i, same)])
    l2 = work.write("pairs2.txt", [f"{work.paths[b]} {s}" for b, s in zip(j, same)])
    return l1, l2, i, j, same


def test_evaluate_pairs(work: Work):
    l1, l2, i, j, same = _pairs(work)
    net, pre = _net(work, [l1])
    r = ev.evaluate_pairs(net, l1, l2, seed=3, preprocess=pre)
    d = np.array([np.linalg.norm(work.expected(a) - work.expected(b)) for a, b in zip(i, j)])
    np.testing.assert_allclose(r.distances, d, rtol=1e-5)
    assert r.n_pairs == 28 and r.n_validation == 14 and r.n_scored == 14
    assert r.auc == 1.0 and r.eer == 0.0 and r.accuracy == 1.0
    assert d[same == 1].max() < r.threshold < d[same == 0].min()
    assert r.embeddings.shape == (8, 2)  # each image once
    with_val = ev.evaluate_pairs(net, l1, l2, val_lists=(l1, l2), preprocess=pre)
    assert with_val.n_validation == with_val.n_scored == 28


def test_evaluate_triplets_and_retrieval(work: Work):
    triplets = [(0, 1, 4), (1, 2, 5), (4, 5, 0), (5, 6, 3)]  # anchor, positive, negative
    a, p, n = (work.write(f"{role}.txt", [f"{work.paths[t[k]]} {work.labels[t[k]]}"
                                          for t in triplets])
               for k, role in enumerate(("a", "p", "n")))
    net, pre = _net(work, [a])
    r = ev.evaluate_triplets(net, a, p, n, preprocess=pre)
    assert r.n_triplets == 4
    assert r.accuracy.overall == 1.0 and r.accuracy.per_class == {0: 1.0, 1: 1.0}
    assert sorted(r.labels.tolist()) == [0, 0, 0, 0, 1, 1, 1]  # images 0 to 6, once each
    # every triplet of those 7 images, against the direct count
    from caffe2torch.metric import all_triplets_accuracy

    assert r.every_triplet == all_triplets_accuracy(r.embeddings, r.labels)
    assert set(r.every_triplet.per_class) == {0, 1}
    # a negative nearer than the positive: anchor 0 (dark) vs bright positive 4
    bad = work.write("bad_p.txt", [f"{work.paths[4]} 0"])
    one_a = work.write("one_a.txt", [f"{work.paths[0]} 0"])
    one_n = work.write("one_n.txt", [f"{work.paths[1]} 1"])
    lone = ev.evaluate_triplets(net, one_a, bad, one_n, preprocess=pre)
    assert lone.accuracy.overall == 0
    assert lone.every_triplet is not None and lone.every_triplet.per_class.keys() == {0}
    listed = work.write("all.txt", [f"{x} {c}" for x, c in zip(work.paths, work.labels)])
    q = ev.evaluate_retrieval(net, listed, ks=(1, 3, 100), preprocess=pre)
    assert q.recall == {1: 1.0, 3: 1.0, 100: 1.0} and q.map == 1.0
    assert q.n_queries == 8 and q.n_gallery == 7
    # against a gallery of the other class only: nothing to retrieve
    other = work.write("g.txt", [f"{x} 1" for x in work.paths[4:]])
    zeros = work.write("q.txt", [f"{x} 0" for x in work.paths[:4]])
    with pytest.raises(DataError, match="relevant"):
        ev.evaluate_retrieval(net, zeros, other, preprocess=pre)


@pytest.mark.parametrize("case,line1,line2,where,message", [
    ("label", "{p0} 2", "{p1} 2", "pairs1.txt:1", "not 0"),
    ("misaligned", "{p0} 1", "{p1} 0", "pairs2.txt:1", "not aligned"),
], ids=["label-not-0-1", "misaligned"])
def test_pair_list_errors(work: Work, case, line1, line2, where, message):
    p0, p1 = work.paths[:2]
    l1 = work.write("pairs1.txt", [f"{p0} 1", line1.format(p0=p0)])
    l2 = work.write("pairs2.txt", [f"{p1} 1", line2.format(p1=p1)])
    with pytest.raises(DataError) as err:
        ev.read_pair_lists(l1, l2)
    assert err.value.location() == where.replace(":1", ":2")
    assert message in err.value.message


def test_lists_of_different_lengths(work: Work):
    l1 = work.write("pairs1.txt", [f"{work.paths[0]} 1"] * 3)
    l2 = work.write("pairs2.txt", [f"{work.paths[1]} 1"] * 2)
    with pytest.raises(DataError, match=r"3 lines but pairs2\.txt has 2") as err:
        ev.read_pair_lists(l1, l2)
    assert err.value.location() == "pairs2.txt:3"


def test_triplet_positive_of_another_class(work: Work):
    a = work.write("a.txt", [f"{work.paths[0]} 0", f"{work.paths[1]} 0"])
    p = work.write("p.txt", [f"{work.paths[1]} 0", f"{work.paths[5]} 1"])
    n = work.write("n.txt", [f"{work.paths[4]} 1", f"{work.paths[6]} 1"])
    with pytest.raises(DataError, match="positive's class 1 differs") as err:
        ev.read_triplet_lists(a, p, n)
    assert err.value.location() == "p.txt:2"


def test_missing_image_names_the_list_line(work: Work):
    l1 = work.write("pairs1.txt", [f"{work.paths[0]} 1", "images/nope.png 1"])
    l2 = work.write("pairs2.txt", [f"{work.paths[1]} 1", f"{work.paths[2]} 1"])
    net, pre = _net(work, [l1])
    with pytest.raises(DataError) as err:
        ev.evaluate_pairs(net, l1, l2, preprocess=pre)
    assert err.value.location() == "pairs1.txt:2" and "nope.png" in err.value.message


def test_unknown_feature_blob(work: Work):
    name = work.write("one.txt", [f"{work.paths[0]} 0"])
    net, _ = _net(work, [name])
    with pytest.raises(CaffeError, match="no blob 'feet'") as err:
        ev.embed_images(net, work.paths[:1], "feet")
    assert "feat" in err.value.hint
