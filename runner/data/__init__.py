"""Data sources for Caffe nets: Datum records, LMDB/LevelDB databases, the DataTransformer
(scale / mean / crop / mirror), MNIST and image-list conversion, mean images, and a background
prefetcher. The layers that use them live in ``runner/layers/data_*.py``."""
