"""Naive numpy references, one module per kernel family. Obviously right, never fast, and never
importing the code under test (kernels/, runner/)."""
