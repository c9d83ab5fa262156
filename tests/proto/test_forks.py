"""proto/forks.py: which fork a type or field the BVLC schema lacks comes from."""

from __future__ import annotations

from caffe2torch.proto.forks import fork_of_field, fork_of_layer_type


def test_bn_names_every_fork_that_defines_it() -> None:
    # one type and one bn_param in three forks (PSPNet, TSN's yjxiong/caffe, dgd_person_reid's
    # Cysu/caffe): a user of any of them should recognise their fork in the message
    for where in (fork_of_layer_type("BN"), fork_of_field("LayerParameter", "bn_param")):
        assert where is not None
        for fork in ("hszhao/PSPNet", "yjxiong/caffe", "Cysu/caffe"):
            assert fork in where
    assert fork_of_layer_type("Interp") == "hszhao/PSPNet (also DeepLab-v2)"


def test_dgd_person_reid_fields_name_their_fork() -> None:
    from caffe2torch.proto.forks import fork_of_foreign

    assert fork_of_foreign("NetParameter", "richness") == "Cysu/caffe (dgd_person_reid)"
    assert fork_of_foreign("DataParameter", "shuffle_pool_size") == "Cysu/caffe (dgd_person_reid)"
    crop = fork_of_foreign("TransformationParameter", "crop_height") or ""
    assert "Cysu/caffe" in crop and "PSPNet" in crop
    assert fork_of_foreign("TransformationParameter", "crop_width") == crop


# RefineDet's MultiBoxLoss and DetectionOutput, as its generators write them (field 24 of
# both messages in sfzhang15/RefineDet's caffe.proto)
REFINEDET_LOSS = """name: "arm"
input: "loc" input_shape { dim: 2 dim: 8 }
input: "conf" input_shape { dim: 2 dim: 4 }
input: "prior" input_shape { dim: 1 dim: 2 dim: 8 }
input: "label" input_shape { dim: 1 dim: 1 dim: 1 dim: 8 }
layer { name: "arm_loss" type: "MultiBoxLoss" bottom: "loc" bottom: "conf"
        bottom: "prior" bottom: "label" top: "arm_loss"
        multibox_loss_param { num_classes: 2 objectness_score: 0.01 } }
"""


def test_refinedet_objectness_score_names_its_fork(tmp_path) -> None:
    import pytest

    import caffe2torch as c2t
    from caffe2torch.errors import CaffeError
    from caffe2torch.proto.forks import fork_of_foreign

    for message in ("MultiBoxLossParameter", "DetectionOutputParameter"):
        assert fork_of_foreign(message, "objectness_score") == "sfzhang15/RefineDet (an SSD fork)"
    for name in ("new_dim", "bicubic"):  # channel pruning's ImageData
        assert fork_of_foreign("ImageDataParameter", name) == "yihui-he/caffe-pro (channel pruning)"
    path = tmp_path / "arm.prototxt"
    path.write_text(REFINEDET_LOSS)
    with pytest.raises(CaffeError) as info:
        c2t.load_net(str(path), phase="TRAIN")
    assert "objectness_score" in str(info.value) and "sfzhang15/RefineDet" in str(info.value)


# the first layer of every FlowNet 2.0 net: one bottom scaled to [0, 1]
FLOWNET_ELTWISE = """name: "f"
input: "img0" input_shape { dim: 1 dim: 3 dim: 4 dim: 4 }
layer { name: "Eltwise1" type: "Eltwise" bottom: "img0" top: "img0s"
        eltwise_param { operation: SUM coeff: 0.00392156862745098 } }
"""
def test_a_bottom_count_only_a_fork_takes_names_the_fork(tmp_path) -> None:
    import pytest

    import caffe2torch as c2t
    from caffe2torch.errors import CaffeError
    from caffe2torch.lint.engine import lint_file

    cases = [(FLOWNET_ELTWISE, "Eltwise", "lmb-freiburg/flownet2", "power_param")]
    for text, type_, fork, todo in cases:
        path = tmp_path / f"{type_}.prototxt"
        path.write_text(text)
        with pytest.raises(CaffeError) as info:
            c2t.load_net(str(path))
        err = info.value
        assert "bottom(s), got" in err.message and fork in err.message, err.message
        assert err.line is not None and todo in (err.hint or "")
        (found,) = [d for d in lint_file(str(path)) if d.code == "C2T302"]
        assert fork in found.message and todo in (found.help or "")
    # a count no fork takes keeps the plain message
    path = tmp_path / "two.prototxt"
    path.write_text(FLOWNET_ELTWISE.replace('bottom: "img0" top', 'bottom: "img0" '
                                            'bottom: "img0" bottom: "img0" top')
                    .replace("coeff: 0.00392156862745098", ""))
    c2t.load_net(str(path))  # three bottoms: BVLC's Eltwise, nothing to say
