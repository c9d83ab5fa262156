"""Layer types of Caffe forks (SSD, SegNet, face recognition, MobileNet...), one module per fork."""
