"""Putting a trained model to work: faces found in photos, folders and videos, classified.

* :mod:`~fer_multires.inference.sources`: the inputs (an image, a folder, a video) and reading them,
  videos streamed frame by frame with OpenCV;
* :mod:`~fer_multires.inference.detect`: OpenCV's Haar cascade (offline, shipped in the wheel) and
  the square crops with a margin;
* :mod:`~fer_multires.inference.tracks`: faces linked across video frames by box overlap;
* :mod:`~fer_multires.inference.classifier`: the batch classifier, PyTorch (a checkpoint) or ONNX
  Runtime (an exported file), with the evaluation's exact preprocessing;
* :mod:`~fer_multires.inference.expected`: the evaluation's score at a face's size;
* :mod:`~fer_multires.inference.outputs`: ``predictions.csv``, ``sources.csv``, annotated copies;
* :mod:`~fer_multires.inference.runner`: ``python -m fer_multires.predict``;
* :mod:`~fer_multires.inference.onnx_export`: ``python -m fer_multires.export``.
"""
