"""Evaluation: a checkpoint at every resolution, on every validation split, exactly.

* :mod:`~fer_multires.evaluation.config`: the checked ``eval`` settings and the data config of
  the checkpoint's run;
* :mod:`~fer_multires.evaluation.module`: the Lightning module that scores each batch at every
  resolution (one confusion matrix per split and resolution, summed across processes);
* :mod:`~fer_multires.evaluation.assembly`: from the gathered arrays to
  :class:`~fer_multires.results.EvalResults`, temporal smoothing included;
* :mod:`~fer_multires.evaluation.outputs`: ``metrics.json``, ``predictions.csv``,
  ``resolution_robustness.{csv,png}``, ``confusion_matrix.png`` and ``report.md``;
* :mod:`~fer_multires.evaluation.runner`: :func:`evaluate_checkpoint`, used by the evaluate
  entry point and by training's end-of-run evaluation.
"""
