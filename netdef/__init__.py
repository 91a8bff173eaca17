"""Caffe net definitions as pure passes: ``prototxt`` (parse), ``upgrade`` (V0/V1/input/BatchNorm/
solver), ``graph`` (NetState filter, splits, sharing, backward flags), ``shapes`` (Caffe's shape
rules, FLOPs), ``weights`` (.caffemodel/.binaryproto/.solverstate), ``errors``. See docs/netdef.md."""
