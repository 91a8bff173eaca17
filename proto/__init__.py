"""Caffe's protobuf schema (caffe.proto) and its generated Python module (caffe_pb2)."""
from proto import caffe_pb2

__all__ = ["caffe_pb2"]
