"""The synthetic audio-visual source-localization benchmark, written as real mp4 files.

``generate(cfg, out)`` writes ``out/videos/<id>.mp4`` (H.264 + AAC), ``annotations.json``
(VGG-SS layout), ``flickr_xml/`` (Flickr-SoundNet layout, test clips), the split lists and
``meta.json``. Modules: ``categories`` (what each class looks and sounds like), ``shapes``
(masks), ``placement`` (metric-aware box sizes and positions), ``scene`` (sampling and
drawing), ``audio``, ``video_io`` (PyAV), ``annotations`` (file formats), ``baselines``
(oracle / centre-prior scores of a layout) and ``generate`` (the parallel driver).
"""

from pipeline.synth.generate import generate

__all__ = ["generate"]
