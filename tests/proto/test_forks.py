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
