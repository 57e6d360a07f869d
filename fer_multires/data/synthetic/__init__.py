"""A deterministic synthetic dataset in the Aff-Wild2 (ABAW 2020-21) expression layout.

It is the project's embedded default dataset: the demo trains on it without licensed data, and the
tests read it. :func:`generate_synthetic_affwild2` writes, under ``root``::

    annotations/EXPR_Set/Training_Set/<video>.txt
    annotations/EXPR_Set/Validation_Set/<video>.txt
    annotations/VA_Estimation_Challenge/{Train_Set,Validation_Set}/<video>.txt
    annotations/AU_Detection_Challenge/{Train_Set,Validation_Set}/<video>.txt
    cropped_aligned/<video>/00001.jpg ...
    SYNTHETIC.json

Each annotation file has the header ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise`` and
one integer per frame (0..6, or -1 for a frame that is not annotated). Label line ``i`` (1-based)
belongs to ``cropped_aligned/<video>/{i:05d}.jpg``, an ``image_size`` square RGB JPEG.

The frames are procedurally drawn faces. Each video has its own identity (face shape, skin tone,
hair, background, feature positions and sizes); each frame its own pose, scale, lighting, sensor
noise, blur and JPEG quality. Expressions come in segments with an onset and an offset: the
intensity ramps from 0 to 1 over a few frames, holds, and ramps back; a frame is labelled with the
segment's expression while the intensity is >= 0.5, else Neutral. The expression cues are only
geometric (shapes of the mouth, brows, eyes and nose wrinkles), drawn a few pixels thick so that
a small CNN learns them at full resolution and they fade when the image is shrunk to ~8 px; they do
not change the image's mean colour or brightness in any systematic way.

Most videos also have a valence-arousal file (``valence,arousal``, two numbers per line, ``-5``
where not annotated) and an action-unit file (``AU1,...,AU26``, twelve 0/1 values, ``-1`` where
not annotated), one line per label line, in ABAW 2023's folders. Their labels are functions of the
drawn face (:mod:`~fer_multires.data.synthetic.affect`): valence from the mouth's curve, smiling
eyes and frowning features, arousal from open eyes and mouth, raised brows and tension; AU12 where
the mouth corners curve up, AU25 where the lips are drawn apart, and so on. Some videos lack one
or both files; each file has a stretch of missing markers, some a marker in one column only, some
CRLF line ends, and one action-unit file stops two lines before its video's frames do. Adding
them changed no expression file or image.

The set also holds every quirk the reader must handle, and ``SYNTHETIC.json`` records how many of
each it holds, with the same definitions as the reader:

* a few frames labelled -1 whose images exist (``invalid_label``);
* a few labelled frames whose image is absent, mid-video and at a video's end (``missing_frame``);
* one two-person training video, ``<name>_left`` and ``<name>_right``;
* one training video whose folder holds 3 images past its last label line (``beyond_labels``);
* a ``Thumbs.db`` file inside one frame folder;
* one validation annotation file without a frame folder (``videos_without_frames``);
* one frame folder without an annotation file (like a test-set video).

``num_train_videos`` and ``num_val_videos`` count the videos that have frames (the two halves of
the two-person video are two of the training videos); the validation annotation file without a
frame folder comes on top of them.

The package holds :mod:`~fer_multires.data.synthetic.spec` (the spec and shared constants),
:mod:`~fer_multires.data.synthetic.faces` (drawing the faces),
:mod:`~fer_multires.data.synthetic.affect` (valence, arousal and action units of a drawn face),
:mod:`~fer_multires.data.synthetic.plan` (labels, segments and quirks of every video) and
:mod:`~fer_multires.data.synthetic.writer` (writing the files and the manifest).
"""

from fer_multires.data.synthetic.faces import render_face
from fer_multires.data.synthetic.spec import SyntheticSpec
from fer_multires.data.synthetic.writer import (
    MANIFEST_NAME,
    ensure_synthetic_affwild2,
    generate_synthetic_affwild2,
)

__all__ = [
    "MANIFEST_NAME",
    "SyntheticSpec",
    "ensure_synthetic_affwild2",
    "generate_synthetic_affwild2",
    "render_face",
]
