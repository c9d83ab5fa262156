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
